# PointNet++ (SSG) from scratch under the RLBench protocol (Table I RLBench column: 60.0%).
_base_ = ["./bc_pointmae-scratch_1xb16_150e_rlbench.py"]
model = dict(encoder=dict(_delete_=True, type="PointNet2"))
