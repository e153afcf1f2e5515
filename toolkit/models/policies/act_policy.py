"""ACT (Action Chunking with Transformers) as a baseline head, with or without CLAMP tokens.

CLAMP compares its Diffusion Policy against ACT (Table I: ACT, pretrained ACT, ACT + CLAMP):
with multimodal demonstrations ACT's L1 regression averages modes, which CLAMP reports as
worse. Shares the observation tokens, normalization and rollout contract of
:class:`~toolkit.models.policies.chunk_policy.ChunkPolicy`; actions are normalized by mean/std
as in ACT unless configured otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from toolkit.models.policies.chunk_policy import ChunkPolicy
from toolkit.registry import HEADS, MODELS
from toolkit.utils.errors import ConfigError

__all__ = ["ACTPolicy"]


@MODELS.register_module()
class ACTPolicy(ChunkPolicy):
    """Observation tokens -> :class:`~toolkit.models.heads.ACTTransformer` -> chunk.

    Args:
        head: HEADS config (``ACTTransformer``); sizes filled in from the policy.
        kl_weight: weight of the KL term (ACT: 10).
        init_weights / init_include: see :meth:`ChunkPolicy.init_from`.
        **kwargs: :class:`ChunkPolicy` (``temporal_ensemble=0.01`` is ACT's inference).
    """

    def __init__(
        self,
        head: dict,
        kl_weight: float = 10.0,
        init_weights: str | None = None,
        init_include: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("action_norm", "meanstd")
        super().__init__(**kwargs)
        self.head = HEADS.build(
            head,
            default_args=dict(
                action_dim=self.action_dim,
                proprio_dim=max(self.proprio_dim, 1),
                chunk_size=self.chunk_size,
                d_model=self.tokenizer.d_model,
            ),
        )
        if self.head.d_model != self.tokenizer.d_model:
            raise ConfigError(
                f"ACTPolicy: head.d_model {self.head.d_model} != d_model {self.tokenizer.d_model}"
            )
        self.kl_weight = kl_weight
        if init_weights:
            self.init_from(init_weights, include=init_include)

    def loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        target = self.action_normalizer.normalize(batch["action"].float())
        is_pad = batch.get("action_is_pad")
        tokens, pos = self.tokens(batch)
        proprio = self.proprio_normalizer.normalize(batch["proprio"].float())
        mu, logvar = self.head.posterior(proprio, target, is_pad)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        pred = self.head(tokens, pos, z)
        l1 = F.l1_loss(pred, target, reduction="none").mean(-1)  # (B, C)
        if is_pad is not None:
            keep = (~is_pad.bool()).float()
            l1 = (l1 * keep).sum() / keep.sum().clamp_min(1.0)
        else:
            l1 = l1.mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(-1).mean()
        return {"loss_l1": l1, "loss_kl": self.kl_weight * kl, "kl": kl.detach()}

    @torch.no_grad()
    def sample(self, batch: dict[str, Any]) -> Tensor:
        tokens, pos = self.tokens(batch)
        z = torch.zeros(tokens.shape[0], self.head.latent_dim, device=tokens.device)
        return self.head(tokens, pos, z)
