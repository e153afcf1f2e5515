"""Episode step -> world cloud -> virtual views: the pieces ``toolkit render`` and the CLAMP
dataset share (merged cloud of every depth camera, workspace bounds, the camera rigs)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["episode_bounds", "make_cameras", "step_cloud"]


def step_cloud(step: Mapping, max_depth: float | None = 10.0):
    """World-frame points ``(M, 3)`` float32 of every depth camera of an episode step
    (``step["depth"|"intrinsics"|"extrinsics"][cam]``), background and invalid depth dropped."""
    import torch

    from toolkit.ops.cameras import depth_to_points

    clouds = []
    for cam, depth in step["depth"].items():
        pts, _ = depth_to_points(
            torch.as_tensor(depth, dtype=torch.float64),
            step["intrinsics"][cam],
            step["extrinsics"][cam],
            max_depth=max_depth,
        )
        clouds.append(pts.float())
    if not clouds:
        from toolkit.utils.errors import ToolkitError

        raise ToolkitError("the episode step has no depth images: nothing to render")
    return torch.cat(clouds)


def episode_bounds(attrs: Mapping, points=None):
    """Workspace bounds ``(2, 3)`` of an episode: ``workspace_bounds`` / ``bounds`` in its
    attributes or its config, else the suite's default, else the 1-99 % range of ``points``
    plus 1 cm."""
    import numpy as np
    import torch

    for src in (attrs, attrs.get("config") or {}):
        for key in ("workspace_bounds", "bounds"):
            if isinstance(src, Mapping) and src.get(key) is not None:
                return np.asarray(src[key], dtype=np.float64).reshape(2, 3)
    if attrs.get("suite") == "metaworld":
        from toolkit.envs.metaworld.cameras import WORKSPACE_BOUNDS

        return np.asarray(WORKSPACE_BOUNDS, dtype=np.float64)
    if points is None or len(points) == 0:
        from toolkit.utils.errors import ToolkitError

        raise ToolkitError("no workspace bounds in the episode: pass --bounds")
    sample = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:100_000]
    q = torch.quantile(
        points[sample].double(), torch.tensor([0.01, 0.99], dtype=torch.float64), dim=0
    ).numpy()
    return q + np.array([[-0.01], [0.01]])  # 1 cm of slack: a flat cloud still has a volume


def make_cameras(
    kind: str, bounds, image_size: int, gripper_poses=None, wrist_offset=None, wrist=True
):
    """The rig named ``kind`` (clamp | orthogonal | dome) for one cloud."""
    import torch

    from toolkit.ops.render import (
        DEFAULT_WRIST_EYE,
        clamp_cameras,
        dome_cameras,
        orthogonal_cameras,
    )

    b = torch.as_tensor(bounds, dtype=torch.float32)
    if kind == "orthogonal":
        return orthogonal_cameras(b, image_size)
    if kind == "dome":
        return dome_cameras(16, b, image_size)
    poses = (
        None if gripper_poses is None else torch.as_tensor(gripper_poses, dtype=torch.float32)[None]
    )
    return clamp_cameras(
        poses,
        b,
        image_size,
        wrist=wrist and poses is not None,
        wrist_offset=wrist_offset or DEFAULT_WRIST_EYE,
    )
