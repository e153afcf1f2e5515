"""Reusable layers shared by the backbones, heads and pretrainers."""

from toolkit.models.layers.deformable import DeformableCrossAttention
from toolkit.models.layers.mini_pointnet import MiniPointNet
from toolkit.models.layers.point_mask import (
    check_point_mask,
    drop_full_mask,
    masked_max,
    masked_mean,
    push_invalid_far,
)
from toolkit.models.layers.shared_mlp import RowBatchNorm, SharedMLP
from toolkit.models.layers.string_attention import StringAttention, StringBlock

__all__ = [
    "DeformableCrossAttention",
    "MiniPointNet",
    "RowBatchNorm",
    "SharedMLP",
    "StringAttention",
    "StringBlock",
    "check_point_mask",
    "drop_full_mask",
    "masked_max",
    "masked_mean",
    "push_invalid_far",
]
