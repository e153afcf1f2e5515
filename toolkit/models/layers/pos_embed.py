"""Fixed sinusoidal position embeddings (DETR / ACT style)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["sine_pos_1d", "sine_pos_2d"]


def sine_pos_1d(n: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """``(n, dim)`` Transformer sinusoids (sin on even, cos on odd channels)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    i = torch.arange(dim // 2, dtype=torch.float32)
    freq = temperature ** (-2 * i / dim)
    out = torch.zeros(n, dim)
    out[:, 0 : 2 * (dim // 2) : 2] = torch.sin(pos * freq)
    out[:, 1 : 2 * (dim // 2) : 2] = torch.cos(pos * freq)
    return out


def sine_pos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """``(h * w, dim)`` 2-D sine embedding of a feature map, row-major (DETR's normalized form).

    Half the channels encode y, half x; coordinates are normalized to (0, 2 pi] so the
    embedding of a map does not depend on its resolution's scale.
    """
    if dim % 4:
        raise ValueError(f"sine_pos_2d: dim must be a multiple of 4, got {dim}")
    npf = dim // 2
    y = torch.arange(1, h + 1, dtype=torch.float32) / h * 2 * math.pi
    x = torch.arange(1, w + 1, dtype=torch.float32) / w * 2 * math.pi
    i = torch.arange(npf, dtype=torch.float32)
    freq = temperature ** (2 * (i // 2) / npf)
    py = y[:, None] / freq  # (h, npf)
    px = x[:, None] / freq  # (w, npf)
    py = torch.stack([py[:, 0::2].sin(), py[:, 1::2].cos()], dim=2).flatten(1)
    px = torch.stack([px[:, 0::2].sin(), px[:, 1::2].cos()], dim=2).flatten(1)
    pos = torch.cat([py[:, None, :].expand(h, w, npf), px[None, :, :].expand(h, w, npf)], dim=-1)
    return pos.reshape(h * w, dim)
