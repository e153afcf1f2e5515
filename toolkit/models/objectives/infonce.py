"""Symmetric InfoNCE (CLIP) loss with a learnable temperature (CLAR Eqs. 2-4)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmengine.dist import get_rank, get_world_size
from open_clip.loss import ClipLoss
from torch import Tensor, nn

from toolkit.registry import OBJECTIVES
from toolkit.utils.errors import ShapeError

__all__ = ["InfoNCELoss"]


@OBJECTIVES.register_module()
class InfoNCELoss(nn.Module):
    """``0.5 [CE(s x y^T, arange) + CE(s y x^T, arange)]``, ``s = exp(logit_scale) = 1 / T``.

    The math and the cross-rank gathering are open_clip's ``ClipLoss`` (``local_loss=False``,
    ``gather_with_grad=True``): with several ranks every rank builds the full global logit
    matrix from all-gathered features (gradients flow through the gather), so the negatives of
    a sample are all other samples of the global batch. The paper's Eq. 4 writes the
    denominator over ``j != i``; like CLIP and every public implementation we keep the positive
    in the softmax denominator (standard cross-entropy).

    The temperature follows CLIP: ``logit_scale`` is initialized to ``log(1 / init_temperature)``
    and clamped to ``<= log(max_logit_scale)``. The clamp is applied in place to the parameter
    (no grad) at the start of each forward, as open_clip does after each optimizer step, so a
    scale that overshot is pulled back rather than frozen by a zero clamp gradient.

    Args:
        name: Output keys ``loss_{name}`` and ``{name}_logit_scale`` (the scale ``s``, detached,
            for logging; mmengine's ``parse_losses`` only sums keys containing ``loss``).
        init_temperature: Initial ``T``. Default 0.07 (CLIP).
        learnable_temperature: Learn ``logit_scale`` (a parameter) or keep it fixed (a buffer).
        max_logit_scale: Upper bound of ``s``. Default 100 (CLIP).
        gather: Gather features across ranks when running distributed.
        normalize: L2-normalize ``x`` and ``y`` first.
    """

    def __init__(
        self,
        name: str,
        init_temperature: float = 0.07,
        learnable_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather: bool = True,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if not init_temperature > 0:
            raise ValueError(f"InfoNCELoss: init_temperature must be > 0, got {init_temperature}")
        if not max_logit_scale > 0:
            raise ValueError(f"InfoNCELoss: max_logit_scale must be > 0, got {max_logit_scale}")
        self.name = name
        self.gather = gather
        self.normalize = normalize
        self.max_logit_scale = float(max_logit_scale)
        init = torch.tensor(math.log(1.0 / init_temperature), dtype=torch.float32)
        if learnable_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        self.clip_loss = ClipLoss(local_loss=False, gather_with_grad=True)

    def scale(self) -> Tensor:
        """Clamp ``logit_scale`` in place to ``log(max_logit_scale)`` and return ``s``."""
        with torch.no_grad():
            self.logit_scale.clamp_(max=math.log(self.max_logit_scale))
        return self.logit_scale.exp()

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """``x (B, D)``, ``y (B, D)`` paired row by row -> ``{loss_{name}, {name}_logit_scale}``."""
        if x.ndim != 2 or x.shape != y.shape:
            raise ShapeError(
                f"InfoNCELoss({self.name!r}): x and y must both be (B, D), got x "
                f"{tuple(x.shape)}, y {tuple(y.shape)}"
            )
        if x.shape[0] == 0:
            raise ShapeError(f"InfoNCELoss({self.name!r}): empty batch")
        y = y.to(x.dtype)  # e.g. half-precision cached teacher features vs a float32 student
        if self.normalize:
            x = F.normalize(x, dim=-1)
            y = F.normalize(y, dim=-1)
        # rank / world size are read every call: the loss may be built before the process group
        world_size = get_world_size() if self.gather else 1
        self.clip_loss.rank = get_rank() if world_size > 1 else 0
        self.clip_loss.world_size = world_size
        s = self.scale()
        loss = self.clip_loss(x, y, s.to(x.dtype))
        return {f"loss_{self.name}": loss, f"{self.name}_logit_scale": s.detach()}
