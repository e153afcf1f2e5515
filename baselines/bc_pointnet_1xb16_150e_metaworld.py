# PointNet (Qi et al. 2017) from scratch under the CLAR MetaWorld BC protocol.
_base_ = ["../recipes/_base_/policies/metaworld_bc.py"]
model = dict(encoder=dict(_delete_=True, type="PointNet"))
