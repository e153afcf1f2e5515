# CLAMP Table III ablation "standard five orthogonal views", CPU size.
_base_ = ["./pretrain_clamp_string-vit-tiny_metaworld-cpu.py"]
train_dataloader = dict(dataset=dict(views="orthogonal"))
val_dataloader = dict(dataset=dict(views="orthogonal"))
