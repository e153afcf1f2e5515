# Table I "pretrained Diffusion Policy": fine-tune every weight (ResNets included) of the policy
# pretrained by dp_pretrain_aloha-cpu.py on the held-out task; the pretraining data's action
# normalization is kept (paper: "actions by min/max of the pretraining data").
_base_ = ["../_base_/policies/aloha_chunk.py"]

model = dict(init_weights="work_dirs/dp_pretrain_aloha-cpu")
# paper: fine-tuning warms up to a 10x lower rate than pretraining
optim_wrapper = dict(optimizer=dict(lr=1e-4))
