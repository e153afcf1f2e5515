"""Pretrainers (MODELS): encoders + objectives whose ``loss()`` reads like the paper's equation."""

from toolkit.models.pretrainers.clamp import CLAMPPretrainer
from toolkit.models.pretrainers.clar import CLARPretrainer

__all__ = ["CLAMPPretrainer", "CLARPretrainer"]
