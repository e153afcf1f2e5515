# PointNet++ SSG from scratch under the full CLAR MetaWorld BC protocol, CPU size. The default
# PointNet++ groups 512 x 32 + 128 x 64 neighbourhoods per cloud and its training step takes
# ~2.2 s on one of our CPU cores (a 150-epoch run would take ~30 h); this one samples half the
# centers and neighbours per level (256 x 16, 64 x 32) with half the widths, the same two-level
# structure and radii, at ~0.4-0.5 s per step (docs/performance.md). Same head, data, schedule
# and evaluation as bc_pointnet2_1xb16_150e_metaworld.py.
_base_ = ["./bc_pointnet2_1xb16_150e_metaworld.py"]
model = dict(
    encoder=dict(
        num_centers=(256, 64),
        num_samples=(16, 32),
        mlp_dims=((32, 32, 64), (64, 64, 128)),
        global_mlp_dims=(128, 256, 512),
    )
)
