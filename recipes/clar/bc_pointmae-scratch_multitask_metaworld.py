# CLAR multi-task MetaWorld with CLAR's backbone (Point-MAE encoder, paper size) from scratch:
# the PointNet multi-task recipe with the encoder swapped (same data, language and evaluation).
_base_ = ["./bc_pointnet_multitask_metaworld.py"]
model = dict(encoder=dict(_delete_=True, type="PointMAE", arch="base", with_decoder=False))
