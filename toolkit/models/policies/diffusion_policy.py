"""Diffusion Policy, ALOHA Unleashed style (CLAMP Sec. III-C, specs.md "Diffusion Policy").

Training: DDPM (diffusers' ``DDPMScheduler``, epsilon prediction, ``squaredcos_cap_v2``,
clipped samples): noise the min/max-normalized chunk at a random timestep and regress the noise
(MSE). Inference: diffusers' DDIM (configurable steps, default 10) or DDPM (all training
steps), the observation encoded once per chunk and the decoder run once per denoising step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from toolkit.models.policies.chunk_policy import ChunkPolicy
from toolkit.registry import HEADS, MODELS
from toolkit.utils.errors import ConfigError

__all__ = ["DiffusionPolicy"]

SCHEDULER_DEFAULTS: dict[str, Any] = dict(
    num_train_timesteps=100,
    beta_schedule="squaredcos_cap_v2",
    clip_sample=True,
    prediction_type="epsilon",
)


@MODELS.register_module()
class DiffusionPolicy(ChunkPolicy):
    """Observation tokens -> :class:`~toolkit.models.heads.DiffusionTransformerHead` ->
    denoised ``C x A`` chunk.

    Args:
        head: HEADS config (``DiffusionTransformerHead``); ``action_dim``, ``chunk_size``,
            ``d_model`` and ``num_train_timesteps`` are filled in.
        noise_scheduler: diffusers DDPM/DDIM kwargs (defaults: 100 steps, squaredcos_cap_v2,
            clip_sample, ``prediction_type="epsilon"`` as in the paper; ``"sample"`` and
            ``"v_prediction"`` also work).
        inference: ``dict(scheduler="ddim" | "ddpm", steps=10)``.
        mask_padding: leave padded chunk entries out of the loss (False: train on them, as
            Diffusion Policy does, so the policy learns to hold the final pose).
        init_weights / init_include: see :meth:`ChunkPolicy.init_from`.
        **kwargs: :class:`ChunkPolicy` (cameras, image_encoder, d_model, clamp...).
    """

    def __init__(
        self,
        head: dict,
        noise_scheduler: dict | None = None,
        inference: dict | None = None,
        mask_padding: bool = False,
        init_weights: str | None = None,
        init_include: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from diffusers import DDIMScheduler, DDPMScheduler

        self.sched_cfg = {**SCHEDULER_DEFAULTS, **dict(noise_scheduler or {})}
        if self.sched_cfg["prediction_type"] not in ("epsilon", "sample", "v_prediction"):
            raise ConfigError(
                "DiffusionPolicy.noise_scheduler.prediction_type: 'epsilon', 'sample' or "
                f"'v_prediction', got {self.sched_cfg['prediction_type']!r}"
            )
        self.train_scheduler = DDPMScheduler(**self.sched_cfg)
        inf = {"scheduler": "ddim", "steps": 10, **dict(inference or {})}
        if inf["scheduler"] not in ("ddim", "ddpm"):
            raise ConfigError(
                f"DiffusionPolicy.inference.scheduler: 'ddim' or 'ddpm', got {inf['scheduler']!r}"
            )
        self.inference = inf
        cls = DDIMScheduler if inf["scheduler"] == "ddim" else DDPMScheduler
        self.infer_scheduler = cls(**self.sched_cfg)
        self.head = HEADS.build(
            head,
            default_args=dict(
                action_dim=self.action_dim,
                chunk_size=self.chunk_size,
                d_model=self.tokenizer.d_model,
                num_train_timesteps=self.sched_cfg["num_train_timesteps"],
            ),
        )
        if self.head.d_model != self.tokenizer.d_model:
            raise ConfigError(
                f"DiffusionPolicy: head.d_model {self.head.d_model} != d_model "
                f"{self.tokenizer.d_model}"
            )
        self.mask_padding = mask_padding
        if init_weights:
            self.init_from(init_weights, include=init_include)

    def loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        target = self.action_normalizer.normalize(batch["action"].float())
        tokens, pos = self.tokens(batch)
        b = target.shape[0]
        noise = torch.randn_like(target)
        t = torch.randint(
            0, self.train_scheduler.config.num_train_timesteps, (b,), device=target.device
        )
        noisy = self.train_scheduler.add_noise(target, noise, t)
        out = self.head(noisy, t, tokens, pos)
        kind = self.sched_cfg["prediction_type"]
        if kind == "epsilon":
            goal = noise
        elif kind == "sample":
            goal = target
        else:  # v_prediction
            goal = self.train_scheduler.get_velocity(target, noise, t)
        err = F.mse_loss(out, goal, reduction="none").mean(-1)  # (B, C)
        if self.mask_padding and "action_is_pad" in batch:
            keep = (~batch["action_is_pad"].bool()).float()
            loss = (err * keep).sum() / keep.sum().clamp_min(1.0)
        else:
            loss = err.mean()
        return {"loss_diffusion": loss}

    @torch.no_grad()
    def sample(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        tokens, pos = self.tokens(batch)
        memory = self.head.encode(tokens, pos)
        b = tokens.shape[0]
        x = torch.randn(
            b, self.chunk_size, self.action_dim, generator=generator, device=tokens.device
        )
        sched = self.infer_scheduler
        steps = (
            int(self.inference["steps"])
            if self.inference["scheduler"] == "ddim"
            else int(self.sched_cfg["num_train_timesteps"])
        )
        sched.set_timesteps(steps, device=tokens.device)
        for t in sched.timesteps:
            eps = self.head.decode(x, t, memory)
            x = sched.step(eps, t, x, generator=generator).prev_sample
        return x
