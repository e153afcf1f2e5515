# CLAMP Table III ablation "w/o text", CPU size: no text encoder; SigLIP on image-action only.
_base_ = ["./pretrain_clamp_string-vit-tiny_metaworld-cpu.py"]
model = dict(text_encoder=None)
val_evaluator = dict(modalities=("image", "action"))
