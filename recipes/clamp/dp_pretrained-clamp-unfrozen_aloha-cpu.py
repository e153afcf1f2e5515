# Table III ablation "unfrozen encoders": the CLAMP encoders are fine-tuned with the policy.
_base_ = ["./dp_pretrained-clamp_aloha-cpu.py"]

model = dict(clamp=dict(freeze=False))
