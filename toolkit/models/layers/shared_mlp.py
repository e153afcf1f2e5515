"""Shared (per-point) MLP: the PointNet building block, as Linear layers on the last axis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from toolkit.models.layers.fused_max import can_fuse_max, linear_bn_max

NormKind = Literal["batch", "layer", "none"]

__all__ = ["SharedMLP", "RowBatchNorm"]


class RowBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` over every row of an ``(..., C)`` tensor.

    Statistics are taken over all leading dimensions at once, which equals ``BatchNorm1d`` on
    ``(B, C, N)`` / ``BatchNorm2d`` on ``(B, C, K, S)`` as in the PointNet references.
    """

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


class _NarrowLinear(torch.autograd.Function):
    """``F.linear`` for a few input channels (xyz), with a faster weight gradient.

    Autograd computes ``dW = g^T x`` as a ``(C, R) x (R, D)`` GEMM, which BLAS runs ~7x slower
    than the same numbers as ``(x^T g)^T`` when ``D`` is 3 (measured on 262k rows). The forward
    is ``F.linear`` itself.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return nn.functional.linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        dx = g @ weight if ctx.needs_input_grad[0] else None
        dw = torch.mm(x.t(), g).t().contiguous() if ctx.needs_input_grad[1] else None
        db = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def _linear(layer: nn.Linear, x: Tensor) -> Tensor:
    """``layer(x)`` for 2-D ``x``; narrow inputs take :class:`_NarrowLinear` under autograd."""
    if (
        x.shape[-1] <= 8
        and torch.is_grad_enabled()
        and layer.weight.requires_grad
        and x.dtype == layer.weight.dtype
        and not torch.is_autocast_enabled(x.device.type)
    ):
        return _NarrowLinear.apply(x, layer.weight, layer.bias)
    return layer(x)


def _norm(kind: NormKind, dim: int) -> nn.Module:
    if kind == "batch":
        return RowBatchNorm(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; expected 'batch', 'layer' or 'none'")


class SharedMLP(nn.Sequential):
    """Point-wise MLP ``Linear -> norm -> act`` repeated, applied to ``(..., in_dim)``.

    ``Linear`` on the channel axis has the same parameters as the references' ``Conv1d`` /
    ``Conv2d`` with kernel 1.

    Args:
        in_dim: Input channels.
        dims: Output channels of each layer, e.g. ``(64, 128, 1024)``.
        norm: ``"batch"`` (BatchNorm over all rows), ``"layer"`` (LayerNorm) or ``"none"``.
        act_layer: Activation class. Default ``nn.ReLU``.
        last_norm: Apply the norm after the last layer. Default True.
        last_act: Apply the activation after the last layer. Default True.
    """

    def __init__(
        self,
        in_dim: int,
        dims: Sequence[int],
        norm: NormKind = "batch",
        act_layer: type[nn.Module] = nn.ReLU,
        last_norm: bool = True,
        last_act: bool = True,
    ) -> None:
        if len(dims) == 0:
            raise ValueError("SharedMLP needs at least one layer (dims is empty)")
        layers: list[nn.Module] = []
        prev = in_dim
        for i, dim in enumerate(dims):
            last = i == len(dims) - 1
            layers.append(nn.Linear(prev, dim))
            if not last or last_norm:
                layers.append(_norm(norm, dim))
            if not last or last_act:
                layers.append(act_layer())
            prev = dim
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim = prev

    def forward(self, x: Tensor) -> Tensor:  # (..., in_dim) -> (..., out_dim)
        return self._run(list(self), x)

    @staticmethod
    def _run(layers: list[nn.Module], x: Tensor) -> Tensor:
        """The layers on the rows of ``x`` flattened to 2-D (every layer here is row-wise).

        On 2-D rows each Linear / norm returns a fresh tensor (not a view), so the ReLU can run
        in place: neither ``addmm``'s nor the norms' backward reads its output, and a fresh
        tensor avoids autograd's copy-on-write of views (``CopySlices``).
        """
        if not layers:
            return x
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        for i, layer in enumerate(layers):
            if type(layer) is RowBatchNorm:
                x = nn.BatchNorm1d.forward(layer, x)  # x is already (rows, C)
            elif type(layer) is nn.Linear:
                x = _linear(layer, x)
            elif i and type(layer) is nn.ReLU and not x._is_view():
                x = torch.relu_(x)
            else:
                x = layer(x)
        return x.reshape(*shape[:-1], x.shape[-1])

    def forward_max(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (..., K, in_dim)`` -> ``(y (..., K, out_dim), y.amax(-2))`` with ``y = self(x)``.

        The max-pool of PointNet / PointNet++. In training mode with BatchNorm the last
        ``Linear -> BatchNorm [-> ReLU]`` block and the max run as one autograd function
        (:mod:`toolkit.models.layers.fused_max`): identical outputs, a much cheaper backward.
        """
        layers = list(self)
        last = max(i for i, m in enumerate(layers) if type(m) is nn.Linear)
        tail = layers[last:]
        fusable = (
            len(tail) in (2, 3)
            and isinstance(tail[1], RowBatchNorm)
            and (len(tail) == 2 or type(tail[2]) is nn.ReLU)
            and x.dim() >= 2
        )
        if fusable:
            x = self._run(layers[:last], x)
            if can_fuse_max(tail[0], tail[1], x):
                return linear_bn_max(x, tail[0], tail[1], relu=len(tail) == 3)
            y = self._run(tail, x)
        else:
            y = self(x)
        return y, y.amax(-2)
