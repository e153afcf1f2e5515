# CLAR pretraining (CLAR paper Sec. III, Eq. 7) on MetaWorld frames from the reserved pretraining
# seeds (`toolkit gen datasets/metaworld_clar.py --episodes 0 --val 0 --pretrain N`), disjoint from
# the fine-tuning demos. Point-MAE (paper size) + Chamfer MAE + InfoNCE to a frozen CLIP image and
# text tower + deformable local alignment; weights 1.5 / 0.5 / 0.5 / 0.5.
# Teacher weights cannot be downloaded here: pass a local file, e.g.
#   --cfg-options model.image_teacher.pretrained=/path/ViT-B-32.pt \
#                 model.text_teacher.pretrained=/path/ViT-B-32.pt
_base_ = ["../default_runtime.py", "../schedules/adamw_cosine.py"]

data_root = "data/metaworld_pretrain"
# MetaWorld workspace crop (toolkit.envs.metaworld.cameras.WORKSPACE_BOUNDS): pixels whose depth
# back-projects outside it are background, patches landing there are left out of L_local
workspace_bounds = [[-0.6, 0.2, -0.01], [0.6, 1.1, 0.8]]
clip_model = "ViT-B-32"

model = dict(
    type="CLARPretrainer",
    backbone=dict(type="PointMAE", arch="base", mask_ratio=0.6, with_decoder=True),
    image_teacher=dict(type="OpenCLIPImageTeacher", model_name=clip_model, pretrained=None),
    text_teacher=dict(type="OpenCLIPTextTeacher", model_name=clip_model, pretrained=None),
    mae_loss=dict(type="ChamferMAELoss"),
    image_loss=dict(type="InfoNCELoss", name="pi"),
    text_loss=dict(type="InfoNCELoss", name="pt"),
    local_loss=dict(type="LocalAlignmentLoss", embed_dim=256, num_heads=8, num_points=4),
    loss_weights=dict(mae=1.5, pi=0.5, pt=0.5, local=0.5),
    use_mae=True,
    use_pi=True,
    use_pt=True,
    use_local=True,
)

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(
        type="PointCloudPretrainDataset",
        data_root=data_root,
        split="pretrain",
        camera="corner",
        num_points=1024,
        frame_stride=2,
        text="paraphrase",
        workspace_bounds=workspace_bounds,
    ),
)

max_epochs = 100
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={"logit_scale": dict(decay_mult=0.0)}),
)
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2, save_last=True))
custom_hooks = [
    dict(type="RNGStateHook"),
    dict(type="TeacherCacheHook"),  # the frozen image teacher runs once per frame, then disk
    dict(type="CLARVisualizationHook", interval=10),  # reconstruction + local-alignment pictures
]
# mmengine logs keys without "loss" as their current value; smooth the unweighted terms like the
# weighted ones so the two read consistently
log_processor = dict(
    custom_cfg=[
        dict(data_src=f"raw_{term}", method_name="mean", window_size=10)
        for term in ("mae", "pi", "pt", "local")
    ]
)
