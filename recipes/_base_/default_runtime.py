# Shared runtime for every recipe: hooks, logging, visualization, checkpoints, environment.
default_scope = "toolkit"

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=10),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
# RNG states travel with checkpoints so a resumed run continues the same random streams.
custom_hooks = [dict(type="RNGStateHook")]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)

vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
visualizer = dict(type="Visualizer", vis_backends=vis_backends, name="visualizer")
log_processor = dict(type="LogProcessor", window_size=10, by_epoch=True)
log_level = "INFO"

load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
