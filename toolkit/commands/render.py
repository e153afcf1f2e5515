"""``toolkit render EPISODE``: a picture of the virtual views of one episode step.

Depth images of every depth camera of the step -> world point cloud (intrinsics + extrinsics)
-> crop to the workspace -> optional voxel grid -> ``--n-points`` points (random subset, or
padding masked out) -> :func:`toolkit.ops.render.render_views` with the chosen camera rig ->
a matplotlib figure: one row per view, columns depth, X, Y, Z (world coordinates as colour,
one colour scale per channel shared by all views; empty pixels white). The first row shows the
RGB images of the real cameras when the episode has them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

NAME = "render"
HELP = "picture of the virtual views (depth, X, Y, Z) of an episode step"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", help="episode file (.hdf5)")
    p.add_argument("--step", type=int, default=0, help="step index (negative counts from the end)")
    p.add_argument("--out", required=True, help="output picture (.png)")
    p.add_argument("--views", choices=["clamp", "orthogonal", "dome"], default="clamp")
    p.add_argument("--n-points", type=int, default=300_000)
    p.add_argument("--image-size", type=int, default=None, help="default 224 (dome: 96)")
    p.add_argument(
        "--bounds",
        nargs=6,
        type=float,
        metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"),
        help="workspace crop; default: the episode's, the suite's, or the 1-99%% range of the cloud",
    )
    p.add_argument("--voxel-size", type=float, default=None, help="voxel grid (m) before sampling")
    p.add_argument("--max-depth", type=float, default=10.0, help="depth >= this is background (m)")
    p.add_argument("--splat-radius", type=int, default=0)
    p.add_argument(
        "--wrist-offset",
        nargs=3,
        type=float,
        metavar=("X", "Y", "Z"),
        help="wrist camera position in the gripper frame (default: toolkit.ops.render.DEFAULT_WRIST_EYE)",
    )
    p.add_argument("--no-wrist", action="store_true", help="CLAMP rig without the wrist views")
    p.add_argument("--seed", type=int, default=0, help="seed of the random point subset")
    p.add_argument("--dpi", type=int, default=100)


# ------------------------------------------------------------------------------------------------


def plot_views(
    views,
    names: Sequence[str],
    out: str,
    rgb: Mapping | None = None,
    title: str | None = None,
    fill_value: float = 0.0,
    xyz_range=None,
    dpi: int = 100,
) -> None:
    """Save a grid picture of rendered views ``(V, 4, H, W)``: rows = views, columns = depth,
    X, Y, Z (each channel with one colour scale over all views; empty pixels white). ``rgb``
    ``{camera: (H, W, 3) uint8}`` adds a first row with the real cameras' images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from toolkit.ops.render import valid_pixels

    v = views.detach().cpu().double()
    valid = valid_pixels(v, fill_value).numpy()
    v = v.numpy()
    V = v.shape[0]
    rgb = dict(rgb or {})
    rows = V + (1 if rgb else 0)
    fig, axes = plt.subplots(
        rows,
        4,
        figsize=(4 * 2.2, rows * 2.2 * v.shape[2] / v.shape[3] + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    r0 = 0
    if rgb:
        for j in range(4):
            axes[0, j].axis("off")
        for j, (cam, img) in enumerate(list(rgb.items())[:4]):
            axes[0, j].imshow(np.asarray(img))
            axes[0, j].set_title(f"RGB {cam}", fontsize=8)
        r0 = 1
    ranges = []
    for c in range(4):
        vals = v[:, c][valid]
        if c > 0 and xyz_range is not None:
            ranges.append((float(xyz_range[0][c - 1]), float(xyz_range[1][c - 1])))
        elif vals.size:
            ranges.append((float(np.percentile(vals, 1)), float(np.percentile(vals, 99))))
        else:
            ranges.append((0.0, 1.0))
    cmaps = ["viridis_r", "coolwarm", "coolwarm", "coolwarm"]
    labels = ["depth (m)", "X (m)", "Y (m)", "Z (m)"]
    for i in range(V):
        for c in range(4):
            ax = axes[r0 + i, c]
            img = np.ma.masked_where(~valid[i], v[i, c])
            cmap = matplotlib.colormaps[cmaps[c]].with_extremes(bad="white")
            im = ax.imshow(
                img, cmap=cmap, vmin=ranges[c][0], vmax=ranges[c][1], interpolation="nearest"
            )
            if i == 0:
                ax.set_title(labels[c], fontsize=9)
                fig.colorbar(im, ax=axes[r0:, c].tolist(), location="bottom", shrink=0.8, aspect=30)
            if c == 0:
                ax.set_ylabel(names[i] if i < len(names) else f"view {i}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    import torch

    from toolkit.data.episodes import Episode
    from toolkit.data.views import episode_bounds, make_cameras, step_cloud
    from toolkit.ops.pointcloud import process_cloud
    from toolkit.ops.render import render_views

    with Episode(args.episode) as ep:
        step = ep.step(args.step, keys=("rgb", "depth", "intrinsics", "extrinsics", "ee_pose"))
        attrs = dict(ep.attrs)
    raw = step_cloud(step, args.max_depth)
    bounds = args.bounds and [args.bounds[:3], args.bounds[3:]]
    bounds = episode_bounds(attrs, raw) if bounds is None else bounds
    gen = torch.Generator().manual_seed(args.seed)
    pts, mask, stats = process_cloud(
        raw,
        bounds=bounds,
        voxel_size=args.voxel_size,
        n=args.n_points,
        method="random",
        generator=gen,
    )
    size = args.image_size or (96 if args.views == "dome" else 224)
    cams = make_cameras(
        args.views, bounds, size, step.get("ee_pose"), args.wrist_offset, not args.no_wrist
    )
    views = render_views(pts[None], cams, mask[None], splat_radius=args.splat_radius)[0]
    names = cams.names or [f"view {i}" for i in range(cams.num_views)]
    title = (
        f"{attrs.get('suite', '')} {attrs.get('task', '')} step {step['step']}: "
        f"{stats['n_valid']} points ({stats['n_after_crop']} in the workspace of {stats['n_input']})"
    )
    plot_views(
        views, names, args.out, rgb=step.get("rgb"), title=title, xyz_range=bounds, dpi=args.dpi
    )
    n_empty = int((views[:, 0] == 0).sum())
    print(
        f"wrote {args.out}: {cams.num_views} {args.views} views ({', '.join(names)}) of "
        f"{size}x{size}, {stats['n_valid']} points, {n_empty} empty pixels"
    )
    if args.views == "clamp" and step.get("ee_pose") is None and not args.no_wrist:
        print("note: the episode has no ee_pose, so no wrist views")
    return 0
