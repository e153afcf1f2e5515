"""Chamfer distance, pure torch, chunked so that memory stays bounded for large clouds.

The nearest-neighbour search runs without autograd, one block of ``chunk_size`` points of ``a``
against all of ``b`` at a time, both directions from the same block; the loss is then recomputed
for the matched pairs only, so the backward pass costs ``O(B (N + M))`` memory, not
``O(B N M)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from toolkit.utils.errors import ShapeError

from .neighbors import (
    _check_pair,
    _chunk_rows,
    _compute_dtype,
    _distance_block,
    _scratch,
    group_points,
)

__all__ = ["chamfer_distance", "nearest_neighbor_indices"]


#: Width of the blocks of the two-level argmin (``amin`` per block, then ``argmin`` inside the
#: winning block): ``amin`` is an order of magnitude faster than ``argmin`` / ``min`` with indices
#: on CPU.
_BLOCK = 32


def nearest_neighbor_indices(
    a: Tensor,
    b: Tensor,
    norm: int = 2,
    chunk_size: int | None = None,
    a_mask: Tensor | None = None,
    b_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Nearest neighbour indices both ways: ``(idx_ab (B, N), idx_ba (B, M))``.

    ``idx_ab[b, i]`` is the point of ``b`` closest to ``a[b, i]`` (L2 for ``norm=2``, L1 for
    ``norm=1``); masked-out points are never a neighbour (the index of a masked-out source point
    is meaningless). Exact ties go to the lowest index. No autograd.

    One pass over blocks of ``chunk_size`` points of ``a`` against all of ``b``: rows give
    ``idx_ab`` directly; columns keep a running minimum and the block it came from, and the
    argmin inside that block is recomputed at the end for the ``M`` winners only. Memory: two
    ``(B, chunk_size, M)`` float blocks, reused across chunks.
    """
    _check_pair("chamfer_distance", a, b, ("a", "b"))
    if norm not in (1, 2):
        raise ValueError(f"chamfer_distance: norm must be 1 or 2, got {norm}")
    a_mask, b_mask = _as_mask(a_mask, a, "a_mask"), _as_mask(b_mask, b, "b_mask")
    B, N, D = a.shape
    M = b.shape[1]
    dt = _compute_dtype(a, b)
    Mp = -(-M // _BLOCK) * _BLOCK  # b padded with +inf points to whole blocks
    rows = min(_chunk_rows(chunk_size, B, Mp, a.device), N)
    with torch.no_grad():
        # masked-out points become +inf: never the nearest of anything (inf - inf = NaN only
        # pairs two masked points, whose results are ignored)
        a_ = a.detach().to(dt)
        if a_mask is not None:
            a_ = a_.masked_fill(~a_mask[..., None], math.inf)
        b_t = torch.full((B, D, Mp), math.inf, dtype=dt, device=a.device)
        b_t[:, :, :M] = b.detach().to(dt).transpose(1, 2)
        if b_mask is not None:
            b_t[:, :, :M].masked_fill_(~b_mask[:, None, :], math.inf)
        buffers = _scratch(B * rows * Mp, dt, a.device)
        idx_ab = torch.empty((B, N), dtype=torch.long, device=a.device)
        col_best = torch.full((B, Mp), math.inf, dtype=dt, device=a.device)
        col_chunk = torch.zeros((B, Mp), dtype=torch.long, device=a.device)
        for s in range(0, N, rows):
            d = _distance_block(a_[:, s : s + rows], b_t, norm, buffers)
            m = d.shape[1]
            blocks = d.view(B, m, Mp // _BLOCK, _BLOCK)
            best = blocks.amin(-1).argmin(-1, keepdim=True)  # first block holding the minimum
            inner = blocks.gather(2, best[..., None].expand(B, m, 1, _BLOCK)).squeeze(2)
            idx_ab[:, s : s + m] = best.squeeze(-1) * _BLOCK + inner.argmin(-1)
            col_min = d.amin(1)
            better = col_min < col_best  # strict: earlier chunks (lower indices) win ties
            col_best = torch.where(better, col_min, col_best)
            col_chunk = torch.where(better, s, col_chunk)
        # argmin inside the winning chunk of each column of b (same arithmetic as the blocks)
        cand = (col_chunk[:, :M, None] + torch.arange(rows, device=a.device)).clamp_(max=N - 1)
        query = b_t[:, :, :M].transpose(1, 2).reshape(B * M, 1, D)
        ref_t = group_points(a_, cand).view(B * M, rows, D).transpose(1, 2)
        d = _distance_block(query, ref_t, norm).view(B, M, rows)
        idx_ba = cand.gather(2, d.argmin(-1, keepdim=True)).squeeze(-1)
    return idx_ab, idx_ba


def _point_distance(diff: Tensor, norm: int, squared: bool) -> Tensor:
    if norm == 2:
        return diff.square().sum(-1) if squared else torch.linalg.vector_norm(diff, dim=-1)
    d = diff.abs().sum(-1)
    return d.square() if squared else d


def chamfer_distance(
    a: Tensor,
    b: Tensor,
    norm: int = 2,
    squared: bool = True,
    reduction: str = "mean",
    chunk_size: int | None = None,
    a_mask: Tensor | None = None,
    b_mask: Tensor | None = None,
) -> Tensor:
    """Symmetric Chamfer distance per sample.

    ``CD(a, b) = red_i min_j d(a_i, b_j) + red_j min_i d(a_i, b_j)`` with ``red`` the mean
    (``reduction="mean"``, default) or the sum (``"sum"``) over valid points, and
    ``d = |a_i - b_j|_p`` (``p = norm``, 1 or 2), squared when ``squared``. The default is
    Point-MAE's ``ChamferDistanceL2`` (mean squared NN distance both ways, summed); its
    ``ChamferDistanceL1`` is ``chamfer_distance(a, b, squared=False) / 2``.

    Args:
        a: ``(B, N, D)``; b: ``(B, M, D)`` (D = 3 for xyz).
        chunk_size: source points per search block (default ``CHUNK_ELEMENTS // (B * M)``:
            two 2 MiB float32 blocks on CPU, 16x on CUDA; the result does not depend on it).
        a_mask, b_mask: optional ``(B, N)`` / ``(B, M)`` bool validity of padded clouds; masked
            points neither count nor serve as neighbours. A sample with no valid point in
            either cloud raises ``ValueError``.

    Returns:
        ``(B,)``, differentiable w.r.t. ``a`` and ``b`` (gradients of the matched pairs; the
        gradient of a non-squared distance at zero is zero).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"chamfer_distance: reduction must be 'mean' or 'sum', got {reduction!r}")
    a_mask, b_mask = _as_mask(a_mask, a, "a_mask"), _as_mask(b_mask, b, "b_mask")
    for name, m in (("a", a_mask), ("b", b_mask)):
        if m is not None and not bool(m.any(1).all()):
            raise ValueError(f"chamfer_distance: some sample has no valid point in {name}")
    idx_ab, idx_ba = nearest_neighbor_indices(a, b, norm, chunk_size, a_mask, b_mask)
    dt = _compute_dtype(a, b)
    a, b = a.to(dt), b.to(dt)
    # padding may hold anything (NaN): zero it so that no NaN reaches the gradients
    if a_mask is not None:
        a = torch.where(a_mask[..., None], a, 0.0)
    if b_mask is not None:
        b = torch.where(b_mask[..., None], b, 0.0)
    d_ab = _point_distance(a - group_points(b, idx_ab), norm, squared)  # (B, N)
    d_ba = _point_distance(b - group_points(a, idx_ba), norm, squared)  # (B, M)
    return _reduce(d_ab, a_mask, reduction) + _reduce(d_ba, b_mask, reduction)


def _as_mask(mask: Tensor | None, like: Tensor, name: str) -> Tensor | None:
    if mask is None:
        return None
    # A (B, 1) or (N,) mask would broadcast silently in masked_fill: insist on (B, N).
    if tuple(mask.shape) != tuple(like.shape[:2]):
        raise ShapeError(
            f"chamfer_distance: {name} must be (B, N) = {tuple(like.shape[:2])}, "
            f"got {tuple(mask.shape)}"
        )
    return mask.to(device=like.device, dtype=torch.bool)


def _reduce(d: Tensor, mask: Tensor | None, reduction: str) -> Tensor:
    if mask is None:
        return d.mean(1) if reduction == "mean" else d.sum(1)
    total = torch.where(mask, d, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    return total / mask.sum(1) if reduction == "mean" else total
