"""Frozen CLAMP encoders as a token source for policies (CLAMP Sec. III-C).

The Diffusion Policy's encoder attends to the UNPOOLED tokens of CLAMP's multi-view STRING ViT
and action-history encoder (before MAP pooling); the "pooled features" ablation feeds the
pooled embeddings instead, and the "unfrozen encoders" ablation trains them with the policy.
The text encoder is not used by the policy (sim-state text does not exist on a real robot).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from toolkit.utils.errors import ConfigError

__all__ = ["ClampTokens", "clamp_model_config"]


def clamp_model_config(config: str | dict) -> dict:
    """The CLAMP pretrainer's model config: a dict, or the ``model`` of a recipe file."""
    if isinstance(config, dict):
        return dict(config)
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(str(config))
    except FileNotFoundError as exc:
        raise ConfigError(f"ClampTokens.config: recipe not found: {config}") from exc
    if "model" not in cfg:
        raise ConfigError(f"ClampTokens.config: {config} has no `model`")
    return cfg.model.to_dict()


class ClampTokens(nn.Module):
    """CLAMP's image (views) and action-history encoders, loaded from a pretraining checkpoint.

    Args:
        config: the CLAMP pretrainer's model config (dict) or its recipe file.
        weights: the pretraining checkpoint (``work_dirs/<run>/epoch_N.pth``, a work dir, or a
            weights-only state dict). None: random encoders, with a loud warning (tests).
        freeze: keep the encoders fixed (eval mode, no gradients); the paper's protocol.
        pooled: return the pooled embeddings (1 token per modality) instead of the tokens.
        modalities: which encoders to use (``("image", "action")``).
    """

    def __init__(
        self,
        config: str | dict,
        weights: str | None = None,
        freeze: bool = True,
        pooled: bool = False,
        modalities: tuple[str, ...] = ("image", "action"),
    ) -> None:
        super().__init__()
        from toolkit.models.utils import load_pretrained
        from toolkit.registry import MODELS

        unknown = set(modalities) - {"image", "action"}
        if unknown or not modalities:
            raise ConfigError(
                f"ClampTokens.modalities: a non-empty subset of ('image', 'action'), got "
                f"{modalities}"
            )
        model_cfg = clamp_model_config(config)
        if weights:  # a missing checkpoint fails before a paper-size model is built
            import os

            from toolkit.models.utils import resolve_checkpoint_path
            from toolkit.utils.errors import CheckpointError

            if not os.path.exists(weights):
                raise CheckpointError(
                    f"ClampTokens.weights: {weights} does not exist (run the CLAMP pretraining "
                    "recipe first, or point at its checkpoint)"
                )
            weights = resolve_checkpoint_path(weights)
        pretrainer = MODELS.build(model_cfg)
        if weights:
            load_pretrained(pretrainer, weights, prefix="", strict=True)
            print_log(f"ClampTokens: loaded CLAMP encoders from {weights}", logger="current")
        else:
            print_log(
                "ClampTokens: no CLAMP weights given: the CLAMP encoders are RANDOM "
                "(only meaningful for tests)",
                logger="current",
                level=logging.WARNING,
            )
        if getattr(pretrainer, "image_input", "views") != "views":
            raise ConfigError("ClampTokens: the CLAMP image encoder must read views")
        self.modalities = tuple(modalities)
        self.image_encoder = pretrainer.image_encoder if "image" in modalities else None
        self.action_encoder = pretrainer.action_encoder if "action" in modalities else None
        self.freeze, self.pooled = freeze, pooled
        if freeze:
            self.requires_grad_(False)
            self.eval()
        self.dims = {
            m: int(enc.out_dim if pooled else getattr(enc, "token_dim", enc.out_dim))
            for m, enc in (("image", self.image_encoder), ("action", self.action_encoder))
            if enc is not None
        }
        self.history = int(getattr(self.action_encoder, "history", 0) or 0)

    @torch.no_grad()
    def token_counts(self, views_shape: tuple[int, ...]) -> dict[str, int]:
        """Tokens per modality for views of ``views_shape`` (V, 4, S, S) (one dry forward)."""
        if self.pooled:
            return dict.fromkeys(self.dims, 1)
        dummy: dict[str, Any] = {"views": torch.zeros(1, *views_shape)}
        if self.action_encoder is not None:
            a = int(self.action_encoder.action_dim)
            dummy["actions_hist"] = torch.zeros(1, self.history, a)
            dummy["actions_hist_mask"] = torch.ones(1, self.history, dtype=torch.bool)
        device = next(self.parameters()).device
        out = self.forward({k: v.to(device) for k, v in dummy.items()})
        return {m: int(x.shape[1]) for m, x in out.items()}

    def train(self, mode: bool = True) -> ClampTokens:
        return super().train(False if self.freeze else mode)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """``{"image": (B, Ti, Ci), "action": (B, Ta, Ca)}`` from ``batch["views"]`` and
        ``batch["actions_hist"]`` / ``["actions_hist_mask"]``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            out = {}
            if self.image_encoder is not None:
                o = self.image_encoder(batch["views"].float())
                out["image"] = o["pooled"][:, None] if self.pooled else o["tokens"]
            if self.action_encoder is not None:
                o = self.action_encoder(
                    batch["actions_hist"].float(), batch.get("actions_hist_mask")
                )
                out["action"] = o["pooled"][:, None] if self.pooled else o["tokens"]
        return out
