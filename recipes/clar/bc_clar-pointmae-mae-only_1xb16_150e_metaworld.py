# CLAR Table V row: fine-tune the encoder of the `mae-only` pretraining ablation.
_base_ = ["./bc_clar-pointmae_1xb16_150e_metaworld.py"]
pretrained = "work_dirs/pretrain_clar_pointmae_metaworld-mae-only"
model = dict(encoder_weights=pretrained)
