# Test-only recipe: a user's config that loads their own plugin module via custom_imports.
_base_ = ["../../recipes/_base_/default_runtime.py"]

custom_imports = dict(imports=["tiny_plugin"], allow_failed_imports=False)

model = dict(
    type="TinyRegressor", backbone=dict(type="TinyMLPBackbone", in_dim=8, hidden=16, dropout=0.1)
)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
    dataset=dict(type="TinyRegressionDataset", n=32),
)
train_cfg = dict(by_epoch=True, max_epochs=4)
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.05, momentum=0.9))
default_hooks = dict(
    logger=dict(type="LoggerHook", interval=1), checkpoint=dict(interval=1, max_keep_ckpts=10)
)
log_processor = dict(window_size=1)
vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(type="Visualizer", vis_backends=vis_backends, name="visualizer")
