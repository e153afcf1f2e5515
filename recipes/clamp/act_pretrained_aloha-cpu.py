# Table I "pretrained ACT": fine-tune act_pretrain_aloha-cpu.py's policy on the held-out task.
_base_ = ["./act_scratch_aloha-cpu.py"]

model = dict(init_weights="work_dirs/act_pretrain_aloha-cpu")
optim_wrapper = dict(optimizer=dict(lr=1e-4))
