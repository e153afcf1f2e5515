"""Policy heads (HEADS registry)."""

from toolkit.models.heads.act import ACTTransformer
from toolkit.models.heads.diffusion import DiffusionTransformerHead
from toolkit.models.heads.mlp import BNMLPHead

__all__ = ["ACTTransformer", "BNMLPHead", "DiffusionTransformerHead"]
