"""The documentation pictures of ALOHA tasks: initial state from the rig cameras and CLAMP's five
virtual views rendered from the merged point cloud.

    MUJOCO_GL=egl python -m toolkit.envs.aloha.pictures --tasks all --out docs/images

writes ``aloha_<task>_init.png`` (front_left, back_right, overhead, left_wrist, right_wrist at
seed 0) and ``aloha_<task>_clamp_views.png`` (depth + XYZ of the five CLAMP views) per task.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def render_task(task: str, out_dir: str, size: int = 200, seed: int = 0) -> list[str]:
    """Write the two pictures of ``task``; return their paths."""
    import imageio.v2 as imageio
    import numpy as np
    import torch

    from toolkit.commands.render import plot_views
    from toolkit.envs import get_suite
    from toolkit.envs.aloha.cameras import CAMERA_NAMES, WORKSPACE_BOUNDS
    from toolkit.ops.render import clamp_cameras, render_views

    env = get_suite("aloha").make_env(
        task,
        cameras={c: (size, size) for c in CAMERA_NAMES},
        num_points=200_000,
        voxel_size=0.002,
        sample_method="random",
    )
    try:
        obs = env.reset(seed=seed)
        row = np.concatenate([obs["rgb"][c] for c in CAMERA_NAMES], axis=1)
        init = os.path.join(out_dir, f"aloha_{task}_init.png")
        imageio.imwrite(init, row)
        grippers = np.asarray(obs["ee_pose"], dtype=np.float32)  # (2, 4, 4) TCP poses
        bounds = torch.tensor(WORKSPACE_BOUNDS, dtype=torch.float32)
        cams = clamp_cameras(torch.from_numpy(grippers)[None], bounds, 224)
        pts, mask = torch.from_numpy(obs["points"]), torch.from_numpy(obs["points_mask"])
        views = render_views(pts[None].float(), cams, mask[None])[0]
        path = os.path.join(out_dir, f"aloha_{task}_clamp_views.png")
        plot_views(
            views,
            cams.names,
            path,
            rgb={c: obs["rgb"][c] for c in ("front_left", "back_right", "overhead", "left_wrist")},
            xyz_range=WORKSPACE_BOUNDS,
            dpi=60,
            title=f"ALOHA {task} (seed {seed}): 5 CLAMP views from the merged cloud",
        )
    finally:
        env.close()
    return [init, path]


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.envs.aloha.tasks import expand_tasks

    p = argparse.ArgumentParser(prog="python -m toolkit.envs.aloha.pictures")
    p.add_argument("--tasks", nargs="+", default=["all"], help="names or groups")
    p.add_argument("--out", default="docs/images")
    p.add_argument("--size", type=int, default=200, help="camera image side")
    args = p.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.makedirs(args.out, exist_ok=True)
    for task in expand_tasks(args.tasks):
        for path in render_task(task, args.out, args.size):
            print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
