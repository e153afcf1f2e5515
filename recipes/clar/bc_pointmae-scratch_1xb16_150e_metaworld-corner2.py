# Perspective variation (CLAR Table IV): train on the `corner` camera, evaluate on `corner2`.
_base_ = ["./bc_pointmae-scratch_1xb16_150e_metaworld.py"]
custom_hooks = [
    dict(type="RNGStateHook"),
    dict(type="FitNormalizationHook"),
    dict(
        type="RolloutEvalHook",
        suite=dict(type="MetaWorldSuite"),
        interval=10,
        episodes=25,
        max_steps=200,
        env_kwargs=dict(cameras=["corner2"], rgb=False),
    ),
]
