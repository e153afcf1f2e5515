"""CLAMP pretrainer (CLAMP paper, Sec. III-B / III-D): tri-modal SigLIP between the multi-view
STRING ViT, the action-history encoder and the sim-state text encoder.

``L = (L_SigLIP(image, text) + L_SigLIP(image, action) + L_SigLIP(text, action)) / 3``; the
"w/o text" ablation drops the text encoder and keeps the image-action pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from toolkit.models.base import ToolkitModel
from toolkit.registry import BACKBONES, MODELS, OBJECTIVES
from toolkit.utils.errors import ConfigError

__all__ = ["CLAMPPretrainer"]


@MODELS.register_module()
class CLAMPPretrainer(ToolkitModel):
    """Image (views or points), action-history and text encoders aligned with SigLIP.

    Each encoder's pooled embedding goes through a linear projection to ``embed_dim`` (identity
    when the widths already agree and ``project=False``), then the tri-modal SigLIP loss.

    Args:
        image_encoder: BACKBONES config over ``batch[image_input]`` (``StringViT`` on
            ``views``; a point-cloud encoder on ``points`` for the "DP3 instead of the ViT"
            ablation).
        action_encoder: BACKBONES config (``ActionHistoryEncoder``) over ``batch["actions"]``
            with ``batch["actions_mask"]``.
        text_encoder: BACKBONES config (``ClampTextEncoder``) over ``batch["text"]``; None
            drops text (the "w/o text" ablation; the loss keeps the image-action pair).
        loss: OBJECTIVES config (``TriModalSigLIPLoss``); its ``pairs`` are set from the
            modalities present unless given.
        embed_dim: shared embedding width (paper 768).
        image_input: ``"views"`` | ``"points"``.
    """

    def __init__(
        self,
        image_encoder: dict,
        action_encoder: dict,
        text_encoder: dict | None = None,
        loss: dict | None = None,
        embed_dim: int = 768,
        image_input: str = "views",
        data_preprocessor: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        if image_input not in ("views", "points"):
            raise ConfigError(
                f"CLAMPPretrainer.image_input: 'views' or 'points', got {image_input!r}"
            )
        self.image_input = image_input
        self.image_encoder = BACKBONES.build(image_encoder)
        self.action_encoder = BACKBONES.build(action_encoder)
        self.text_encoder = BACKBONES.build(text_encoder) if text_encoder is not None else None
        self.modalities = ("image", "text", "action") if self.text_encoder else ("image", "action")
        self.proj = nn.ModuleDict(
            {
                m: nn.Linear(int(enc.out_dim), embed_dim)
                for m, enc in (
                    ("image", self.image_encoder),
                    ("action", self.action_encoder),
                    ("text", self.text_encoder),
                )
                if enc is not None
            }
        )
        loss = dict(loss or dict(type="TriModalSigLIPLoss"))
        if "pairs" not in loss:
            loss["pairs"] = (
                ("image_text", "image_action", "text_action")
                if self.text_encoder
                else ("image_action",)
            )
        needs_text = any("text" in p for p in loss["pairs"])
        if needs_text and self.text_encoder is None:
            raise ConfigError(
                f"CLAMPPretrainer: loss pairs {list(loss['pairs'])} use text but text_encoder=None"
            )
        self.loss_fn = OBJECTIVES.build(loss)
        self.embed_dim = embed_dim

    def _image(self, batch: dict[str, Any]) -> Tensor:
        if self.image_input == "views":
            return self.image_encoder(batch["views"].float())["pooled"]
        return self.image_encoder(batch["points"].float(), batch.get("points_mask"))["pooled"]

    def embed(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Projected (not normalized) embeddings ``{modality: (B, embed_dim)}``."""
        out = {"image": self.proj["image"](self._image(batch))}
        act = self.action_encoder(batch["actions"].float(), batch.get("actions_mask"))
        out["action"] = self.proj["action"](act["pooled"])
        if self.text_encoder is not None:
            out["text"] = self.proj["text"](self.text_encoder(_texts(batch["text"]))["pooled"])
        return out

    def loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self.loss_fn(**self.embed(batch))

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Tensor]]:
        """One dict of L2-normalized embeddings per sample (what the retrieval metric reads)."""
        emb = {k: F.normalize(v.float(), dim=-1).cpu() for k, v in self.embed(batch).items()}
        n = next(iter(emb.values())).shape[0]
        texts = _texts(batch["text"]) if "text" in batch else [""] * n
        return [{**{k: v[i] for k, v in emb.items()}, "text_str": texts[i]} for i in range(n)]


def _texts(text: Any) -> list[str]:
    if isinstance(text, str):
        return [text]
    if not isinstance(text, Sequence):
        raise ConfigError(f"CLAMPPretrainer: batch['text'] must be strings, got {type(text)}")
    return [str(t) for t in text]
