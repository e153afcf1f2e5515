"""Per-camera image encoders for chunking policies: a timm ResNet's last feature map as tokens.

ALOHA Unleashed (and CLAMP's Diffusion Policy) encode every camera with its own ResNet-50 and
feed the stage-4 feature map to the Transformer as tokens; ACT uses ResNet-18. timm builds the
trunk (``features_only``); ImageNet weights come from a local file (``weights=PATH``), since
nothing can be downloaded.
"""

from __future__ import annotations

import logging

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from toolkit.models.layers.pos_embed import sine_pos_2d
from toolkit.models.utils import PretrainedMixin, load_pretrained
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ConfigError, ShapeError

__all__ = ["ImageResNet"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMS = ("batch", "frozen_batch", "group")


def batchnorm_to_groupnorm(module: nn.Module, groups: int = 16) -> nn.Module:
    """Replace every BatchNorm2d by GroupNorm (in place; returns the module).

    Diffusion Policy does this: batch statistics of small, highly correlated robot batches
    (batch 8 in CLAMP) are poor, and EMA statistics drift between pretraining and fine-tuning.
    torch / timm offer BN -> SyncBN and BN -> FrozenBN but no BN -> GN conversion.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            g = groups if c % groups == 0 else 1
            setattr(module, name, nn.GroupNorm(g, c, affine=True))
        else:
            batchnorm_to_groupnorm(child, groups)
    return module


@BACKBONES.register_module()
class ImageResNet(PretrainedMixin, nn.Module):
    """One camera's encoder: ResNet trunk -> stage-``stage`` map -> 1x1 conv -> tokens.

    Args:
        arch: any timm ResNet-family name (``resnet18``, ``resnet50``...).
        out_dim: token width after the 1x1 projection (None: the trunk's channels).
        stage: which feature stage (4 = the last, stride 32).
        norm: ``group`` (BatchNorm -> GroupNorm, for training from scratch),
            ``frozen_batch`` (with ImageNet weights, as ACT does) or ``batch``.
        weights: local file with the trunk's weights (timm / torchvision ResNet names; the
            classifier ``fc.*`` is dropped).
        weights_prefix: key prefix of the trunk inside that file.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        out_dim: int | None = 256,
        stage: int = 4,
        norm: str = "group",
        weights: str | None = None,
        weights_prefix: str = "",
    ) -> None:
        super().__init__()
        import timm

        if norm not in NORMS:
            raise ConfigError(f"ImageResNet.norm must be one of {NORMS}, got {norm!r}")
        try:
            self.trunk = timm.create_model(
                arch, pretrained=False, features_only=True, out_indices=(stage,)
            )
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise ConfigError(f"ImageResNet.arch: {exc}") from exc
        if weights:
            load_pretrained(self.trunk, weights, prefix=weights_prefix, convert=_drop_classifier)
            print_log(f"ImageResNet: loaded {arch} weights from {weights}", logger="current")
        if norm == "group":
            if weights:
                print_log(
                    "ImageResNet: norm='group' drops the loaded BatchNorm statistics; use "
                    "norm='frozen_batch' to keep ImageNet features intact",
                    logger="current",
                    level=logging.WARNING,
                )
            batchnorm_to_groupnorm(self.trunk)
        elif norm == "frozen_batch":
            from timm.layers import freeze_batch_norm_2d

            self.trunk = freeze_batch_norm_2d(self.trunk)
        channels = int(self.trunk.feature_info.channels()[-1])
        self.reduction = int(self.trunk.feature_info.reduction()[-1])
        self.proj = nn.Conv2d(channels, out_dim, 1) if out_dim else nn.Identity()
        self.out_dim = int(out_dim or channels)
        self.token_dim = self.out_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Encode images.

        Args:
            images: ``(B, 3, H, W)`` uint8 (0..255) or float in [0, 1].

        Returns:
            ``dict(tokens (B, h*w, D), pooled (B, D), pos (h*w, D)`` 2-D sine embedding,
            ``feature_map (B, D, h, w))``.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ShapeError(f"ImageResNet: images must be (B, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = (x - self.mean) / self.std
        fmap = self.proj(self.trunk(x)[-1])
        b, d, h, w = fmap.shape
        tokens = fmap.flatten(2).transpose(1, 2)
        pos = sine_pos_2d(h, w, d).to(tokens)
        return dict(tokens=tokens, pooled=tokens.mean(1), pos=pos, feature_map=fmap)


def _drop_classifier(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}
