# CLAMP tri-modal pretraining at CPU size on the ALOHA pretraining tasks (datasets/aloha_pretrain.py):
# the MetaWorld CPU recipe's model and schedule (tiny STRING ViT over CLAMP's five views: overhead,
# front-left, back-right + one wrist view per ViperX gripper; 64x64, 8k points; tiny action-history
# and text encoders; tri-modal SigLIP; Recall@5 validation) on 14-d joint-target histories.
# These encoders feed the Diffusion Policy / ACT recipes as frozen CLAMP tokens
# (recipes/clamp/dp_*_aloha-cpu.py).
_base_ = ["./pretrain_clamp_string-vit-tiny_metaworld-cpu.py"]

data_root = "data/aloha_pretrain_cpu"
model = dict(action_encoder=dict(action_dim=14))
train_dataloader = dict(dataset=dict(data_root=data_root, episodes=(0, 8), frame_stride=8))
val_dataloader = dict(dataset=dict(data_root=data_root, episodes=(8, 10), frame_stride=20))
