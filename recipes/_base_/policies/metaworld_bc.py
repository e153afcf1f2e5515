# CLAR / Lift3D single-task MetaWorld protocol: point cloud (1024 pts, corner camera) + proprio (4)
# -> encoder -> BN-MLP -> action (4); MSE; batch 16; Adam 1e-3; 150 epochs; 25 rollouts of at most
# 200 steps every 10 epochs; report the best success rate. Recipes set `model.encoder`.
_base_ = ["../default_runtime.py"]

data_root = "data/metaworld_clar"
tasks = ["hammer"]  # single-task by default; `toolkit bench metaworld` sets it per run

model = dict(
    type="PointCloudPolicy",
    encoder=dict(type="PointNet"),
    head=dict(type="BNMLPHead", hidden_dims=(256, 256, 256)),
    proprio_dim=4,
    action_dim=4,
    proprio_norm="meanstd",
    action_norm="minmax",
)

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="PointCloudBCDataset", data_root=data_root, tasks=tasks, split="train", num_points=1024
    ),
)

max_epochs = 150
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs)
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=1e-3))

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=50),
    checkpoint=dict(type="CheckpointHook", interval=10, max_keep_ckpts=2, save_last=True),
)
custom_hooks = [
    dict(type="RNGStateHook"),
    dict(type="FitNormalizationHook"),
    dict(
        type="RolloutEvalHook",
        suite=dict(type="MetaWorldSuite"),
        interval=10,
        episodes=25,
        max_steps=200,
        env_kwargs=dict(rgb=False),  # the policy needs depth -> points only; videos render RGB
    ),
]
log_processor = dict(window_size=50)
