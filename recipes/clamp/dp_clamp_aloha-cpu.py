# Table I "CLAMP encoders only": a Diffusion Policy from scratch whose encoder also attends to
# the frozen, unpooled CLAMP image and action tokens (pretrain_clamp_string-vit-tiny_aloha-cpu.py).
_base_ = ["../_base_/policies/aloha_chunk.py"]

clamp_recipe = "recipes/clamp/pretrain_clamp_string-vit-tiny_aloha-cpu.py"
clamp_inputs = dict(views="clamp", wrist=True, image_size=64, num_points=8192, history=10,
                    source="depth")  # fmt: skip
model = dict(
    clamp=dict(config=clamp_recipe, weights="work_dirs/pretrain_clamp_string-vit-tiny_aloha-cpu"),
    clamp_inputs=clamp_inputs,
)
train_dataloader = dict(dataset=dict(clamp=clamp_inputs))
val_dataloader = dict(dataset=dict(clamp=clamp_inputs))
