# CLAR's RLBench protocol (Table I RLBench column, Table II): one single-task policy per task on
# keyframe waypoints of the front camera. Point cloud (1024) + proprio (gripper pose + open, 8) ->
# encoder -> BN-MLP -> next waypoint (xyz + quaternion + gripper, 8); loss 10 MSE(pos) +
# 0.1 (1 - cos quat) + 0.01 MSE(gripper) (Lift3D's harness, specs.md); batch 16, Adam 1e-3,
# 150 epochs; 25 rollouts of at most 25 waypoints every 10 epochs through RLBench's motion planner
# (needs CoppeliaSim: docs/suites/rlbench.md; without it train with
# --cfg-options "custom_hooks=[dict(type='RNGStateHook'),dict(type='FitNormalizationHook')]").
# This file: CLAR's Point-MAE encoder (paper size) from scratch. Data: _base_/data/rlbench_clar.py.
_base_ = ["../_base_/default_runtime.py", "../_base_/data/rlbench_clar.py"]
# the pose loss and the RLBench suite register on import (no-ops once the packages import them)
custom_imports = dict(
    imports=["toolkit.models.objectives.pose_loss", "toolkit.envs.rlbench"],
    allow_failed_imports=False,
)

data_root = {{_base_.rlbench_data_root}}
tasks = ["close_box"]  # single-task: per run, --cfg-options "train_dataloader.dataset.tasks=[...]"

model = dict(
    type="PointCloudPolicy",
    encoder=dict(type="PointMAE", arch="base", with_decoder=False),
    head=dict(type="BNMLPHead", hidden_dims=(256, 256, 256)),
    proprio_dim=8,
    action_dim=8,
    proprio_norm="meanstd",
    action_norm="minmax",
    action_loss=dict(type="PoseGripperLoss", pos_weight=10.0, rot_weight=0.1, gripper_weight=0.01),
)

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="PointCloudBCDataset",
        data_root=data_root,
        tasks=tasks,
        split="train",
        suite="rlbench",
        num_points={{_base_.rlbench_num_points}},
        max_episodes_per_task={{_base_.rlbench_train_episodes}},
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
        suite=dict(type="RLBenchSuite"),
        interval=10,
        episodes=25,
        max_steps=25,
        # cameras: render at the converted demos' size (RLBench's default 128; e.g.
        # {"front": (224, 224)} for Lift3D's 224 px data)
        env_kwargs=dict(
            cameras=[{{_base_.rlbench_camera}}], rgb=False, bounds={{_base_.rlbench_bounds}}
        ),
    ),
]
log_processor = dict(window_size=50)
