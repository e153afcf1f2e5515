# CLAMP Table III ablation "w/o STRING", CPU size: the ViT without 3D relative position encoding.
_base_ = ["./pretrain_clamp_string-vit-tiny_metaworld-cpu.py"]
model = dict(image_encoder=dict(string_mode="none"))
