# CLAMP tri-modal pretraining at CPU size on the ALOHA pretraining tasks (datasets/aloha_pretrain.py):
# the MetaWorld CPU recipe's model and schedule (tiny STRING ViT over CLAMP's five views: overhead,
# front-left, back-right + one wrist view per ViperX gripper; 64x64, 8k points; tiny action-history
# and text encoders; tri-modal SigLIP; Recall@5 validation) on 14-d joint-target histories.
# These encoders feed the Diffusion Policy / ACT recipes as frozen CLAMP tokens
# (recipes/clamp/dp_*_aloha-cpu.py).
_base_ = ["./pretrain_clamp_string-vit-tiny_metaworld-cpu.py"]

data_root = "data/aloha_pretrain_cpu"
model = dict(action_encoder=dict(action_dim=14))
# the CPU dataset has 8 episodes per task (command in recipes/_base_/policies/aloha_chunk.py): 7 train, 1 for
# retrieval validation (11 tasks x ~400 steps / 20 = ~240 held-out frames, chance R@5 ~2%)
train_dataloader = dict(dataset=dict(data_root=data_root, episodes=(0, 7), frame_stride=8))
val_dataloader = dict(dataset=dict(data_root=data_root, episodes=(7, 8), frame_stride=20))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=1, end=max_epochs, eta_min=1e-5,
         convert_to_iter_based=True),
]  # fmt: skip
