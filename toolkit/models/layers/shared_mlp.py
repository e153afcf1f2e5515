"""Shared (per-point) MLP: the PointNet building block, as Linear layers on the last axis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

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
        for layer in self:
            x = layer(x)
        return x
