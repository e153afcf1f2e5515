# CLAMP's ALOHA policy protocol at CPU size (specs.md "Diffusion Policy"; CLAMP Sec. III-C / IV):
# four RGB cameras (front_left, back_right, left_wrist, right_wrist) + 14-d proprio -> chunk of
# 50 x 14 absolute joint targets; iteration-based training; closed-loop evaluation in the ALOHA
# suite every `eval_interval` steps; report the max success rate over evaluations.
# Recipes set `model` (DiffusionPolicy / ACTPolicy) and, for CLAMP tokens, `clamp` / `clamp_inputs`.
#
# Data (CPU size: 96x96 cameras, 2048-point clouds):
#   toolkit gen datasets/aloha_finetune.py --tasks drawer_open --episodes 30 --val 5 \
#       --cameras front_left:96 back_right:96 left_wrist:96 right_wrist:96 --num-points 2048 \
#       --out data/aloha_ft_cpu
#   toolkit gen datasets/aloha_pretrain.py --episodes 8 \
#       --cameras front_left:96 back_right:96 left_wrist:96 right_wrist:96 --num-points 2048 \
#       --out data/aloha_pretrain_cpu
_base_ = ["../default_runtime.py"]

data_root = "data/aloha_ft_cpu"
tasks = ["drawer_open"]  # the held-out fine-tuning task
cameras = ["front_left", "back_right", "left_wrist", "right_wrist"]
image_size = 64
chunk_size = 50
bounds = [[-0.6, 0.23, -0.005], [0.6, 0.97, 0.6]]  # toolkit.envs.aloha.cameras.WORKSPACE_BOUNDS
max_iters = 3000
eval_interval = 500
train_episodes = None  # (start, stop) slice of each task's demos, e.g. (0, 10) for few-shot

model = dict(
    type="DiffusionPolicy",
    cameras=cameras,
    # ResNet-10t (timm, 4.9M): 64x64 fwd+bwd of 32 images in 0.69 s on one core vs 3.4 s for
    # ResNet-18 under load; the paper-size recipes use a ResNet-50 per camera
    image_encoder=dict(type="ImageResNet", arch="resnet10t", norm="group"),
    d_model=128,
    image_size=image_size,
    chunk_size=chunk_size,
    proprio_dim=14,
    action_dim=14,
    bounds=bounds,
    augment=dict(brightness=0.3, contrast=0.4, saturation=0.5, hue=0.03),
    head=dict(
        type="DiffusionTransformerHead",
        nhead=4,
        num_encoder_layers=2,
        num_decoder_layers=3,
        dim_feedforward=512,
        dropout=0.1,
    ),
    # x0 ("sample") prediction at CPU size: measured on one expert episode, DDIM samples reach a
    # 0.012 normalized error in 1000 steps vs 0.23 for epsilon prediction (the paper's, used by the
    # paper-size recipes), and CPU runs are ~100x shorter than the paper's
    noise_scheduler=dict(
        num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", prediction_type="sample"
    ),
    inference=dict(scheduler="ddim", steps=10),
    n_action_steps=25,
)

# what the training and the validation splits share
chunk_dataset = dict(
    type="ActionChunkDataset",
    data_root=data_root,
    tasks=tasks,
    cameras=cameras,
    image_size=image_size,
    chunk_size=chunk_size,
)
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(**chunk_dataset, split="train", episodes=train_episodes),
)

# Offline check on the held-out demonstrations, every `eval_interval` steps next to the rollouts:
# the predicted chunk's error (rad) against the demonstrator's and against holding the current
# joints (ChunkErrorMetric). Recipes that pretrain on many tasks switch it off (val_* = None).
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(**chunk_dataset, split="val", frame_stride=20),
)
val_evaluator = dict(type="ChunkErrorMetric")
val_cfg = dict(type="ValLoop")
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=eval_interval)
# paper: Adam, weight decay 1e-4, linear warm-up to 1e-4 (pretraining) / 1e-5 (fine-tuning) over
# 5000 steps, batch 8; CPU runs are ~100x shorter, so a higher rate and a short warm-up
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=3e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0),
)
param_scheduler = [dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=200)]

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),  # val at its iter
    checkpoint=dict(
        type="CheckpointHook", by_epoch=False, interval=eval_interval, max_keep_ckpts=1,
        save_last=True,
    ),
)  # fmt: skip
custom_hooks = [
    dict(type="RNGStateHook"),
    dict(type="FitNormalizationHook"),
    dict(
        type="RolloutEvalHook",
        suite=dict(type="AlohaSuite"),
        tasks=tasks,
        by_epoch=False,
        interval=eval_interval,
        episodes=10,
        max_steps=400,
        env_kwargs=dict(
            cameras={c: (96, 96) for c in cameras}, rgb=True, depth=False, points=False
        ),
    ),
]
log_processor = dict(window_size=50, by_epoch=False)
