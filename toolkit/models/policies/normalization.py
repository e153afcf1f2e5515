"""Observation / action normalization fitted on the training split and saved with the model."""

from __future__ import annotations

import torch
import torch.nn as nn

MODES = ("meanstd", "minmax", "none")


class Normalizer(nn.Module):
    """Affine normalization ``y = (x - offset) / scale`` kept as buffers (so it is checkpointed).

    Modes: ``meanstd`` (zero mean, unit std), ``minmax`` (the training range maps to [-1, 1]),
    ``none`` (identity). Dimensions with (near-)zero spread get scale 1, so constant channels
    (e.g. a gripper that never moves in the data) pass through unchanged instead of exploding.
    """

    def __init__(self, dim: int, mode: str = "meanstd", eps: float = 1e-4) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"normalization mode must be one of {MODES}, got {mode!r}")
        self.mode, self.eps, self.dim = mode, eps, dim
        self.register_buffer("offset", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("fitted", torch.tensor(mode == "none"))

    @torch.no_grad()
    def fit(self, data: torch.Tensor) -> None:
        """data: (M, dim) training samples."""
        data = torch.as_tensor(data, dtype=torch.float32).reshape(-1, self.dim)
        if self.mode == "meanstd":
            offset, scale = data.mean(0), data.std(0, unbiased=False)
        elif self.mode == "minmax":
            lo, hi = data.min(0).values, data.max(0).values
            offset, scale = (hi + lo) / 2, (hi - lo) / 2
        else:
            offset, scale = torch.zeros(self.dim), torch.ones(self.dim)
        scale = torch.where(scale < self.eps, torch.ones_like(scale), scale)
        self.offset.copy_(offset)
        self.scale.copy_(scale)
        self.fitted.fill_(True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) / self.scale

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale + self.offset

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode}"
