# `toolkit demo`: PointNet from scratch, the CLAR BC protocol at CPU-demo scale.
_base_ = ["../../baselines/bc_pointnet_1xb16_150e_metaworld.py"]
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=4, max_keep_ckpts=1))
