# CLAR's Point-MAE encoder, tiny preset (96-d, 32 patches x 16 points), from scratch under the full
# CLAR MetaWorld BC protocol: the CPU-sized counterpart of bc_pointmae-scratch_1xb16_150e_metaworld.py
# (the paper's 384-d, 12-layer encoder), same head, data, schedule and evaluation.
_base_ = ["./bc_pointmae-scratch_1xb16_150e_metaworld.py"]
model = dict(encoder=dict(arch="tiny"))
