# CLAR Table IV (perspective variation), CLAR-pretrained: train on `corner`, evaluate on `corner2`.
_base_ = ["./bc_pointmae-scratch_1xb16_150e_metaworld-corner2.py"]
pretrained = "work_dirs/pretrain_clar_pointmae_metaworld"
model = dict(encoder_weights=pretrained, encoder_weights_prefix="backbone.")
