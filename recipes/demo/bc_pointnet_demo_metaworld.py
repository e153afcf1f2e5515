# `toolkit demo`: PointNet from scratch under the CLAR BC protocol at CPU-demo scale.
# Narrower than Lift3D's PointNet (last layer 256 instead of 1024): 83 vs 469 ms per batch of 16
# on 2 CPU cores, which is what makes the demo fit in about 15 minutes.
_base_ = ["../../baselines/bc_pointnet_1xb16_150e_metaworld.py"]
model = dict(encoder=dict(mlp_dims=(64, 128, 256)))
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=5, max_keep_ckpts=1))
