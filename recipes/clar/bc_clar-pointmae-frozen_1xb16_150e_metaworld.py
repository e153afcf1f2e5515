# CLAR-pretrained Point-MAE encoder kept frozen (only the policy head learns): a linear-probe style
# check of the representation itself.
_base_ = ["./bc_clar-pointmae_1xb16_150e_metaworld.py"]
model = dict(freeze_encoder=True)
