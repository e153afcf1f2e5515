"""Policy heads (HEADS registry)."""

from toolkit.models.heads.mlp import BNMLPHead

__all__ = ["BNMLPHead"]
