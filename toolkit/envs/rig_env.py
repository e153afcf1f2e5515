"""Observation methods shared by the MuJoCo suites that render through a camera rig.

A suite env mixes in :class:`RigObservations` and provides ``rig`` (a
:class:`~toolkit.envs.metaworld.cameras.MujocoRig`), ``data`` (``mujoco.MjData``), ``cameras``,
``point_cameras``, ``bounds``, ``voxel_size``, ``num_points``, ``sample_method`` and
``max_depth``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RigObservations", "to_numpy"]


def to_numpy(x: Any) -> np.ndarray:
    """A torch tensor or array-like as a numpy array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class RigObservations:
    """``render_rgb`` / ``render_depth`` / ``camera_params`` / ``point_cloud`` from the rig."""

    def render_rgb(self, camera: str | None = None) -> np.ndarray:
        return self.rig.rgb(self.data, camera or self.cameras[0].name)

    def render_depth(self, camera: str | None = None) -> np.ndarray:
        return self.rig.depth(self.data, camera or self.cameras[0].name)

    def camera_params(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """``(K (3, 3), camera-to-world (4, 4))`` of ``camera`` now (OpenCV convention)."""
        return self.rig.intrinsics(camera), self.rig.extrinsics(self.data, camera)

    def point_cloud(
        self, depth: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``(points (N, 3) float32, mask (N,) bool, stats)``: the merged, cropped cloud now.

        ``depth`` reuses already-rendered depth images (by camera name).
        """
        from toolkit.ops.cameras import depth_to_points
        from toolkit.ops.pointcloud import process_cloud

        parts = []
        for cam in self.point_cameras:
            d = depth[cam] if depth is not None and cam in depth else self.render_depth(cam)
            K, T_cw = self.camera_params(cam)
            pts, _valid = depth_to_points(d, K, T_cw, max_depth=self.max_depth)
            parts.append(to_numpy(pts).astype(np.float32, copy=False))
        cloud = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        pts, mask, stats = process_cloud(
            cloud,
            bounds=self.bounds,
            voxel_size=self.voxel_size,
            n=self.num_points,
            method=self.sample_method,
            on_empty="pad",
        )
        return (
            to_numpy(pts).astype(np.float32, copy=False),
            to_numpy(mask).astype(bool, copy=False),
            dict(stats or {}),
        )
