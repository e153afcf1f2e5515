# CLAR Table V row: fine-tune the encoder of the `no-mae` pretraining ablation.
_base_ = ["./bc_clar-pointmae_1xb16_150e_metaworld.py"]
pretrained = "work_dirs/pretrain_clar_pointmae_metaworld-no-mae"
model = dict(encoder_weights=pretrained)
