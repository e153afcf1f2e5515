# `toolkit demo`: CLAR's Point-MAE encoder (tiny preset: 96-d, 32 patches x 16 points) from scratch.
_base_ = ["../clar/bc_pointmae-scratch_1xb16_150e_metaworld.py"]
model = dict(encoder=dict(arch="tiny"))
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=5, max_keep_ckpts=1))
