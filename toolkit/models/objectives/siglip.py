"""SigLIP (sigmoid) contrastive losses with learnable temperature and bias (CLAMP Eqs. 1-3)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.dist import get_rank, get_world_size
from open_clip.loss import SigLipLoss as _OpenClipSigLipLoss
from torch import Tensor, nn

from toolkit.registry import OBJECTIVES
from toolkit.utils.errors import ShapeError

__all__ = ["SigLIPLoss", "TriModalSigLIPLoss"]

_DIST_IMPLS = ("bidir", "shift", "reduce", "gather")


def _check_name(cls: str, name: str) -> None:
    # mmengine's parse_losses sums every key containing "loss": the logged extras must not
    if "loss" in name:
        raise ValueError(f"{cls}: name must not contain 'loss' (got '{name}')")


@OBJECTIVES.register_module()
class SigLIPLoss(nn.Module):
    """``-1/B sum_ij log sigmoid(l_ij (t x_i . y_j + b))``, ``l_ij = +1`` if ``i = j`` else -1.

    Zhai et al., "Sigmoid Loss for Language Image Pre-Training" (ICCV 2023), as CLAMP Eqs. 1-3
    on L2-normalized features. ``t = exp(logit_scale)`` (init ``log 10``) and ``b``
    (``logit_bias``, init -10) are learnable, unclamped (big_vision). The math and the
    cross-rank negatives are open_clip's ``SigLipLoss``: with several ranks each rank scores
    its local ``x`` against every rank's ``y`` (neighbour exchange with gradients), divided by
    the local batch size; with DDP's gradient averaging this equals the single-process loss on
    the global batch.

    Features are cast to float32 (the loss runs outside autocast's low precision).

    Args:
        name: Output keys ``loss_{name}``, ``{name}_logit_scale`` (``t``, detached) and
            ``{name}_logit_bias`` (``b``, detached). Must not contain ``"loss"``.
        init_logit_scale: Initial ``log t``. Default ``log 10``.
        init_logit_bias: Initial ``b``. Default -10.
        learnable: Learn ``t`` and ``b`` (parameters) or keep them fixed (buffers).
        gather: Use the negatives of every rank when running distributed.
        normalize: L2-normalize ``x`` and ``y`` first.
        dist_impl: open_clip's exchange: ``"bidir"`` (default) | ``"shift"`` | ``"reduce"`` |
            ``"gather"``.
    """

    def __init__(
        self,
        name: str,
        init_logit_scale: float = math.log(10.0),
        init_logit_bias: float = -10.0,
        learnable: bool = True,
        gather: bool = True,
        normalize: bool = True,
        dist_impl: str = "bidir",
    ) -> None:
        super().__init__()
        _check_name("SigLIPLoss", name)
        if dist_impl not in _DIST_IMPLS:
            raise ValueError(
                f"SigLIPLoss: dist_impl must be one of {_DIST_IMPLS}, got '{dist_impl}'"
            )
        self.name = name
        self.gather = gather
        self.normalize = normalize
        scale = torch.tensor(float(init_logit_scale))
        bias = torch.tensor(float(init_logit_bias))
        if learnable:
            self.logit_scale = nn.Parameter(scale)
            self.logit_bias = nn.Parameter(bias)
        else:
            self.register_buffer("logit_scale", scale)
            self.register_buffer("logit_bias", bias)
        self.siglip = _OpenClipSigLipLoss(dist_impl=dist_impl)

    def logits(self, x: Tensor, y: Tensor) -> Tensor:
        """Local ``(B, B)`` logits ``t x y^T + b`` (normalized features when ``normalize``)."""
        x, y = self._prepare(x, y)
        return self.logit_scale.exp() * x @ y.T + self.logit_bias

    def _prepare(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim != 2 or x.shape != y.shape:
            raise ShapeError(
                f"SigLIPLoss({self.name!r}): x and y must both be (B, D), got x "
                f"{tuple(x.shape)}, y {tuple(y.shape)}"
            )
        if x.shape[0] == 0:
            raise ShapeError(f"SigLIPLoss({self.name!r}): empty batch")
        x, y = x.float(), y.float()
        if self.normalize:
            x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
        return x, y

    def forward(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """``x (B, D)``, ``y (B, D)`` paired row by row -> ``{loss_{name}, {name}_logit_scale,
        {name}_logit_bias}``."""
        x, y = self._prepare(x, y)
        # rank / world size are read every call: the loss may be built before the process group
        world = get_world_size() if self.gather else 1
        self.siglip.rank = get_rank() if world > 1 else 0
        self.siglip.world_size = world
        t = self.logit_scale.exp()
        with torch.autocast(x.device.type, enabled=False):
            loss = self.siglip(x, y, t, self.logit_bias)
        return {
            f"loss_{self.name}": loss,
            f"{self.name}_logit_scale": t.detach(),
            f"{self.name}_logit_bias": self.logit_bias.detach(),
        }


@OBJECTIVES.register_module()
class TriModalSigLIPLoss(nn.Module):
    """Mean of pairwise SigLIP losses over modality pairs (CLAMP: image-text, image-action,
    text-action; ``L = (L_IT + L_IA + L_TA) / 3``).

    Each pair ``"a_b"`` is a :class:`SigLIPLoss` between the features passed as ``a`` and
    ``b``. Design choice (UNVERIFIED: CLAMP writes one ``t`` and ``b`` in Eqs. 1-3 without
    saying whether they are shared): every pair has its own learnable ``t`` and ``b`` by default
    (the pairs differ in how separable they are, e.g. image-action vs text-action);
    ``share_scale_bias=True`` uses one ``t`` and ``b`` for all pairs. The "w/o text" ablation is
    ``pairs=("image_action",)``: the text features are then not needed.

    Returns ``loss_{name}`` (the mean: the only key containing "loss", so mmengine optimizes
    just it) and, detached for logging, ``{name}_{pair}`` (each raw term),
    ``{name}_{pair}_logit_scale`` (``t``) and ``{name}_{pair}_logit_bias`` (``b``).

    Args:
        name: Key prefix. Default ``"clamp"``.
        pairs: Modality pairs ``"a_b"``. Default ``("image_text", "image_action",
            "text_action")``.
        share_scale_bias: One ``t`` / ``b`` for all pairs. Default False.
        **kwargs: :class:`SigLIPLoss` arguments (``init_logit_scale``, ``init_logit_bias``,
            ``learnable``, ``gather``, ``normalize``, ``dist_impl``).
    """

    def __init__(
        self,
        name: str = "clamp",
        pairs: Sequence[str] = ("image_text", "image_action", "text_action"),
        share_scale_bias: bool = False,
        **kwargs,
    ) -> None:
        super().__init__()
        _check_name("TriModalSigLIPLoss", name)
        if isinstance(pairs, str) or not pairs:
            raise ValueError(f"TriModalSigLIPLoss: pairs must be a non-empty list, got {pairs!r}")
        self.name = name
        self.pairs: dict[str, tuple[str, str]] = {}
        for pair in pairs:
            parts = pair.split("_")
            if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
                raise ValueError(
                    f"TriModalSigLIPLoss: pair '{pair}' must name two different modalities as "
                    f"'a_b' (e.g. 'image_text')"
                )
            if pair in self.pairs:
                raise ValueError(f"TriModalSigLIPLoss: pair '{pair}' given twice")
            self.pairs[pair] = (parts[0], parts[1])
        self.share_scale_bias = share_scale_bias
        if share_scale_bias:
            self.losses = nn.ModuleDict({"shared": SigLIPLoss(f"{name}_shared", **kwargs)})
        else:
            self.losses = nn.ModuleDict({p: SigLIPLoss(f"{name}_{p}", **kwargs) for p in pairs})

    @property
    def modalities(self) -> set[str]:
        """Modalities the configured pairs need."""
        return {m for pair in self.pairs.values() for m in pair}

    def pair_loss(self, pair: str) -> SigLIPLoss:
        """The :class:`SigLIPLoss` (with its ``t`` and ``b``) that scores ``pair``."""
        return self.losses["shared" if self.share_scale_bias else pair]

    def forward(self, **features: Tensor) -> dict[str, Tensor]:
        """``loss(image=x, text=y, action=z)`` with ``(B, D)`` features per modality."""
        missing = sorted(self.modalities - set(features))
        if missing:
            raise ValueError(
                f"TriModalSigLIPLoss({self.name!r}): pairs {list(self.pairs)} need features "
                f"{missing}; got {sorted(features)}"
            )
        out: dict[str, Tensor] = {}
        terms = []
        for pair, (a, b) in self.pairs.items():
            loss_fn = self.pair_loss(pair)
            res = loss_fn(features[a], features[b])
            term = res[f"loss_{loss_fn.name}"]
            terms.append(term)
            out[f"{self.name}_{pair}"] = term.detach()
            out[f"{self.name}_{pair}_logit_scale"] = res[f"{loss_fn.name}_logit_scale"]
            out[f"{self.name}_{pair}_logit_bias"] = res[f"{loss_fn.name}_logit_bias"]
        out[f"loss_{self.name}"] = torch.stack(terms).mean()
        return out
