# CLAR pretraining at CPU size on the RLBench pretraining tasks: Point-MAE tiny and tiny
# RANDOMLY INITIALIZED CLIP teachers (no weights can be downloaded here; see the MetaWorld
# counterpart pretrain_clar_pointmae-tiny_metaworld-cpu.py): exercises the whole pipeline on
# converted RLBench data, not a result.
_base_ = ["./pretrain_clar_pointmae-tiny_metaworld-cpu.py", "../_base_/data/rlbench_pretrain.py"]

data_root = {{_base_.rlbench_pretrain_root}}
workspace_bounds = {{_base_.rlbench_bounds}}
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        tasks={{_base_.rlbench_pretrain_tasks}},
        split="pretrain",
        camera={{_base_.rlbench_camera}},
        text="description",
        workspace_bounds=workspace_bounds,
    )
)
