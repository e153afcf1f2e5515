"""Helpers for padded point clouds: a boolean ``mask`` (B, N) marks the valid points.

Backbones accept ``mask`` so that batches of clouds with different sizes can be padded to one
``N``. With these helpers (and the masks of :mod:`toolkit.ops`) a padded cloud behaves exactly
like the cloud of its valid points, in their original order.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "check_point_mask",
    "drop_full_mask",
    "masked_max",
    "masked_mean",
    "push_invalid_far",
]


def check_point_mask(points: Tensor, mask: Tensor | None, min_valid: int = 1) -> None:
    """Validate ``points`` (B, N, 3) and an optional ``mask`` (B, N) bool.

    Raises:
        ValueError: wrong shapes / dtype, or a sample with fewer than ``min_valid`` valid points.
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, N, 3); got {tuple(points.shape)}")
    n = points.shape[1]
    if mask is None:
        if n < min_valid:
            raise ValueError(f"need at least {min_valid} points per cloud; got N={n}")
        return
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(points.shape[:2]):
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(points.shape[:2])}; "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    fewest = int(mask.sum(dim=1).min())  # one host sync; only when a mask is given
    if fewest < min_valid:
        raise ValueError(
            f"a cloud in the batch has {fewest} valid points; this backbone needs >= {min_valid}"
        )


def drop_full_mask(mask: Tensor | None) -> Tensor | None:
    """``None`` when every point is valid (or no mask is given), else ``mask``.

    A full mask means the same as no mask, and the unmasked code paths are faster (no row
    gathers / scatters, fused max-pooling). Costs one host sync when a mask is given.
    """
    if mask is None or bool(mask.all()):
        return None
    return mask


def masked_max(x: Tensor, mask: Tensor | None, dim: int = 1) -> Tensor:
    """Max over ``dim`` of ``x`` (B, N, C) ignoring entries where ``mask`` (B, N) is False."""
    if mask is None:
        return x.amax(dim=dim)
    fill = torch.finfo(x.dtype).min
    return x.masked_fill(~mask.unsqueeze(-1), fill).amax(dim=dim)


def masked_mean(x: Tensor, mask: Tensor | None, dim: int = 1) -> Tensor:
    """Mean over ``dim`` of ``x`` (B, N, C) over the entries where ``mask`` (B, N) is True."""
    if mask is None:
        return x.mean(dim=dim)
    w = mask.unsqueeze(-1).to(x.dtype)
    return (x * w).sum(dim=dim) / w.sum(dim=dim).clamp_min(1.0)


def push_invalid_far(points: Tensor, mask: Tensor) -> Tensor:
    """Move invalid points far away from every valid point (for ball-query references).

    The far point is ``1e3 + 10 * max|valid coordinate|`` on every axis, so a padded point is
    never inside the ball (radius < 1e3) of a valid query. Invalid coordinates may be non-finite.
    """
    scale = points.detach().abs().masked_fill(~mask.unsqueeze(-1), 0).amax(dim=(1, 2))
    far = (1e3 + 10.0 * scale).view(-1, 1, 1).to(points.dtype)
    return torch.where(mask.unsqueeze(-1), points, far.expand_as(points))
