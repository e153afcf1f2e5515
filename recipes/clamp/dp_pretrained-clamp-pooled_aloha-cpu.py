# Table III ablation "pooled features": one pooled CLAMP embedding per modality instead of the
# unpooled tokens.
_base_ = ["./dp_pretrained-clamp_aloha-cpu.py"]

model = dict(clamp=dict(pooled=True))
