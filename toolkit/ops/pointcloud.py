"""Single-cloud processing: merge, drop non-finite, crop, voxel-downsample, subsample or pad.

A cloud is ``(N, C)`` with xyz in the first three columns (extra columns, e.g. RGB, ride
along). Functions accept numpy arrays too and return torch tensors. The chain used for data
generation is :func:`process_cloud`: drop non-finite -> crop -> voxel -> downsample or pad.

Empty clouds (nothing left after dropping / cropping): ``on_empty="pad"`` returns ``n`` pad
points (``pad_value``, CLAMP pads with the origin) and an all-false mask; ``on_empty="raise"``
raises :class:`EmptyPointCloudError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from toolkit.utils.errors import ShapeError, ToolkitError

from .sampling import downsample_points

__all__ = [
    "EmptyPointCloudError",
    "as_bounds",
    "bounds_mask",
    "crop_to_bounds",
    "drop_nonfinite",
    "merge_clouds",
    "process_cloud",
    "subsample_or_pad",
    "voxel_downsample",
]

ON_EMPTY = ("pad", "raise")


class EmptyPointCloudError(ToolkitError, ValueError):
    """A point cloud is empty where points are required (e.g. nothing left after cropping)."""


def _as_cloud(points, name: str) -> Tensor:
    pts = torch.as_tensor(points)
    if pts.dim() != 2 or pts.shape[1] < 3:
        raise ShapeError(f"{name}: points must be (N, C>=3), got {tuple(pts.shape)}")
    if not pts.is_floating_point():
        pts = pts.to(torch.get_default_dtype())
    return pts


def as_bounds(bounds, like: Tensor | None = None) -> Tensor:
    """``bounds`` as a ``(2, 3)`` tensor ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``.

    Takes nested sequences, numpy arrays or tensors; the result has ``like``'s dtype/device.
    Raises ``ValueError`` unless the shape is (2, 3), the values are finite and min <= max.
    """
    b = torch.as_tensor(bounds, dtype=torch.float64, device="cpu")
    if b.shape != (2, 3):
        raise ShapeError(
            f"bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]], got shape {tuple(b.shape)}"
        )
    if not torch.isfinite(b).all() or (b[0] > b[1]).any():
        raise ValueError(f"bounds must be finite with min <= max, got {b.tolist()}")
    if like is not None:
        b = b.to(dtype=like.dtype if like.is_floating_point() else None, device=like.device)
    return b


def merge_clouds(clouds: Sequence) -> Tensor:
    """Concatenate clouds ``(N_i, C)`` (e.g. one per camera, all in the world frame) -> ``(sum N_i, C)``."""
    if len(clouds) == 0:
        raise ValueError("merge_clouds: no clouds given")
    parts = [_as_cloud(c, "merge_clouds") for c in clouds]
    channels = {p.shape[1] for p in parts}
    if len(channels) != 1:
        raise ShapeError(
            f"merge_clouds: clouds must all be (N_i, C) with one channel count C, "
            f"got different channel counts {sorted(channels)}"
        )
    dtype = parts[0].dtype
    for p in parts[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    return torch.cat([p.to(device=parts[0].device, dtype=dtype) for p in parts], 0)


def drop_nonfinite(points) -> tuple[Tensor, int]:
    """Remove rows with any NaN / inf value (in any column) -> ``(points (M, C), n_dropped)``."""
    pts = _as_cloud(points, "drop_nonfinite")
    keep = torch.isfinite(pts).all(1)
    n_dropped = int(pts.shape[0] - keep.sum())
    return (pts[keep] if n_dropped else pts), n_dropped


def bounds_mask(points, bounds) -> Tensor:
    """``(..., N)`` bool: xyz (first three channels) inside ``bounds``, inclusive. NaN -> False."""
    pts = torch.as_tensor(points)
    if pts.shape[-1] < 3:
        raise ShapeError(f"bounds_mask: points must be (..., N, C>=3), got {tuple(pts.shape)}")
    b = as_bounds(bounds, pts)
    xyz = pts[..., :3]
    return ((xyz >= b[0]) & (xyz <= b[1])).all(-1)


def crop_to_bounds(points, bounds) -> Tensor:
    """Keep the points of ``(N, C)`` whose xyz lies inside ``bounds`` (inclusive) -> ``(M, C)``."""
    pts = _as_cloud(points, "crop_to_bounds")
    return pts[bounds_mask(pts, bounds)]


def voxel_downsample(points, voxel_size: float, reduce: str = "mean") -> Tensor:
    """One point per occupied voxel of a grid anchored at the world origin.

    A point ``p`` falls in voxel ``floor(p / voxel_size)`` (so the grid is the same for every
    frame). ``reduce="mean"`` averages all channels of the voxel's points; ``"first"`` keeps
    the voxel's first point in input order. Output rows are sorted by voxel (x, then y, then z
    index). Non-finite xyz raises ``ValueError`` (see :func:`drop_nonfinite`).
    """
    if reduce not in ("mean", "first"):
        raise ValueError(f"voxel_downsample: reduce must be 'mean' or 'first', got {reduce!r}")
    if not voxel_size > 0:
        raise ValueError(f"voxel_downsample: voxel_size must be > 0, got {voxel_size}")
    pts = _as_cloud(points, "voxel_downsample")
    if pts.shape[0] == 0:
        return pts
    if not bool(torch.isfinite(pts[:, :3]).all()):
        raise ValueError("voxel_downsample: non-finite xyz (call drop_nonfinite first)")
    vox = torch.floor(pts[:, :3] / voxel_size).to(torch.long)
    vox -= vox.amin(0)
    extent = (vox.amax(0) + 1).tolist()
    if extent[0] * extent[1] * extent[2] < 2**62:
        key = (vox[:, 0] * extent[1] + vox[:, 1]) * extent[2] + vox[:, 2]
        _, inverse = torch.unique(key, sorted=True, return_inverse=True)
    else:  # absurd ranges: lexicographic unique over rows
        _, inverse = torch.unique(vox, dim=0, sorted=True, return_inverse=True)
    n_vox = int(inverse.max()) + 1
    if reduce == "first":
        order = torch.arange(pts.shape[0], device=pts.device)
        first = torch.full((n_vox,), pts.shape[0], dtype=torch.long, device=pts.device)
        first.scatter_reduce_(0, inverse, order, reduce="amin")
        return pts[first]
    sums = torch.zeros((n_vox, pts.shape[1]), dtype=pts.dtype, device=pts.device)
    sums.index_add_(0, inverse, pts)
    counts = torch.bincount(inverse, minlength=n_vox).to(pts.dtype)
    return sums / counts[:, None]


def _check_on_empty(on_empty: str) -> None:
    if on_empty not in ON_EMPTY:
        raise ValueError(f"on_empty must be one of {ON_EMPTY}, got {on_empty!r}")


def _pad(pts: Tensor, n: int, pad_value: float) -> tuple[Tensor, Tensor]:
    out = torch.full((n, pts.shape[1]), float(pad_value), dtype=pts.dtype, device=pts.device)
    out[: pts.shape[0]] = pts
    mask = torch.zeros(n, dtype=torch.bool, device=pts.device)
    mask[: pts.shape[0]] = True
    return out, mask


def subsample_or_pad(
    points,
    n: int,
    pad_value: float = 0.0,
    generator: torch.Generator | None = None,
    on_empty: str = "pad",
) -> tuple[Tensor, Tensor]:
    """Exactly ``n`` rows and a validity mask.

    ``N >= n``: a uniformly random subset of ``n`` points (``generator``), kept in input order;
    mask all True. ``N < n``: all points first, then ``n - N`` rows filled with ``pad_value``
    in every channel (0 = the origin, CLAMP's padding); mask True for the real rows only.
    ``N == 0``: ``on_empty="pad"`` -> all pad rows and an all-false mask; ``"raise"`` ->
    :class:`EmptyPointCloudError`.

    Returns:
        ``(points (n, C), mask (n,) bool)``.
    """
    _check_on_empty(on_empty)
    pts = _as_cloud(points, "subsample_or_pad")
    N = pts.shape[0]
    if N == 0 and on_empty == "raise":
        raise EmptyPointCloudError("subsample_or_pad: the point cloud is empty")
    if N <= n:
        return _pad(pts, n, pad_value)
    gen_device = generator.device if generator is not None else "cpu"
    keep = torch.randperm(N, generator=generator, device=gen_device)[:n].sort().values
    return pts[keep.to(pts.device)], torch.ones(n, dtype=torch.bool, device=pts.device)


def process_cloud(
    points,
    bounds=None,
    voxel_size: float | None = None,
    n: int = 1024,
    method: str = "bucket_fps",
    on_empty: str = "pad",
    pad_value: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, dict[str, int]]:
    """drop non-finite -> crop to ``bounds`` -> voxel (``voxel_size``) -> ``n`` points + mask.

    With at least ``n`` points left, :func:`~toolkit.ops.sampling.downsample_points`
    (``method``: ``"bucket_fps"`` | ``"fps"`` | ``"random"``) picks ``n`` and the mask is all
    True; with fewer, all are kept and padded with ``pad_value`` (mask False on the pads); with
    none, ``on_empty`` decides (module docstring). ``bounds=None`` / ``voxel_size=None`` skip
    that step.

    Returns:
        ``(points (n, C), mask (n,), stats)`` with ``stats`` = ``n_input``, ``n_nonfinite``
        (rows dropped), ``n_after_crop``, ``n_after_voxel``, ``n_valid`` (True entries of mask).
    """
    _check_on_empty(on_empty)
    pts = _as_cloud(points, "process_cloud")
    stats = {"n_input": int(pts.shape[0])}
    pts, stats["n_nonfinite"] = drop_nonfinite(pts)
    if bounds is not None:
        pts = crop_to_bounds(pts, bounds)
    stats["n_after_crop"] = int(pts.shape[0])
    if voxel_size is not None:
        pts = voxel_downsample(pts, voxel_size)
    stats["n_after_voxel"] = int(pts.shape[0])
    if pts.shape[0] == 0 and on_empty == "raise":
        raise EmptyPointCloudError(
            f"process_cloud: no point left (input {stats['n_input']}, non-finite "
            f"{stats['n_nonfinite']}, after crop {stats['n_after_crop']}); bounds={bounds}"
        )
    if pts.shape[0] >= n:
        out = downsample_points(pts, n, method=method, generator=generator)
        mask = torch.ones(n, dtype=torch.bool, device=out.device)
    else:
        out, mask = _pad(pts, n, pad_value)
    stats["n_valid"] = int(min(pts.shape[0], n))
    return out, mask, stats
