"""Coordinate normalisation: per-cloud unit sphere (Point-MAE) and workspace cube ([-1, 1]^3).

Points are ``(..., N, C)`` with xyz in the first three channels; only xyz is transformed,
extra channels pass through unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor

from toolkit.utils.errors import ShapeError

from .pointcloud import as_bounds

__all__ = ["center_and_scale", "workspace_denormalize", "workspace_normalize"]


def _with_xyz(points: Tensor, xyz: Tensor) -> Tensor:
    return xyz if points.shape[-1] == 3 else torch.cat([xyz, points[..., 3:]], -1)


def center_and_scale(points, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Center on the centroid and scale into the unit ball (Point-MAE's ``pc_norm``).

    ``center`` is the mean of the valid points, ``scale`` the largest distance of a valid
    point from it; ``normalized = (points - center) / scale`` for every point (invalid points
    are transformed too but do not count). A degenerate cloud (one point, or all points equal)
    gets ``scale = 1``; a cloud with no valid point gets ``center = 0, scale = 1``.

    Args:
        points: ``(..., N, C)``, C >= 3.
        mask: optional ``(..., N)`` bool, True for valid points.

    Returns:
        ``(normalized (..., N, C), center (..., 3), scale (..., 1))``; invert with
        ``normalized[..., :3] * scale[..., None, :] + center[..., None, :]``.
    """
    points = torch.as_tensor(points)
    if points.dim() < 2 or points.shape[-1] < 3:
        raise ShapeError(
            f"center_and_scale: points must be (..., N, C>=3), got {tuple(points.shape)}"
        )
    xyz = points[..., :3]
    if mask is None:
        center = xyz.mean(-2)
        dist = torch.linalg.vector_norm(xyz - center.unsqueeze(-2), dim=-1)
        scale = dist.amax(-1, keepdim=True)
    else:
        w = mask.to(xyz.dtype).unsqueeze(-1)
        count = w.sum(-2)
        center = (xyz * w).sum(-2) / count.clamp(min=1)
        dist = torch.linalg.vector_norm(xyz - center.unsqueeze(-2), dim=-1)
        scale = torch.where(mask, dist, torch.zeros_like(dist)).amax(-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    normalized = (xyz - center.unsqueeze(-2)) / scale.unsqueeze(-1)
    return _with_xyz(points, normalized), center, scale


def _mid_half(bounds, points: Tensor) -> tuple[Tensor, Tensor]:
    b = as_bounds(bounds, points)
    half = (b[1] - b[0]) / 2
    return (b[0] + b[1]) / 2, torch.where(half > 0, half, torch.ones_like(half))


def workspace_normalize(points, bounds) -> Tensor:
    """Map the workspace box ``bounds`` (``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``) to
    ``[-1, 1]^3``: ``2 (p - min) / (max - min) - 1``. Points outside land outside ``[-1, 1]``.
    A zero-extent axis maps to 0. Inverse: :func:`workspace_denormalize`.
    """
    points = torch.as_tensor(points)
    mid, half = _mid_half(bounds, points)
    return _with_xyz(points, (points[..., :3] - mid) / half)


def workspace_denormalize(points, bounds) -> Tensor:
    """Inverse of :func:`workspace_normalize`: ``[-1, 1]^3`` -> world coordinates."""
    points = torch.as_tensor(points)
    mid, half = _mid_half(bounds, points)
    return _with_xyz(points, points[..., :3] * half + mid)
