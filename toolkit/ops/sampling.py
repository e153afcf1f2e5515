"""Farthest point sampling (FPS) and single-cloud downsampling.

Conventions: clouds are ``(B, N, 3)`` (batched) or ``(N, C)`` with xyz in the first three
columns (single cloud); indices are int64. See docs/ops.md.

FPS is exact: every backend returns the indices that the pure-torch loop returns for the same
``start_idx`` (up to float-rounding near-ties, see :func:`farthest_point_sample`). Accelerated
backends are optional imports, never required:

- ``"torch"``: batched pure-torch loop, any device, any float dtype; always available.
- ``"fpsample"``: ``fpsample.fps_sampling`` (compiled, CPU, float32, one cloud at a time; CUDA
  tensors are copied to the CPU and back).
- ``"pointnet2"``: ``pointnet2_ops.pointnet2_utils.furthest_point_sample`` (CUDA, float32).
- ``"auto"``: pointnet2 for CUDA tensors when installed, fpsample for CPU tensors when
  installed, else torch.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch
from torch import Tensor

from toolkit.utils.errors import ShapeError

__all__ = [
    "FPS_BACKENDS",
    "available_fps_backends",
    "downsample_points",
    "farthest_point_sample",
]

FPS_BACKENDS = ("torch", "fpsample", "pointnet2", "auto")
DOWNSAMPLE_METHODS = ("fps", "bucket_fps", "random")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_fps_backends() -> list[str]:
    """The FPS backends importable here (``"torch"`` always)."""
    out = ["torch"]
    if _has_module("fpsample"):
        out.append("fpsample")
    if _has_module("pointnet2_ops") and torch.cuda.is_available():
        out.append("pointnet2")
    return out


_BACKEND_MODULES = {"fpsample": "fpsample", "pointnet2": "pointnet2_ops"}


def _resolve_backend(backend: str, xyz: Tensor, mask: Tensor | None) -> str:
    if backend not in FPS_BACKENDS:
        raise ValueError(
            f"farthest_point_sample: backend must be one of {FPS_BACKENDS}, got {backend!r}"
        )
    if backend == "auto":
        if xyz.is_cuda:
            return "pointnet2" if mask is None and _has_module("pointnet2_ops") else "torch"
        return "fpsample" if _has_module("fpsample") else "torch"
    module = _BACKEND_MODULES.get(backend)
    if module is not None and not _has_module(module):
        raise ImportError(f"farthest_point_sample: backend {backend!r} needs `{module}` installed")
    if backend == "pointnet2":
        if not xyz.is_cuda:
            raise ValueError("farthest_point_sample: backend 'pointnet2' needs a CUDA tensor")
        if mask is not None:  # the CUDA kernel has no notion of validity
            return "torch"
    return backend


def farthest_point_sample(
    xyz: Tensor,
    n: int,
    start_idx: int = 0,
    backend: str = "torch",
    mask: Tensor | None = None,
) -> Tensor:
    """Exact farthest point sampling.

    Args:
        xyz: ``(B, N, 3)`` points (extra trailing channels are ignored: only ``[..., :3]`` is used).
        n: number of samples per cloud.
        start_idx: the first sample (``result[:, 0] == start_idx``), ``0 <= start_idx < N``.
        backend: ``"torch" | "fpsample" | "pointnet2" | "auto"`` (module docstring).
        mask: optional ``(B, N)`` bool, True for valid points. Invalid points are never chosen.
            If ``start_idx`` is invalid in a cloud, that cloud starts at its first valid point.

    Returns:
        ``(B, n)`` int64 indices into ``N``. Each step picks the point whose squared distance to
        the chosen set is largest; exact ties go to the lowest index.

    When a cloud has fewer valid points ``V`` than ``n`` (``V = N`` without a mask), positions
    ``V..n-1`` repeat the cloud's start index (so every index is valid when ``V > 0``; a cloud
    with no valid point returns ``start_idx`` everywhere). Inputs must be finite where valid.

    Exactness: all backends implement the same algorithm and agree index for index on float32
    input; only float-rounding near-ties (two candidates within one ulp) can differ between
    arithmetic orders. ``fpsample`` computes in float32 (float64 input is cast). ``pointnet2_ops``
    skips points with ``|p|^2 <= 1e-3``; this wrapper translates the cloud so that its minimum
    corner sits at (1, 1, 1) first, and rolls it so that ``start_idx`` comes first (the kernel
    always starts at index 0). A mask with ``pointnet2`` falls back to the torch loop.
    """
    if xyz.dim() != 3 or xyz.shape[-1] < 3:
        raise ShapeError(f"farthest_point_sample: xyz must be (B, N, 3), got {tuple(xyz.shape)}")
    B, N = xyz.shape[:2]
    n = int(n)
    if n < 1:
        raise ValueError(f"farthest_point_sample: n must be >= 1, got {n}")
    if N == 0 or not 0 <= start_idx < N:
        raise ValueError(f"farthest_point_sample: start_idx {start_idx} out of range for N={N}")
    if mask is not None:
        if mask.shape != (B, N):
            raise ShapeError(
                f"farthest_point_sample: mask must be {(B, N)}, got {tuple(mask.shape)}"
            )
        mask = mask.to(device=xyz.device, dtype=torch.bool)
    backend = _resolve_backend(backend, xyz, mask)
    xyz = xyz[..., :3].detach()
    if backend == "fpsample":
        return _fps_fpsample(xyz, n, start_idx, mask)
    if backend == "pointnet2":
        return _fps_pointnet2(xyz, n, start_idx)
    return _fps_torch(xyz, n, start_idx, mask)


def _start_indices(mask: Tensor | None, B: int, start_idx: int, device) -> Tensor:
    """(B, 1) start index per cloud: ``start_idx`` unless masked out (then the first valid)."""
    start = torch.full((B, 1), start_idx, dtype=torch.long, device=device)
    if mask is None:
        return start
    first_valid = mask.to(torch.uint8).argmax(1, keepdim=True)  # 0 when none is valid
    keep = mask[:, start_idx : start_idx + 1] | ~mask.any(1, keepdim=True)
    return torch.where(keep, start, first_valid)


def _pad_with_start(idx: Tensor, n_valid: Tensor | int) -> Tensor:
    """Positions ``>= n_valid`` (per cloud) repeat the start index ``idx[:, 0]``."""
    pos = torch.arange(idx.shape[1], device=idx.device)
    if isinstance(n_valid, Tensor):
        n_valid = n_valid.unsqueeze(1)
    return torch.where(pos < n_valid, idx, idx[:, :1])


def _fps_torch(xyz: Tensor, n: int, start_idx: int, mask: Tensor | None) -> Tensor:
    B, N, _ = xyz.shape
    dtype = xyz.dtype if xyz.dtype in (torch.float32, torch.float64) else torch.float32
    # (B, 3, N): each coordinate contiguous, so every step is a few flat vector passes.
    pts = xyz.to(dtype).transpose(1, 2).contiguous()
    min_d = torch.full((B, N), math.inf, dtype=dtype, device=xyz.device)
    if mask is not None:
        pts.masked_fill_(~mask.unsqueeze(1), 0.0)  # invalid coordinates may be non-finite
        min_d.masked_fill_(~mask, -1.0)  # below any distance: never the argmax
    far = _start_indices(mask, B, start_idx, xyz.device)
    chosen = [far]
    diff = torch.empty_like(pts)
    dist = torch.empty_like(min_d)
    # No host synchronisation inside the loop: indices stay on the device; ~6 ops per step.
    for _ in range(n - 1):
        torch.sub(pts, torch.gather(pts, 2, far.unsqueeze(1).expand(B, 3, 1)), out=diff)
        diff.mul_(diff)
        torch.sum(diff, 1, out=dist)
        torch.minimum(min_d, dist, out=min_d)
        far = min_d.argmax(1, keepdim=True)
        chosen.append(far)
    idx = torch.cat(chosen, 1)
    if mask is not None:
        return _pad_with_start(idx, mask.sum(1))
    return _pad_with_start(idx, N) if n > N else idx


def _fps_fpsample(xyz: Tensor, n: int, start_idx: int, mask: Tensor | None) -> Tensor:
    import fpsample

    pts = xyz.to("cpu", torch.float32).numpy()
    valid = None if mask is None else mask.cpu().numpy()
    out = np.empty((xyz.shape[0], n), dtype=np.int64)
    for b in range(pts.shape[0]):
        if valid is None:
            cand = np.arange(pts.shape[1])
        else:
            cand = np.flatnonzero(valid[b])
        if cand.size == 0:
            out[b] = start_idx
            continue
        # position of the start point among the candidates (first valid if masked out)
        pos = np.searchsorted(cand, start_idx)
        s = int(pos) if pos < cand.size and cand[pos] == start_idx else 0
        k = min(n, cand.size)
        sel = cand[fpsample.fps_sampling(pts[b, cand], k, start_idx=s).astype(np.int64)]
        out[b, :k] = sel
        out[b, k:] = sel[0]
    return torch.from_numpy(out).to(xyz.device)


def _fps_pointnet2(xyz: Tensor, n: int, start_idx: int) -> Tensor:
    from pointnet2_ops import pointnet2_utils

    N = xyz.shape[1]
    pts = xyz.float()
    # The kernel ignores points with |p|^2 <= 1e-3: move the cloud away from the origin.
    pts = pts - pts.amin(1, keepdim=True) + 1.0
    if start_idx:
        pts = torch.roll(pts, -start_idx, dims=1)  # the kernel always starts at index 0
    idx = pointnet2_utils.furthest_point_sample(pts.contiguous(), n).long()
    if start_idx:
        idx = (idx + start_idx) % N
    return _pad_with_start(idx, N) if n > N else idx


def _bucket_height(n_points: int) -> int:
    # fpsample needs 2**h <= N; h=7 measured well for 8k-300k points (environment.md).
    return max(1, min(7, int(math.log2(max(n_points, 2)))))


def downsample_points(
    points: Tensor,
    n: int,
    method: str = "fps",
    generator: torch.Generator | None = None,
    pad: bool = False,
) -> Tensor:
    """Downsample one cloud ``(N, C)`` (xyz = first 3 columns) to ``(n, C)``.

    Methods:
        ``"fps"``: exact FPS from index 0 (``backend="auto"``: fpsample on CPU when installed,
            the same indices as the torch loop); result row 0 is ``points[0]``.
        ``"bucket_fps"``: ``fpsample.bucket_fps_kdline_sampling`` (QuickFPS, ``h<=7``) from
            index 0 (not necessarily first in the result): approximate FPS with the same
            coverage, much faster on large clouds; the default of data generation.
            Falls back to exact FPS when fpsample is missing or ``N < 2``.
        ``"random"``: a uniformly random subset (``torch.randperm``, ``generator``), in random order.

    If ``N < n``: ``pad=False`` raises ``ValueError``; ``pad=True`` returns all ``N`` points
    followed by repeats ``points[0], points[1], ...`` cyclically (duplicates change neither FPS
    coverage nor max-pooling). To pad with a fixed value and a validity mask instead, use
    :func:`toolkit.ops.pointcloud.subsample_or_pad`. An empty cloud always raises.
    Numpy input is accepted and converted; the result is a tensor on ``points``' device.
    """
    points = torch.as_tensor(points)
    if points.dim() != 2 or points.shape[1] < 3:
        raise ShapeError(f"downsample_points: points must be (N, C>=3), got {tuple(points.shape)}")
    if method not in DOWNSAMPLE_METHODS:
        raise ValueError(
            f"downsample_points: method must be one of {DOWNSAMPLE_METHODS}, got {method!r}"
        )
    N = points.shape[0]
    if N == 0:
        raise ShapeError(
            f"downsample_points: points must have N >= 1 rows, got shape {tuple(points.shape)}: "
            "the cloud is empty (use subsample_or_pad to pad it)"
        )
    if N < n:
        if not pad:
            raise ValueError(
                f"downsample_points: {N} points < n={n} (pass pad=True to repeat points)"
            )
        return points[torch.arange(n, device=points.device) % N]
    if method == "random":
        perm = torch.randperm(
            N, generator=generator, device=generator.device if generator else "cpu"
        )
        return points[perm[:n].to(points.device)]
    if method == "bucket_fps" and N >= 2 and _has_module("fpsample"):
        import fpsample

        xyz = points[:, :3].detach().to("cpu", torch.float32).numpy()
        sel = fpsample.bucket_fps_kdline_sampling(xyz, n, h=_bucket_height(N), start_idx=0)
        return points[torch.from_numpy(sel.astype(np.int64)).to(points.device)]
    idx = farthest_point_sample(points[None, :, :3], n, start_idx=0, backend="auto")[0]
    return points[idx]
