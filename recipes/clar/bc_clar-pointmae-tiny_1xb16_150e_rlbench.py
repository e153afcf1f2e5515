# The CPU-sized CLAR encoder (pretrain_clar_pointmae-tiny_rlbench-cpu.py) fine-tuned under the
# full RLBench protocol.
_base_ = ["./bc_pointmae-scratch_1xb16_150e_rlbench.py"]
pretrained = "work_dirs/pretrain_clar_pointmae-tiny_rlbench-cpu"
model = dict(
    encoder=dict(arch="tiny"),
    encoder_weights=pretrained,
    encoder_weights_prefix="backbone.",
    freeze_encoder=False,
)
