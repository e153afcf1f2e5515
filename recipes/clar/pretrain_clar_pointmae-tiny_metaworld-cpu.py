# CLAR pretraining at CPU size (the `toolkit demo` / CI scale): Point-MAE tiny (96-d, 2 blocks,
# 32 patches x 16 points) and a tiny CLIP (ViT 2 x 64-d, 112 px, 7x7 patch grid like ViT-B/32 at
# 224 px; text 2 x 64-d) as teachers. No CLIP weights can be downloaded here, so the teachers are
# RANDOMLY INITIALIZED on purpose (`random_init=True`; the log says so loudly): the run exercises
# every loss and the whole pipeline, but its alignment targets carry no semantics. For real runs
# use pretrain_clar_pointmae_metaworld.py with local CLIP weights.
_base_ = ["./pretrain_clar_pointmae_metaworld.py"]

tiny_clip = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=112, layers=2, width=64, head_width=32, patch_size=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
)
teacher = dict(model_name="tiny-clip", model_cfg=tiny_clip, pretrained=None, random_init=True)
model = dict(
    backbone=dict(arch="tiny"),
    image_teacher=dict(type="OpenCLIPImageTeacher", **teacher),
    text_teacher=dict(type="OpenCLIPTextTeacher", **teacher),
    local_loss=dict(embed_dim=64, num_heads=4, num_points=4),
)
train_dataloader = dict(batch_size=32, num_workers=1, dataset=dict(frame_stride=4))

max_epochs = 20
warmup_epochs = 1
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-2, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=warmup_epochs, end=max_epochs,
         eta_min=1e-5, convert_to_iter_based=True),
]  # fmt: skip
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=5, max_keep_ckpts=1, save_last=True)
)
custom_hooks = [
    dict(type="RNGStateHook"),
    dict(type="TeacherCacheHook"),
    dict(type="CLARVisualizationHook", interval=5),
]
