# CLAR pretraining, paper size: Point-MAE base (384-d, 12 blocks) + CLIP ViT-B-32 teachers, loss
# 1.5 L_MAE + 0.5 L_PI + 0.5 L_PT + 0.5 L_local (Eq. 7). Needs local CLIP weights, e.g.:
#   toolkit train recipes/clar/pretrain_clar_pointmae_metaworld.py --cfg-options \
#     model.image_teacher.pretrained=/path/ViT-B-32.pt model.text_teacher.pretrained=/path/ViT-B-32.pt
_base_ = ["../_base_/pretrain/clar_metaworld.py"]
