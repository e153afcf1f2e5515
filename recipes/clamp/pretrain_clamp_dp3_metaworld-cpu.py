# CLAMP Table III ablation "a point-cloud encoder in place of the ViT" (DP3's encoder), CPU size.
_base_ = ["./pretrain_clamp_string-vit-tiny_metaworld-cpu.py"]
model = dict(image_encoder=dict(_delete_=True, type="DP3Encoder"), image_input="points")
train_dataloader = dict(dataset=dict(return_points=True))
val_dataloader = dict(dataset=dict(return_points=True))
