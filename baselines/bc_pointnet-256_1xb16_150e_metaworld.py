# PointNet from scratch under the full CLAR MetaWorld BC protocol, CPU size: the last shared layer
# is 256 wide instead of Lift3D's 1024 (83 vs ~250 ms per batch of 16 on 2 CPU cores), which is
# what makes a full 150-epoch single-task run fit in about 1.5 h here. Same head, data, schedule
# and evaluation as bc_pointnet_1xb16_150e_metaworld.py.
_base_ = ["./bc_pointnet_1xb16_150e_metaworld.py"]
model = dict(encoder=dict(mlp_dims=(64, 128, 256)))
