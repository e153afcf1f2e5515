"""Episode step -> world cloud -> virtual views: the pieces ``toolkit render`` and the CLAMP
dataset share (merged cloud of every depth camera, workspace bounds, the camera rigs)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["episode_bounds", "make_cameras", "render_step_views", "step_cloud"]


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
    if attrs.get("suite") == "aloha":
        from toolkit.envs.aloha.cameras import WORKSPACE_BOUNDS

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


def render_step_views(
    cloud,
    bounds,
    image_size: int,
    num_points: int,
    kind: str = "clamp",
    wrist: bool = True,
    gripper_poses=None,
    seed: int = 0,
):
    """CLAMP's ``(V, 4, S, S)`` depth + XYZ views of one step's world cloud ``(M, 3)``.

    The cloud is subsampled at random (seeded) to ``num_points`` when larger; padding is not
    rendered. ``gripper_poses`` ``(G, 4, 4)`` place the wrist views (none: fixed views only).
    Shared by the CLAMP pretraining dataset, the policy datasets and policies at rollout time,
    so the frozen encoders see the same views in every stage.
    """
    import torch

    from toolkit.ops.render import render_views

    cloud = torch.as_tensor(cloud, dtype=torch.float32).reshape(-1, 3)
    if len(cloud) > num_points:
        g = torch.Generator().manual_seed(int(seed))
        cloud = cloud[torch.randperm(len(cloud), generator=g)[:num_points]]
    pts = torch.zeros(1, num_points, 3)
    mask = torch.zeros(1, num_points, dtype=torch.bool)
    pts[0, : len(cloud)], mask[0, : len(cloud)] = cloud, True
    cams = make_cameras(kind, bounds, image_size, gripper_poses=gripper_poses, wrist=wrist)
    return render_views(pts, cams, mask=mask)[0]
