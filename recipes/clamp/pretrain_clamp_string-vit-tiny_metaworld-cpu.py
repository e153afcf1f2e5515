# CLAMP tri-modal pretraining at CPU size, on MetaWorld episodes as a stand-in until the ALOHA
# suite's pretraining data exists: tiny STRING ViT over the CLAMP rig (overhead, front-left,
# back-right + the wrist view of MetaWorld's single gripper; 64x64 views, 8k points), tiny
# action-history encoder (H = 10 previous 4-d actions), tiny text encoder on the sim-state text,
# tri-modal SigLIP. Validation: Recall@5 in the six directions on held-out episodes, with the
# matching-probability matrices in <work_dir>/vis/.
_base_ = ["../_base_/default_runtime.py"]

data_root = "data/metaworld_pretrain"
dataset = dict(
    type="ClampPretrainDataset",
    data_root=data_root,
    split="pretrain",
    views="clamp",
    wrist=True,
    image_size=64,
    num_points=8192,
    history=10,
)
model = dict(
    type="CLAMPPretrainer",
    image_encoder=dict(type="StringViT", arch="tiny", string_mode="string"),
    action_encoder=dict(type="ActionHistoryEncoder", arch="tiny", action_dim=4, history=10),
    text_encoder=dict(type="ClampTextEncoder", arch="tiny"),
    loss=dict(type="TriModalSigLIPLoss"),
    embed_dim=128,
)
train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(**dataset, episodes=(0, 6), frame_stride=10),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
    dataset=dict(**dataset, episodes=(6, 8), frame_stride=10),
)
val_evaluator = dict(type="RetrievalMetric", k=5)
val_cfg = dict(type="ValLoop")

max_epochs = 8
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=2)
# paper: Adam b2 0.999, cosine decay, base lr 1e-4, 5% warm-up (at batch 2048). At batch 32 from
# scratch, lr 1e-3 without clipping collapses all embeddings to one point within ~10 steps: the
# loss sits at the collapsed optimum -log(1/B) - (B-1) log(1 - 1/B) = 4.45 for B = 32 and never
# leaves it, even on a single repeated batch. Clipping the gradient norm to 1 and lr 3e-4 escape
# it (one batch of 32 overfits to 2.9 in 55 steps, tests/models/test_clamp_pretrainer.py).
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=3e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]  # fmt: skip
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=2, max_keep_ckpts=1, save_last=True)
)
custom_hooks = [dict(type="RNGStateHook"), dict(type="RetrievalPlotHook")]
