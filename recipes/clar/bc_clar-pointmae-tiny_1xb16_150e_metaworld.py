# The CPU-sized CLAR encoder (pretrain_clar_pointmae-tiny_metaworld-cpu.py: Point-MAE tiny,
# tiny random-init CLIP teachers) fine-tuned end to end under the full MetaWorld BC protocol:
# compare with bc_pointmae-tiny-scratch_1xb16_150e_metaworld.py (same encoder, no pretraining).
_base_ = ["./bc_pointmae-tiny-scratch_1xb16_150e_metaworld.py"]
pretrained = "work_dirs/pretrain_clar_pointmae-tiny_metaworld-cpu"
model = dict(encoder_weights=pretrained, encoder_weights_prefix="backbone.", freeze_encoder=False)
