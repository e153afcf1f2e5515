# CLAR pretraining (Eq. 7: 1.5 L_MAE + 0.5 L_PI + 0.5 L_PT + 0.5 L_local) on the nine RLBench
# pretraining tasks (front camera; RH20T, which CLAR adds, is not available here). Same model and
# schedule as the MetaWorld recipe; only the data changes. Needs local CLIP weights, e.g.:
#   toolkit train recipes/clar/pretrain_clar_pointmae_rlbench.py --cfg-options \
#     model.image_teacher.pretrained=/path/ViT-B-32.pt model.text_teacher.pretrained=/path/ViT-B-32.pt
_base_ = ["../_base_/pretrain/clar_metaworld.py", "../_base_/data/rlbench_pretrain.py"]

data_root = {{_base_.rlbench_pretrain_root}}
workspace_bounds = {{_base_.rlbench_bounds}}
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        tasks={{_base_.rlbench_pretrain_tasks}},
        split="pretrain",
        camera={{_base_.rlbench_camera}},
        text="description",  # RLBench's own variation descriptions
        workspace_bounds=workspace_bounds,
    )
)
