# ACT pretrained on every ALOHA pretraining task (for Table I "pretrained ACT").
_base_ = ["./act_scratch_aloha-cpu.py"]

data_root = "data/aloha_pretrain_cpu"
max_iters = 4000
train_cfg = dict(max_iters=max_iters)
train_dataloader = dict(
    dataset=dict(data_root=data_root, tasks=None, split="pretrain", episodes=None, frame_stride=2)
)
custom_hooks = [dict(type="RNGStateHook"), dict(type="FitNormalizationHook")]
default_hooks = dict(checkpoint=dict(interval=1000))
# many tasks, no held-out split of the fine-tuning task: no validation loop
val_dataloader = None
val_evaluator = None
val_cfg = None
