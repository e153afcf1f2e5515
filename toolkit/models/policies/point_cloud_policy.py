"""Point-cloud behaviour-cloning policy: any BACKBONES encoder + an MLP head (CLAR Fig. 3)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from toolkit.models.base import ToolkitModel
from toolkit.models.policies.normalization import Normalizer
from toolkit.models.utils import load_pretrained
from toolkit.registry import BACKBONES, HEADS, MODELS, OBJECTIVES


@MODELS.register_module()
class PointCloudPolicy(ToolkitModel):
    """Behaviour cloning from point clouds: ``action = head([encoder(points), proprio])``.

    The protocol of CLAR / Lift3D on MetaWorld: a (from-scratch, pretrained-frozen or
    pretrained-tuned) point-cloud encoder, its pooled feature concatenated with the normalized
    proprioception (and an optional projected language feature for multi-task), a BN-MLP head,
    MSE on normalized actions. Normalization statistics are fitted on the training split by
    :class:`~toolkit.engine.policy_hooks.FitNormalizationHook` and saved as buffers.

    Args:
        encoder: BACKBONES config; called as ``encoder(points, mask)``.
        head: HEADS config; ``in_dim`` / ``out_dim`` are filled in.
        proprio_dim: proprioception size (MetaWorld: end-effector xyz + gripper = 4).
        action_dim: action size (MetaWorld: 4).
        freeze_encoder: keep the encoder fixed (eval mode, no gradients).
        encoder_weights: local file of pretrained encoder weights (loaded weights-only).
        encoder_weights_prefix: key prefix inside that file (e.g. ``"backbone."``).
        proprio_norm / action_norm: ``meanstd`` | ``minmax`` | ``none``.
        lang_dim: size of precomputed language features in ``batch["lang"]`` (0 = none).
        lang_proj_dim: the language feature is projected to this size before concatenation.
        action_loss: OBJECTIVES config of the action loss, called as ``loss(pred, target)`` on
            *unnormalized* actions (e.g. ``PoseGripperLoss``, RLBench's 10 / 0.1 / 0.01 pose +
            gripper loss); ``None``: MSE on normalized actions (``loss_bc``).
    """

    def __init__(
        self,
        encoder: dict,
        head: dict,
        proprio_dim: int = 4,
        action_dim: int = 4,
        freeze_encoder: bool = False,
        encoder_weights: str | None = None,
        encoder_weights_prefix: str | None = None,
        proprio_norm: str = "meanstd",
        action_norm: str = "minmax",
        lang_dim: int = 0,
        lang_proj_dim: int = 64,
        action_loss: dict | None = None,
        data_preprocessor: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.encoder = BACKBONES.build(encoder)
        if encoder_weights:
            # weights-only load; names the file and the mismatching keys on failure
            # the encoder's convert_state_dict (if any) maps upstream names / drops a decoder
            load_pretrained(self.encoder, encoder_weights, prefix=encoder_weights_prefix or "")
            print_log(f"loaded encoder weights from {encoder_weights}", logger="current")
        elif freeze_encoder:
            print_log(
                "freeze_encoder=True without encoder_weights: the encoder stays at its RANDOM init",
                logger="current",
                level=logging.WARNING,
            )
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.encoder.requires_grad_(False)
        feat_dim = int(self.encoder.out_dim)
        self.lang_proj = nn.Linear(lang_dim, lang_proj_dim) if lang_dim > 0 else None
        in_dim = feat_dim + proprio_dim + (lang_proj_dim if lang_dim > 0 else 0)
        self.head = HEADS.build(head, default_args=dict(in_dim=in_dim, out_dim=action_dim))
        self.proprio_normalizer = Normalizer(proprio_dim, proprio_norm)
        self.action_normalizer = Normalizer(action_dim, action_norm)
        self.proprio_dim, self.action_dim, self.lang_dim = proprio_dim, action_dim, lang_dim
        self.action_loss = OBJECTIVES.build(action_loss) if action_loss is not None else None

    # -- training -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> PointCloudPolicy:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # frozen BatchNorm statistics too
        return self

    def fit_normalization(self, proprio: torch.Tensor, actions: torch.Tensor) -> None:
        """proprio: (M, P), actions: (M, A) from the training split."""
        self.proprio_normalizer.fit(proprio)
        self.action_normalizer.fit(actions)

    def _features(self, batch: dict[str, Any]) -> torch.Tensor:
        points = batch["points"]
        mask = batch.get("points_mask")
        if self.freeze_encoder:
            with torch.no_grad():
                feat = self.encoder(points, mask)["pooled"]
        else:
            feat = self.encoder(points, mask)["pooled"]
        parts = [feat, self.proprio_normalizer.normalize(batch["proprio"].float())]
        if self.lang_proj is not None:
            parts.append(self.lang_proj(batch["lang"].float()))
        return torch.cat(parts, dim=-1)

    def loss(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        pred = self.head(self._features(batch))
        if self.action_loss is not None:  # a loss defined in the actions' own units
            return self.action_loss(
                self.action_normalizer.unnormalize(pred), batch["action"].float()
            )
        target = self.action_normalizer.normalize(batch["action"].float())
        return {"loss_bc": F.mse_loss(pred, target)}

    def predict(self, batch: dict[str, Any]) -> torch.Tensor:
        """Unnormalized actions (B, A)."""
        return self.action_normalizer.unnormalize(self.head(self._features(batch)))

    # -- rollout contract ---------------------------------------------------------------------
    def reset(self) -> None:
        """Stateless policy: nothing to reset between episodes."""

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """obs: one environment observation (numpy) -> action (A,) numpy."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        batch = {
            "points": torch.as_tensor(
                np.asarray(obs["points"]), dtype=torch.float32, device=device
            )[None],
            "proprio": torch.as_tensor(
                np.asarray(obs["proprio"]), dtype=torch.float32, device=device
            )[None],
        }
        if obs.get("points_mask") is not None:
            batch["points_mask"] = torch.as_tensor(np.asarray(obs["points_mask"]), device=device)[
                None
            ]
        if self.lang_proj is not None:
            batch["lang"] = torch.as_tensor(
                np.asarray(obs["lang"]), dtype=torch.float32, device=device
            )[None]
        action = self.predict(batch)[0].cpu().numpy()
        self.train(was_training)
        return action
