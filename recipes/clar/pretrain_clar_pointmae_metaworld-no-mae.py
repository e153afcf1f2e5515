# CLAR Table V ablation, w/o MAE: the full pretraining recipe with a switch flipped.
_base_ = ["./pretrain_clar_pointmae_metaworld.py"]
model = dict(use_mae=False)
