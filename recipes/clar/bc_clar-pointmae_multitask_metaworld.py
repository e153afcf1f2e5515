# CLAR Table III (multi-task, 18 paraphrased instructions), CLAR-pretrained encoder.
_base_ = ["./bc_pointmae-scratch_multitask_metaworld.py"]
pretrained = "work_dirs/pretrain_clar_pointmae_metaworld"
model = dict(encoder_weights=pretrained, encoder_weights_prefix="backbone.")
