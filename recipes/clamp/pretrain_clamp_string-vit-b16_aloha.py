# CLAMP tri-modal pretraining at the paper's size (CLAMP Sec. III-B / App. C, specs.md): STRING
# ViT-B/16 over five 224x224 depth+XYZ views (tiled 224x1120; 300k points, 1 mm voxels), the
# action-history encoder (2 layers, 768, H = 10 x 14-d), the 12-layer text encoder (256 tokens),
# tri-modal SigLIP (t = 10, b = -10), Adam b2 0.999, lr 1e-4 cosine with 5% warm-up. The paper
# trains 100k steps at batch 2048; set the batch to what the GPUs hold (bf16 autocast below).
_base_ = ["./pretrain_clamp_string-vit-tiny_aloha-cpu.py"]

data_root = "data/aloha_pretrain"
dataset = dict(
    type="ClampPretrainDataset",
    data_root=data_root,
    split="pretrain",
    views="clamp",
    wrist=True,
    image_size=224,
    num_points=300_000,
    voxel_size=0.001,
    history=10,
)
model = dict(
    image_encoder=dict(type="StringViT", arch="b16", string_mode="string"),
    action_encoder=dict(type="ActionHistoryEncoder", arch="paper", action_dim=14, history=10),
    text_encoder=dict(type="ClampTextEncoder", arch="paper"),
    embed_dim=768,
)
train_dataloader = dict(
    batch_size=256, num_workers=8, dataset=dict(_delete_=True, **dataset, frame_stride=1)
)
val_dataloader = dict(
    batch_size=256, num_workers=8, dataset=dict(_delete_=True, **dataset, frame_stride=50)
)
max_iters = 100_000
train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=max_iters, val_interval=5000)
optim_wrapper = dict(
    type="AmpOptimWrapper",
    dtype="bfloat16",
    optimizer=dict(type="Adam", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=5000),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=5000, end=max_iters, eta_min=0.0),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
