# CLAR (Table I RLBench column: 82.0% mean; Table II per task): the CLAR-pretrained Point-MAE
# encoder fine-tuned end to end under the RLBench protocol. `pretrained` is a pretraining work_dir
# (its last checkpoint) or a file, e.g. from pretrain_clar_pointmae_rlbench.py.
_base_ = ["./bc_pointmae-scratch_1xb16_150e_rlbench.py"]
pretrained = "work_dirs/pretrain_clar_pointmae_rlbench"
model = dict(encoder_weights=pretrained, encoder_weights_prefix="backbone.", freeze_encoder=False)
