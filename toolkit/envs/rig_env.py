"""Observation methods shared by the MuJoCo suites that render through a camera rig.

A suite env mixes in :class:`RigObservations` and provides ``rig`` (a
:class:`~toolkit.envs.metaworld.cameras.MujocoRig`), ``data`` (``mujoco.MjData``), ``cameras``,
``point_cameras``, ``bounds``, ``voxel_size``, ``num_points``, ``sample_method`` and
``max_depth``.

Speed (ALOHA generation, docs/suites/aloha.md "Performance"): :meth:`render_images` renders a
camera that needs both RGB and depth once (:meth:`MujocoRig.rgbd`), and :meth:`point_cloud`
unprojects only the valid pixels with cached per-camera pixel rays and crops in numpy before
sampling. Both give the same arrays as the straightforward path (two render passes;
:func:`toolkit.ops.cameras.depth_to_points` + :func:`toolkit.ops.pointcloud.process_cloud`):
tests/envs/test_rig_fast_paths.py compares them.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def render_images(
        self, rgb_cameras: Sequence[str], depth_cameras: Sequence[str]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """``(rgb {cam: (H, W, 3) uint8}, depth {cam: (H, W) float32})`` now, each dict in the
        order given; a camera in both lists is rendered once (:meth:`MujocoRig.rgbd`)."""
        depth_set = set(depth_cameras)
        rgb: dict[str, np.ndarray] = {}
        depth: dict[str, np.ndarray] = {}
        for cam in rgb_cameras:
            if cam in depth_set:
                rgb[cam], depth[cam] = self.rig.rgbd(self.data, cam)
            else:
                rgb[cam] = self.render_rgb(cam)
        for cam in depth_cameras:
            if cam not in depth:
                depth[cam] = self.render_depth(cam)
        return rgb, {cam: depth[cam] for cam in depth_cameras}

    def merged_points(
        self, depth: dict[str, np.ndarray] | None = None, bounds: Any = None
    ) -> np.ndarray:
        """``(M, 3)`` float32 world points of the valid depth pixels of ``point_cameras``
        (finite, ``> 0`` and ``< max_depth``), camera after camera, each in row-major pixel
        order: what :func:`toolkit.ops.cameras.depth_to_points` gives, computed faster.

        ``depth`` reuses already-rendered depth images (by camera name). ``bounds``
        (``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``): keep only the points inside, inclusive,
        compared in float32 as :func:`toolkit.ops.pointcloud.crop_to_bounds` does.
        """
        return self._merged(depth, bounds)[0]

    def _merged(self, depth, bounds) -> tuple[np.ndarray, int, int]:
        """``(points (M, 3) float32, valid pixels before the crop, non-finite points)``."""
        from toolkit.ops.pointcloud import as_bounds

        box = None if bounds is None else as_bounds(bounds).numpy().astype(np.float32)
        parts, n_valid, n_nonfinite = [], 0, 0
        for cam in self.point_cameras:
            d = depth[cam] if depth is not None and cam in depth else self.render_depth(cam)
            K, T_cw = self.camera_params(cam)
            pts, n, bad = self._unproject_valid(cam, d, K, T_cw, box)
            parts.append(pts)
            n_valid += n
            n_nonfinite += bad
        cloud = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        return cloud, n_valid, n_nonfinite

    def _unproject_valid(
        self, cam: str, depth: np.ndarray, K: np.ndarray, T_cw: np.ndarray, box
    ) -> tuple[np.ndarray, int, int]:
        """``(points (M, 3) float32, valid pixels, non-finite points)`` of ``depth``'s valid
        pixels, those outside ``box`` (``(2, 3)`` float32 or ``None``) dropped.

        :func:`~toolkit.ops.cameras.depth_to_points` unprojects every pixel (half of them are
        background here) through a batched 3x3 matmul; this unprojects the valid ones only,
        with the per-camera normalized rays cached and the same float32 operations in the
        same order, so the points are the same (checked to the bit by the tests), and crops
        on the contiguous coordinate columns before assembling the ``(M, 3)`` array.
        """
        from toolkit.ops.cameras import depth_to_points

        d = np.asarray(depth)
        if d.dtype == np.float32 and d.ndim == 2:
            xn, yn = self._rays(cam, K, d.shape)
            valid = np.isfinite(d) & (d > 0)
            if self.max_depth is not None:
                valid &= d < self.max_depth
            z = d[valid]
            x, y = xn[valid] * z, yn[valid] * z
            T = np.asarray(T_cw, dtype=np.float32)  # depth_to_points computes in depth's dtype
            cols = []
            for i in range(3):
                col = T[i, 0] * x
                col += T[i, 1] * y
                col += T[i, 2] * z
                col += T[i, 3]
                cols.append(col)
        else:  # not the rig's depth: the generic path
            pts, _ = depth_to_points(d, K, T_cw, max_depth=self.max_depth)
            pts = to_numpy(pts).astype(np.float32, copy=False)
            cols = [pts[:, i] for i in range(3)]
        n_valid, n_nonfinite = int(cols[0].shape[0]), 0
        if not (np.isfinite(K).all() and np.isfinite(T_cw).all()):  # broken poses only
            finite = np.isfinite(cols[0]) & np.isfinite(cols[1]) & np.isfinite(cols[2])
            n_nonfinite = int(n_valid - finite.sum())
        if box is not None:  # NaN compares False: non-finite points go too
            keep = (cols[0] >= box[0, 0]) & (cols[0] <= box[1, 0])
            for i in (1, 2):
                keep &= (cols[i] >= box[0, i]) & (cols[i] <= box[1, i])
            cols = [c[keep] for c in cols]
        return np.stack(cols, axis=1), n_valid, n_nonfinite

    def _rays(self, cam: str, K: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        """Normalized pixel rays ``(x/z, y/z)``, each ``(H, W)`` float32, of ``cam`` (cached):
        :func:`~toolkit.ops.cameras.unproject_depth` of a unit depth image, so the float32
        values are exactly the ones it multiplies depth by."""
        cache = self.__dict__.setdefault("_ray_cache", {})
        key = (cam, tuple(shape), np.asarray(K, dtype=np.float64).tobytes())
        if key not in cache:
            import torch

            from toolkit.ops.cameras import unproject_depth

            unit = unproject_depth(torch.ones(tuple(shape), dtype=torch.float32), K)
            rays = to_numpy(unit)
            cache[key] = (np.ascontiguousarray(rays[..., 0]), np.ascontiguousarray(rays[..., 1]))
        return cache[key]

    def point_cloud(
        self, depth: dict[str, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``(points (N, 3) float32, mask (N,) bool, stats)``: the merged, cropped cloud now.

        ``depth`` reuses already-rendered depth images (by camera name). Same result as
        :func:`~toolkit.ops.pointcloud.process_cloud` on the merged cloud: the crop runs
        during the unprojection (:meth:`merged_points`), keeping the same points in the same
        order, and drops every non-finite point, so nothing is left for its non-finite and
        crop steps.
        """
        from toolkit.ops.pointcloud import process_cloud

        cloud, n_input, n_nonfinite = self._merged(depth, self.bounds)
        pts, mask, stats = process_cloud(
            cloud,
            bounds=None,
            voxel_size=self.voxel_size,
            n=self.num_points,
            method=self.sample_method,
            on_empty="pad",
        )
        stats = dict(stats or {})
        stats.update(n_input=n_input, n_nonfinite=n_nonfinite)
        return (
            to_numpy(pts).astype(np.float32, copy=False),
            to_numpy(mask).astype(bool, copy=False),
            stats,
        )
