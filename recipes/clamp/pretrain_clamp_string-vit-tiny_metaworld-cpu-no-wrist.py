# CLAMP Table III ablation "no wrist views", CPU size: the 3 fixed views only.
_base_ = ["./pretrain_clamp_string-vit-tiny_metaworld-cpu.py"]
train_dataloader = dict(dataset=dict(wrist=False))
val_dataloader = dict(dataset=dict(wrist=False))
