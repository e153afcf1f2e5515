# CLAMP's policy pretraining at CPU size: the same Diffusion Policy (no CLAMP tokens) trained on
# every ALOHA pretraining task (datasets/aloha_pretrain.py), "in parallel" with the encoders'
# contrastive pretraining. Its checkpoint (and its action normalization) initializes the
# fine-tuning recipes dp_pretrained*_aloha-cpu.py. No closed-loop evaluation (many tasks).
_base_ = ["../_base_/policies/aloha_chunk.py"]

data_root = "data/aloha_pretrain_cpu"
max_iters = 4000
train_dataloader = dict(
    dataset=dict(data_root=data_root, tasks=None, split="pretrain", episodes=None, frame_stride=2)
)
custom_hooks = [dict(type="RNGStateHook"), dict(type="FitNormalizationHook")]
default_hooks = dict(checkpoint=dict(interval=1000))
# many tasks, no held-out split of the fine-tuning task: no validation loop
val_dataloader = None
val_evaluator = None
val_cfg = None
