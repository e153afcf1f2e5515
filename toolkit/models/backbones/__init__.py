"""Encoders registered in ``BACKBONES``.

Contract (point-cloud backbones): ``forward(points (B, N, 3), mask (B, N) bool | None) ->
dict(tokens=(B, T, D_tok), pooled=(B, out_dim), centers=(B, T, 3), ...)`` with attributes
``out_dim`` (width of ``pooled``), ``token_dim`` (width of ``tokens``) and ``num_tokens`` (T, or
None when T = N). Every backbone has ``load_pretrained(path, prefix="", strict=True)``.
See docs/backbones.md.
"""

from toolkit.models.backbones import action_encoder, string_vit, text_encoder  # noqa: F401  (CLAMP)
from toolkit.models.backbones.dp3_encoder import DP3Encoder
from toolkit.models.backbones.point_mae import PointMAE
from toolkit.models.backbones.pointnet import PointNet
from toolkit.models.backbones.pointnet2 import PointNet2
from toolkit.models.backbones.resnet import ImageResNet

__all__ = ["DP3Encoder", "ImageResNet", "PointMAE", "PointNet", "PointNet2"]
