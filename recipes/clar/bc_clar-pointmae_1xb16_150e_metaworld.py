# CLAR Table I: the CLAR-pretrained Point-MAE encoder (paper size) fine-tuned end to end under the
# MetaWorld BC protocol. `pretrained` is a pretraining work_dir (its last checkpoint) or a file.
_base_ = ["./bc_pointmae-scratch_1xb16_150e_metaworld.py"]
pretrained = "work_dirs/pretrain_clar_pointmae_metaworld"
model = dict(encoder_weights=pretrained, encoder_weights_prefix="backbone.", freeze_encoder=False)
