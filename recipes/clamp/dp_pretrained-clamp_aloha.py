# CLAMP's Diffusion Policy at the paper's size (specs.md): a ResNet-50 per camera, Transformer
# 4 encoder / 7 decoder layers, width 768, 8 heads, FFN 3200, dropout 0.1; frozen CLAMP B/16
# tokens; Adam with weight decay 1e-4, linear warm-up to 1e-5 over 5000 steps (fine-tuning),
# batch 8; evaluation every 40k steps (50 trials in the paper). ImageNet ResNet-50 weights from
# a local file: set model.image_encoder.weights=PATH (norm="frozen_batch" keeps them intact).
# Needs a GPU; the policy's CLAMP and pretrained-policy checkpoints come from the paper-size
# pretraining runs (see docs/clamp.md).
_base_ = ["../_base_/policies/aloha_chunk.py"]

data_root = "data/aloha_finetune"
image_size = 224
clamp_inputs = dict(
    views="clamp", wrist=True, image_size=224, num_points=300_000, history=10, source="depth"
)
model = dict(
    image_encoder=dict(type="ImageResNet", arch="resnet50", norm="group"),
    d_model=768,
    image_size=image_size,
    head=dict(
        nhead=8, num_encoder_layers=4, num_decoder_layers=7, dim_feedforward=3200, dropout=0.1
    ),
    n_action_steps=50,
    noise_scheduler=dict(prediction_type="epsilon"),
    clamp=dict(
        config="recipes/clamp/pretrain_clamp_string-vit-b16_aloha.py",
        weights="work_dirs/pretrain_clamp_string-vit-b16_aloha",
    ),  # fmt: skip
    clamp_inputs=clamp_inputs,
    init_weights="work_dirs/dp_pretrain_aloha",
)
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    dataset=dict(data_root=data_root, image_size=image_size, clamp=clamp_inputs),
)
val_dataloader = dict(
    dataset=dict(data_root=data_root, image_size=image_size, clamp=clamp_inputs, frame_stride=10)
)
max_iters = 200_000
train_cfg = dict(max_iters=max_iters, val_interval=40_000)
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-5, weight_decay=1e-4))
param_scheduler = [dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=5000)]
default_hooks = dict(checkpoint=dict(interval=40_000))
custom_hooks = [
    dict(type="RNGStateHook"),
    dict(type="FitNormalizationHook"),
    dict(
        type="RolloutEvalHook",
        suite=dict(type="AlohaSuite"),
        tasks=["drawer_open"],
        by_epoch=False,
        interval=40_000,
        episodes=50,
        max_steps=400,
        env_kwargs=dict(rgb=True, depth=True, points=False),
    ),
]
