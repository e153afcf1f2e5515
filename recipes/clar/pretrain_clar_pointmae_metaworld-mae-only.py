# CLAR Table V ablation, w/o Local and Con. (MAE only): the full pretraining recipe with a switch flipped.
_base_ = ["./pretrain_clar_pointmae_metaworld.py"]
model = dict(use_local=False, use_pi=False, use_pt=False)
