"""Weight initialization shared by the Transformer backbones."""

from __future__ import annotations

from timm.layers import trunc_normal_
from torch import nn

__all__ = ["init_vit_weights"]


def init_vit_weights(m: nn.Module) -> None:
    """ViT / Point-MAE init for ``module.apply``: ``trunc_normal(0.02)`` weights and zero biases
    for Linear and 1x1 Conv1d layers, unit LayerNorms."""
    if isinstance(m, (nn.Linear, nn.Conv1d)):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
