# Table I "ACT + CLAMP": ACT with the frozen CLAMP image and action tokens.
_base_ = ["./act_scratch_aloha-cpu.py"]

clamp_inputs = dict(views="clamp", wrist=True, image_size=64, num_points=8192, history=10,
                    source="depth")  # fmt: skip
model = dict(
    clamp=dict(
        config="recipes/clamp/pretrain_clamp_string-vit-tiny_aloha-cpu.py",
        weights="work_dirs/pretrain_clamp_string-vit-tiny_aloha-cpu",
    ),
    clamp_inputs=clamp_inputs,
)
train_dataloader = dict(dataset=dict(clamp=clamp_inputs))
val_dataloader = dict(dataset=dict(clamp=clamp_inputs))
