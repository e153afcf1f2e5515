# CLAR Table V row: fine-tune the encoder of the `no-local` pretraining ablation.
_base_ = ["./bc_clar-pointmae_1xb16_150e_metaworld.py"]
pretrained = "work_dirs/pretrain_clar_pointmae_metaworld-no-local"
model = dict(encoder_weights=pretrained)
