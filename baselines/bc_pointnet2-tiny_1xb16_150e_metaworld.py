# PointNet++ SSG from scratch under the full CLAR MetaWorld BC protocol, CPU size. The default
# PointNet++ groups 512 x 32 + 128 x 64 neighbourhoods per cloud and its training step takes
# ~2.2 s on one of our CPU cores (a 150-epoch run would take ~30 h). This one keeps the
# two-level structure, the radii, the head and the protocol, with 128 x 16 + 32 x 16
# neighbourhoods and half the widths: ~0.17-0.24 s per step on one loaded core, about twice
# PointNet-256 (docs/performance.md). Same data, schedule and evaluation as
# bc_pointnet2_1xb16_150e_metaworld.py.
_base_ = ["./bc_pointnet2_1xb16_150e_metaworld.py"]
model = dict(
    encoder=dict(
        num_centers=(128, 32),
        num_samples=(16, 16),
        mlp_dims=((32, 32, 64), (64, 64, 128)),
        global_mlp_dims=(128, 256, 512),
    )
)
