"""``Linear -> BatchNorm (train) -> [ReLU] -> max over points`` with a cheap backward.

The PointNet / PointNet++ pattern ends every per-point MLP with a max-pool, and in training
mode that last block dominates the step: the backward of the widest ``Linear`` costs two
``R x D x C`` GEMMs (R = rows, e.g. B * N), and autograd's ``amax`` backward builds a dense
``(R, C)`` mask. Only one row per (group, channel) receives a gradient from the max, so the
gradient reaching the block's output is *sparse*, and through BatchNorm it becomes
``sparse + per-channel affine function of z``. With ``z - mean = (h - mean(h)) W^T`` that affine
part folds into ``D x D`` matrices (the centered Gram matrix of the block input ``h``), so the
backward costs one ``R x D x D`` Gram GEMM, one ``R x D x D`` GEMM for the input gradient and
``O(groups * C * D)`` gathers instead of ``2 R D C`` GEMMs plus ``R C`` elementwise passes.

The forward is the reference computation (``addmm``, ``native_batch_norm``, ``relu``, max), so
the outputs and the BatchNorm running statistics are bit-identical to the layer-by-layer modules.
Gradients equal the reference's in exact arithmetic (float32 rounding differs at the 1e-6
relative level), with one difference at ties: the max's gradient goes to the *first* row that
reaches the maximum (``torch.max(dim)``'s choice) where ``torch.amax`` splits it evenly
between the tied rows. For duplicated rows (ball query pads short neighbourhoods by repeating a
point; clouds padded by repeating points) both choices give the same gradient for every
parameter and the same *total* gradient over the copies, because identical rows contribute
only through their sum (in PointNet++ the copies come from one point through the grouping, so
the input points' gradients agree too); only distinct rows with exactly equal outputs (a
measure-zero event) see another subgradient.
Rows at 0 after the ReLU get no gradient, as through ``relu``'s backward.

When the per-point output (``tokens``) also receives a gradient the backward falls back to the
dense formula (``native_batch_norm_backward`` and the two GEMMs).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["blocked_amax", "can_fuse_max", "linear_bn_max"]


def _block_size(k: int) -> int:
    """Rows per block of the two-level max: about sqrt(k), a power of two (1 for k < 4)."""
    if k < 4:
        return 1
    return 1 << max(0, round(math.log2(math.sqrt(k))))


def blocked_amax(y: Tensor, block: int) -> tuple[Tensor, Tensor]:
    """Max of ``y (P, K, C)`` over K in two levels.

    Returns ``(pooled (P, C), block_max (P, ceil(K / block), C))``. ``pooled`` equals
    ``y.amax(1)`` exactly (max is exact); ``block_max`` lets the backward find the arg-max rows
    by scanning one block per (group, channel) instead of comparing all of ``y``.
    """
    p, k, c = y.shape
    k0 = (k // block) * block
    parts = []
    if k0:
        parts.append(y[:, :k0].view(p, k0 // block, block, c).amax(2))
    if k0 < k:
        parts.append(y[:, k0:].amax(1, keepdim=True))
    bm = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return bm.amax(1), bm


def _first_true(mask: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Index of the first True along ``dim`` and whether there is one.

    ``argmax`` over a non-innermost dim is slow on CPU (~20 ns per element); weighting each
    position by ``n - i`` and taking ``amax`` vectorizes.
    """
    n = mask.shape[dim]
    shape = [1] * mask.dim()
    shape[dim] = n
    wdt = torch.uint8 if n < 256 else torch.int16 if n < 32768 else torch.int32
    w = torch.arange(n, 0, -1, dtype=wdt, device=mask.device).view(shape)
    best = torch.where(mask, w, 0).amax(dim)
    return n - best.long(), best > 0


def _first_argmax(
    y: Tensor, target: Tensor, block_max: Tensor, block: int
) -> tuple[Tensor, Tensor]:
    """First ``k`` with ``y[p, k, c] == target[p, c]``, for every ``(p, c)``.

    ``y`` (P, K, C); ``block_max`` from :func:`blocked_amax`. Returns ``(k (P, C) int64,
    found (P, C) bool)``; ``found`` is False where nothing matches (``target`` NaN). Only the
    first block whose maximum matches is scanned.
    """
    p_n, k_n, c_n = y.shape
    nfull = k_n // block
    k0 = nfull * block
    j, found = _first_true(block_max == target.unsqueeze(1), 1)  # (P, C) first matching block
    pi = torch.arange(p_n, device=y.device).unsqueeze(1)
    ci = torch.arange(c_n, device=y.device)
    vals = y[:, :k0].view(p_n, nfull, block, c_n)[pi, j.clamp_max(nfull - 1), :, ci]
    t = _first_true(vals == target.unsqueeze(-1), -1)[0]  # (P, C)
    k = j * block + t
    if k0 < k_n:  # the short last block
        t_rem = _first_true(y[:, k0:] == target.unsqueeze(1), 1)[0]
        k = torch.where(j == nfull, k0 + t_rem, k)
    return k, found


def _bn_factor(bn: nn.BatchNorm1d) -> float:
    """``_BatchNorm.forward``'s bookkeeping: count the batch, return the momentum to use."""
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            return 1.0 / float(bn.num_batches_tracked)
    return 0.0 if bn.momentum is None else float(bn.momentum)


class _LinearBNMax(torch.autograd.Function):
    """Autograd function behind :func:`linear_bn_max` (see the module docstring)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        h: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        gamma: Tensor | None,
        beta: Tensor | None,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        momentum: float,
        eps: float,
        relu: bool,
    ) -> tuple[Tensor, Tensor]:
        p, k, d = h.shape
        h2 = h.reshape(p * k, d)
        z = torch.addmm(bias, h2, weight.t()) if bias is not None else h2 @ weight.t()
        y, mean, invstd = torch.native_batch_norm(
            z, gamma, beta, running_mean, running_var, True, momentum, eps
        )
        if relu:
            y.relu_()
        y3 = y.view(p, k, -1)
        block = _block_size(k)
        pooled, block_max = blocked_amax(y3, block)
        ctx.set_materialize_grads(False)
        ctx.block, ctx.relu, ctx.eps, ctx.has_bias = block, relu, eps, bias is not None
        ctx.save_for_backward(
            h2, weight, bias, gamma, z, y3, pooled, block_max, mean, invstd, running_mean,
            running_var,
        )  # fmt: skip
        return y3, pooled

    @staticmethod
    @once_differentiable  # no double backward through the hand-written gradient
    def backward(ctx, g_tokens: Tensor | None, g_pooled: Tensor | None):  # type: ignore[override]
        (h2, weight, bias, gamma, z, y3, pooled, block_max, mean, invstd, rmean, rvar) = (
            ctx.saved_tensors
        )
        need_h, need_w, need_b, need_g, need_beta = ctx.needs_input_grad[:5]
        none = (None,) * 10
        if g_tokens is None and g_pooled is None:
            return none
        p, k, c = y3.shape
        r, d = h2.shape
        if g_pooled is not None:
            target = pooled
            if ctx.relu:  # a max of 0 after the ReLU: the ReLU's backward zeroes it anyway
                target = torch.where(pooled > 0, pooled, math.nan)
            kmax, found = _first_argmax(y3, target, block_max, ctx.block)
            rows = torch.arange(p, device=y3.device).unsqueeze(1) * k + kmax  # (P, C)
            cols = torch.arange(c, device=y3.device).expand(p, c)
            erow, ec, v = rows[found], cols[found], g_pooled[found]
        if g_tokens is not None:  # dense reference formula
            gy = g_tokens.reshape(r, c).clone()
            if g_pooled is not None:
                gy.index_put_((erow, ec), v, accumulate=True)
            if ctx.relu:
                gy = torch.ops.aten.threshold_backward(gy, y3.view(r, c), 0)
            dz, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
                gy, z, gamma, rmean, rvar, mean, invstd, True, ctx.eps,
                [need_h or need_w or need_b, need_g, need_beta],
            )  # fmt: skip
            dh = (dz @ weight).view(p, k, d) if need_h else None
            dw = dz.t() @ h2 if need_w else None
            db = dz.sum(0) if need_b and ctx.has_bias else None
            return dh, dw, db, dgamma, dbeta, None, None, None, None, None

        # Sparse + affine backward. BatchNorm's backward is
        #   dz = alpha * (gy - sum(gy)/R - (z - mean) * dotp * invstd^2 / R),
        #   alpha = gamma * invstd, dotp = sum((z - mean) * gy)  (per channel),
        # and gy is non-zero at the max entries only.
        xs = z[erow, ec] - mean[ec]  # z - mean at the entries
        s = torch.zeros(c, dtype=z.dtype, device=z.device).index_add_(0, ec, v)
        dotp = torch.zeros_like(s).index_add_(0, ec, v * xs)
        dgamma = dotp * invstd if need_g else None
        dbeta = s if need_beta else None
        if not (need_h or need_w or need_b):
            return None, None, None, dgamma, dbeta, None, None, None, None, None
        alpha = invstd if gamma is None else gamma * invstd
        kk = dotp * invstd * invstd / r
        # z - mean = (h - hbar) W^T + delta, delta = hbar W^T + b - mean (0 up to rounding).
        hbar = h2.mean(0)
        hc = h2 - hbar
        zbar = weight @ hbar
        if bias is not None:
            zbar = zbar + bias
        delta = zbar - mean
        # dz = S + a0 - a1 * (hc W^T), S the sparse part (alpha * v at the entries).
        a0 = -alpha * (s / r + kk * delta)
        a1 = alpha * kk
        sv = alpha[ec] * v  # (E,)
        dh = dw = db = None
        if need_h or need_w:  # the sparse part as a (R, C) sparse matrix, one entry per max
            sparse = torch.sparse_coo_tensor(
                torch.stack([erow, ec]), sv, (r, c), check_invariants=False
            )
        if need_h:
            m = weight.t() @ (a1.unsqueeze(1) * weight)  # (D, D)
            dh = torch.mm(hc, m.neg_())
            dh += a0 @ weight
            dh.addmm_(sparse, weight)  # in place: no copy of the (R, D) gradient
            dh = dh.view(p, k, d)
        if need_w:
            gram = hc.t() @ hc  # (D, D); equals hc^T h since hc sums to 0
            dw = torch.sparse.mm(sparse.t(), h2)
            dw += a0.unsqueeze(1) * (r * hbar)
            dw -= a1.unsqueeze(1) * (weight @ gram)
        if need_b and ctx.has_bias:
            db = s * alpha + a0 * r - a1 * (weight @ hc.sum(0))
        return dh, dw, db, dgamma, dbeta, None, None, None, None, None


def can_fuse_max(linear: nn.Module, norm: nn.Module, x: Tensor) -> bool:
    """Whether :func:`linear_bn_max` applies: a float32/64 ``Linear`` + training-mode
    ``BatchNorm1d`` under autograd (elsewhere the plain modules are as fast)."""
    return (
        type(linear) is nn.Linear
        and isinstance(norm, nn.BatchNorm1d)
        and norm.training
        and torch.is_grad_enabled()
        and x.dtype in (torch.float32, torch.float64)
        and linear.weight.dtype == x.dtype
        and x.dim() >= 2
        and not torch.is_autocast_enabled(x.device.type)
        and (
            x.requires_grad
            or any(t.requires_grad for t in (*linear.parameters(), *norm.parameters()))
        )
    )


def linear_bn_max(
    x: Tensor, linear: nn.Linear, norm: nn.BatchNorm1d, relu: bool
) -> tuple[Tensor, Tensor]:
    """``y = [relu](norm(linear(x)))`` over rows and its max over the points axis.

    Args:
        x: ``(..., K, D)``; statistics are over all rows, the max is over ``K`` (dim -2).
        linear / norm: the block's modules (``norm`` in training mode; its running statistics
            and ``num_batches_tracked`` are updated exactly as by ``norm(...)``).
        relu: apply a ReLU after the norm.

    Returns:
        ``(y (..., K, C), pooled (..., C))`` with ``pooled = y.amax(-2)``.
    """
    lead, (k, d) = x.shape[:-2], x.shape[-2:]
    h = x.reshape(-1, k, d)
    momentum = _bn_factor(norm)
    y, pooled = _LinearBNMax.apply(
        h,
        linear.weight,
        linear.bias,
        norm.weight,
        norm.bias,
        norm.running_mean if norm.track_running_stats else None,
        norm.running_var if norm.track_running_stats else None,
        momentum,
        norm.eps,
        relu,
    )
    return y.view(*lead, k, -1), pooled.view(*lead, -1)
