# CLAMP's policy pretraining at the paper's size: the Diffusion Policy of
# dp_pretrained-clamp_aloha.py without CLAMP tokens, on every ALOHA pretraining task; Adam with
# weight decay 1e-4, linear warm-up to 1e-4 over 5000 steps, batch 8.
_base_ = ["./dp_pretrained-clamp_aloha.py"]

data_root = "data/aloha_pretrain"
model = dict(clamp=None, clamp_inputs=None, init_weights=None)
train_dataloader = dict(dataset=dict(data_root=data_root, tasks=None, split="pretrain", clamp=None))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
custom_hooks = [dict(type="RNGStateHook"), dict(type="FitNormalizationHook")]
# many tasks, no held-out split of the fine-tuning task: no validation loop
val_dataloader = None
val_evaluator = None
val_cfg = None
