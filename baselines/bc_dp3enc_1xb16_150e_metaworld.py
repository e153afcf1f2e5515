# DP3's point encoder (Ze et al. 2024) from scratch under the CLAR MetaWorld BC protocol.
_base_ = ["../recipes/_base_/policies/metaworld_bc.py"]
model = dict(encoder=dict(_delete_=True, type="DP3Encoder"))
