# CLAR's backbone (Point-MAE encoder, paper size) trained from scratch under the MetaWorld BC
# protocol: the "no pretraining" row of CLAR's Table V and our from-scratch reference.
_base_ = ["../_base_/policies/metaworld_bc.py"]
model = dict(encoder=dict(_delete_=True, type="PointMAE", arch="base", with_decoder=False))
