# Table I "CLAMP (ours)": the pretrained Diffusion Policy fine-tuned with frozen CLAMP tokens.
# Everything the pretrained policy has is loaded; the CLAMP projections and position tables
# start fresh (the policy was pretrained without CLAMP tokens, as in the paper).
_base_ = ["./dp_clamp_aloha-cpu.py"]

model = dict(init_weights="work_dirs/dp_pretrain_aloha-cpu")
optim_wrapper = dict(optimizer=dict(lr=1e-4))
