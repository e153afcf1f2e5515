"""Virtual multi-view rendering of point clouds (CLAMP / RVT style), in pure batched torch.

A point cloud ``(B, N, 3)`` in the world frame is splatted into ``V`` virtual cameras per cloud,
giving ``(B, V, 4, H, W)`` images with channels ``(depth, x, y, z)``: the z-depth of the nearest
point in the camera and its world coordinates. See docs/rendering.md for the conventions,
camera rigs and benchmark figures. The cameras and rigs live in :mod:`toolkit.ops.rigs` and are
re-exported here.

Z-buffer: every (point, view) pair that lands in the image gets an int64 key
``bits(float32 depth) * 2**32 + point_index``; the bit pattern of a positive float32 is monotonic
in its value, so ``scatter_reduce_(amin)`` over the pixel index keeps the nearest point, and
**ties (equal float32 depth) go to the lowest point index**. This is the RVT-2 packing without
depth quantization. Invalid pairs are sent to one dummy slot (``torch.where``, no boolean-mask
indexing, so shapes stay static and torch.compile-friendly).
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import torch
from torch import Tensor

from toolkit.ops.cameras import check_rigid
from toolkit.ops.rigs import (
    CLAMP_VIEW_NAMES,
    DEFAULT_WRIST_EYE,
    DEFAULT_WRIST_TARGET,
    DEFAULT_WRIST_UP,
    ORTHOGONAL_VIEW_NAMES,
    VirtualCameras,
    clamp_cameras,
    clamp_fixed_cameras,
    dome_cameras,
    orthogonal_cameras,
    wrist_cameras,
)
from toolkit.utils.errors import ShapeError

__all__ = [
    "CLAMP_VIEW_NAMES",
    "DEFAULT_WRIST_EYE",
    "DEFAULT_WRIST_TARGET",
    "DEFAULT_WRIST_UP",
    "ORTHOGONAL_VIEW_NAMES",
    "VirtualCameras",
    "clamp_cameras",
    "clamp_fixed_cameras",
    "dome_cameras",
    "orthogonal_cameras",
    "patch_coordinates",
    "render_views",
    "tile_views",
    "untile_views",
    "valid_pixels",
    "wrist_cameras",
]

_SENTINEL = torch.iinfo(torch.int64).max
_SHIFT = 1 << 32  # multiply, not <<: int64 shifts are not vectorized on CPU (10x slower)
_LOW32 = 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Renderer
# --------------------------------------------------------------------------------------------


def _project_keys(
    points: Tensor,
    P: Tensor,
    mask: Tensor | None,
    H: int,
    W: int,
    perspective: bool,
    near: float,
    arithmetic_keys: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """points (b, N, 3), P (b, V, 3, 4) -> flat pixel (b V N) int64 (dummy = b V H W for
    invalid pairs), z-buffer keys (b V N) int64, depth z (b, V, N), invalid (b, V, N) bool."""
    b, N, _ = points.shape
    V = P.shape[1]
    # One fused (b, 3V, 3) @ (b, 3, N) + bias: broadcasting matmul + add is 20x slower on CPU.
    q = torch.baddbmm(
        P[..., 3:].reshape(b, 3 * V, 1), P[..., :3].reshape(b, 3 * V, 3), points.transpose(1, 2)
    )
    u, v, z = q.view(b, V, 3, N).unbind(2)
    # In-place where possible: fresh multi-MB buffers cost page faults on CPU.
    if perspective:
        inv_z = torch.reciprocal(z)
        u.mul_(inv_z)
        v.mul_(inv_z)
    invalid = z <= near
    invalid |= u < 0
    invalid |= u >= W
    invalid |= v < 0
    invalid |= v >= H
    if mask is not None:
        invalid |= ~mask.unsqueeze(1)
    # u, v >= 0 where valid, so truncation == floor. int32 arithmetic (b V H W < 2**31) is 3x
    # faster than int64; scatter needs int64 indices.
    itype = torch.int32 if b * V * H * W < 2**31 - 1 else torch.int64
    pix = v.to(itype).mul_(W).add_(u.to(itype))
    pix += torch.arange(b * V, device=points.device, dtype=itype).view(b, V, 1) * (H * W)
    pix = pix.masked_fill_(invalid, b * V * H * W).to(torch.int64)
    zbits = z.to(torch.float32).view(torch.int32)  # >= 0 for z > 0, monotonic in z
    if arithmetic_keys:
        key = zbits.to(torch.int64) * _SHIFT + torch.arange(N, device=points.device)
    else:  # same value: little-endian (low = index, high = depth bits) pair viewed as int64
        idx = torch.arange(N, device=points.device, dtype=torch.int32).expand(b, V, N)
        key = torch.stack([idx, zbits], dim=-1).view(torch.int64).squeeze(-1)
    return pix.view(-1), key.view(-1), z, invalid


def _gather(buf: Tensor, points: Tensor, z: Tensor, H: int, W: int, fill_value: float) -> Tensor:
    """Winner keys (b V H W) -> (b, V, 4, H, W) (depth, x, y, z)."""
    b, V, N = z.shape
    win = buf.view(b, V, H * W)
    empty = win == _SENTINEL
    idx = torch.where(empty, 0, win & _LOW32)
    out = torch.empty(b, V, 4, H * W, dtype=z.dtype, device=z.device)
    out[:, :, 0] = z.gather(2, idx)
    xyz = points.transpose(1, 2).gather(2, idx.view(b, 1, V * H * W).expand(b, 3, V * H * W))
    out[:, :, 1:] = xyz.view(b, 3, V, H * W).transpose(1, 2)
    out.masked_fill_(empty.unsqueeze(2), fill_value)
    return out.view(b, V, 4, H, W)


_compiled: dict[str, object] = {}


def _maybe_compiled(name: str, fn, use: bool):
    if not use:
        return fn
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, dynamic=None)
    return _compiled[name]


def _compile_default() -> bool:
    return os.environ.get("TOOLKIT_RENDER_COMPILE", "0").lower() in ("1", "true", "yes", "on")


def _render_one(points, P, mask, H, W, perspective, near, fill_value, splat_radius, compiled):
    b, N, _ = points.shape
    V = P.shape[1]
    project = _maybe_compiled("project", _project_keys, compiled)
    gather = _maybe_compiled("gather", _gather, compiled)
    arithmetic = compiled or sys.byteorder != "little"
    pix, key, z, invalid = project(points, P, mask, H, W, perspective, near, arithmetic)
    size = b * V * H * W
    buf = torch.full((size + 1,), _SENTINEL, dtype=torch.int64, device=points.device)
    if splat_radius <= 0:
        buf.scatter_reduce_(0, pix, key, "amin")
    else:
        # Splat each point into the (2r+1)^2 square around its pixel, with the same key.
        local = pix.view(b, V, N) % (H * W)
        row, col = local // W, local % W
        valid = ~invalid
        for dy in range(-splat_radius, splat_radius + 1):
            for dx in range(-splat_radius, splat_radius + 1):
                ok = valid & (row + dy >= 0) & (row + dy < H) & (col + dx >= 0) & (col + dx < W)
                shifted = torch.where(ok, pix.view(b, V, N) + (dy * W + dx), size)
                buf.scatter_reduce_(0, shifted.view(-1), key, "amin")
    return gather(buf[:size], points, z, H, W, fill_value)


def render_views(
    points: Tensor,
    cameras: VirtualCameras,
    mask: Tensor | None = None,
    fill_value: float = 0.0,
    splat_radius: int = 0,
    *,
    compile: bool | None = None,
) -> Tensor:
    """Render point clouds into virtual views with a z-buffer.

    Args:
        points: ``(B, N, 3)`` world-frame points (float32 or float64).
        cameras: :class:`VirtualCameras`, shared ``(V, ...)`` or per cloud ``(B, V, ...)``.
        mask: ``(B, N)`` bool, ``False`` = padding point that is not rendered (e.g. the origin
            points that pad a cloud to a fixed size).
        fill_value: value of all four channels (depth and XYZ) of empty pixels. Rendered depths
            are always ``> near > 0``, so any ``fill_value <= 0`` (or NaN) keeps empty pixels
            distinguishable; :func:`valid_pixels` recovers the mask.
        splat_radius: each point also covers the ``(2r+1)^2`` pixels around its own, with its
            own depth (closes holes of sparse clouds; ``0`` = one pixel per point).
        compile: run the projection/key computation and the gather through ``torch.compile``
            (inductor). ``None`` reads ``TOOLKIT_RENDER_COMPILE`` (default off). Same output
            either way; the first call per shape pays the compile time.

    Returns:
        ``(B, V, 4, H, W)`` in the dtype of ``points``: channel 0 = z-depth in the virtual
        camera (metres; orthographic: distance from the image plane), channels 1-3 = world
        XYZ of the visible point. Ties at equal float32 depth go to the lowest point index.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ShapeError(f"render_views: points must be (B, N, 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        points = points.to(torch.get_default_dtype())
    B, N, _ = points.shape
    if N >= _SHIFT:
        raise ShapeError(
            f"render_views: points must have at most 2**32 - 1 points per cloud, got {N}"
        )
    if mask is not None:
        if tuple(mask.shape) != (B, N):
            raise ShapeError(
                f"render_views: mask must be (B, N) = {(B, N)}, got {tuple(mask.shape)}"
            )
        mask = mask.to(device=points.device, dtype=torch.bool)
    check_rigid(cameras.cam_to_world, "VirtualCameras.cam_to_world")
    if cameras.batch_shape and cameras.batch_shape[0] not in (1, B):
        raise ShapeError(
            f"render_views: cameras have batch {cameras.batch_shape[0]} but points have batch {B}"
        )
    P = cameras.to(device=points.device).projection_matrices().to(points.dtype)
    V = P.shape[-3]
    P = P.expand(B, V, 3, 4) if P.ndim == 4 else P.unsqueeze(0).expand(B, V, 3, 4)
    H, W = cameras.height, cameras.width
    if B == 0:
        return points.new_zeros(0, V, 4, H, W)
    compiled = _compile_default() if compile is None else bool(compile)
    args = (
        H,
        W,
        cameras.projection == "perspective",
        float(cameras.near),
        float(fill_value),
        int(splat_radius),
    )
    # One cloud at a time: bounded memory (about 40 bytes per (view, point) pair), static shapes
    # for torch.compile, and results that do not depend on the batch they came in (a batched
    # matmul may round differently for different batch sizes).
    outs = []
    for i in range(B):
        m = None if mask is None else mask[i : i + 1]
        try:
            outs.append(_render_one(points[i : i + 1], P[i : i + 1], m, *args, compiled))
        except Exception as exc:  # a failed inductor build must not break rendering
            if not compiled:
                raise
            warnings.warn(
                f"render_views: torch.compile failed ({exc!r}); using eager", stacklevel=2
            )
            compiled = False
            outs.append(_render_one(points[i : i + 1], P[i : i + 1], m, *args, False))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)


# --------------------------------------------------------------------------------------------
# Rendered views -> patches / tiles
# --------------------------------------------------------------------------------------------


def valid_pixels(views: Tensor, fill_value: float = 0.0) -> Tensor:
    """``(..., 4, H, W)`` rendered views -> ``(..., H, W)`` bool: pixels that show a point."""
    depth = views[..., 0, :, :]
    valid = depth > 0
    if not math.isnan(fill_value):
        valid = valid & (depth != fill_value)
    return valid


def patch_coordinates(
    views: Tensor, patch_size: int, fill_value: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Mean world XYZ of the visible points of each ``P x P`` patch (STRING token positions).

    Args:
        views: ``(B, V, 4, H, W)`` from :func:`render_views` (H and W divisible by P).
        patch_size: P.
        fill_value: the ``fill_value`` the views were rendered with.

    Returns:
        ``coords (B, V, H/P, W/P, 3)`` (0 for empty patches) and ``valid (B, V, H/P, W/P)``
        bool (``False`` where no pixel of the patch shows a point).
    """
    *lead, C, H, W = views.shape
    P = int(patch_size)
    if C != 4 or H % P or W % P:
        raise ShapeError(
            f"patch_coordinates: views must be (..., 4, H, W) with H, W divisible by "
            f"patch_size={P}, got {tuple(views.shape)}"
        )
    pv = valid_pixels(views, fill_value)  # (..., H, W)
    xyz = torch.where(pv.unsqueeze(-3), views[..., 1:, :, :], 0.0)
    gh, gw = H // P, W // P
    sums = xyz.reshape(*lead, 3, gh, P, gw, P).sum(dim=(-3, -1))  # (..., 3, gh, gw)
    counts = pv.reshape(*lead, gh, P, gw, P).sum(dim=(-3, -1))  # (..., gh, gw)
    valid = counts > 0
    coords = sums / counts.clamp(min=1).unsqueeze(-3).to(sums.dtype)
    return coords.movedim(-3, -1), valid


def tile_views(views: Tensor) -> Tensor:
    """``(B, V, C, H, W)`` -> ``(B, C, H, V*W)``: views side by side (CLAMP's 224x1120 input)."""
    B, V, C, H, W = views.shape
    return views.permute(0, 2, 3, 1, 4).reshape(B, C, H, V * W)


def untile_views(x: Tensor, num_views: int) -> Tensor:
    """Inverse of :func:`tile_views`: ``(B, C, H, V*W)`` -> ``(B, V, C, H, W)``."""
    B, C, H, VW = x.shape
    if VW % num_views:
        raise ShapeError(
            f"untile_views: x must be (B, C, H, V*W) with width divisible by "
            f"num_views={num_views}, got {tuple(x.shape)}"
        )
    W = VW // num_views
    return x.reshape(B, C, H, num_views, W).permute(0, 3, 1, 2, 4)
