"""CLAR pretrainer (CLAR paper, Sec. III, Eq. 7): Point-MAE + global and local alignment to
frozen 2D / text teachers.

``L = alpha L_R + beta L_PI + gamma L_PT + theta L_local`` with (alpha, beta, gamma, theta) =
(1.5, 0.5, 0.5, 0.5) by default, each term switchable for the ablations of Table V.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from toolkit.models.base import ToolkitModel
from toolkit.registry import BACKBONES, MODELS, OBJECTIVES
from toolkit.utils.errors import ConfigError

__all__ = ["CLARPretrainer"]

#: The paper's weights (Eq. 7): alpha (MAE), beta (point-image), gamma (point-text), theta (local).
PAPER_WEIGHTS: dict[str, float] = {"mae": 1.5, "pi": 0.5, "pt": 0.5, "local": 0.5}


def _projection(in_dim: int, out_dim: int, hidden: int | None) -> nn.Module:
    """Point feature -> teacher embedding space (linear as ULIP, or a 2-layer MLP)."""
    if not hidden:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


@MODELS.register_module()
class CLARPretrainer(ToolkitModel):
    """CLAR: Point-MAE reconstruction + InfoNCE to frozen image / text teachers + deformable local
    alignment of 3D patches to the image teacher's feature map.

    One grouping per cloud feeds two encoder passes, as in the paper: the visible patches (MAE
    branch: decoder, Chamfer on the masked patches) and all patches (alignment branch: pooled
    feature -> projections -> global InfoNCE; per-patch tokens -> local alignment).

    Teachers are frozen and never saved: their weights come from their own config
    (``pretrained=PATH`` or an explicit ``random_init=True``) every time the model is built, so
    checkpoints hold only what is trained (encoder, decoder, projections, alignment module,
    temperatures). Per-frame image-teacher outputs may come from a
    :class:`~toolkit.models.teachers.TeacherFeatureCache` (attached by
    :class:`~toolkit.engine.clar_hooks.TeacherCacheHook`): a batch whose frames are all cached
    skips the image teacher.

    Args:
        backbone: PointMAE config (``with_decoder=True`` when the MAE term is on).
        image_teacher: image-teacher config (BACKBONES), needed by ``pi`` and ``local``.
        text_teacher: text-teacher config (BACKBONES), needed by ``pt``.
        mae_loss / image_loss / text_loss / local_loss: OBJECTIVES configs. ``local_loss`` gets
            ``token_dim`` and ``feature_dim`` filled in.
        loss_weights: per-term weights; missing terms take the paper's (1.5 / 0.5 / 0.5 / 0.5).
        use_mae / use_pi / use_pt / use_local: switches for the Table V ablations.
        proj_hidden_dim: hidden width of the point -> teacher projections (None: linear).
    """

    def __init__(
        self,
        backbone: dict,
        image_teacher: dict | None = None,
        text_teacher: dict | None = None,
        mae_loss: dict | None = None,
        image_loss: dict | None = None,
        text_loss: dict | None = None,
        local_loss: dict | None = None,
        loss_weights: Mapping[str, float] | None = None,
        use_mae: bool = True,
        use_pi: bool = True,
        use_pt: bool = True,
        use_local: bool = True,
        proj_hidden_dim: int | None = None,
        data_preprocessor: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.use = {"mae": use_mae, "pi": use_pi, "pt": use_pt, "local": use_local}
        if not any(self.use.values()):
            raise ConfigError("CLARPretrainer: every loss term is switched off (use_* = False)")
        unknown = set(loss_weights or {}) - set(PAPER_WEIGHTS)
        if unknown:
            raise ConfigError(
                f"CLARPretrainer.loss_weights: unknown term(s) {sorted(unknown)}; "
                f"expected {sorted(PAPER_WEIGHTS)}"
            )
        self.weights = {**PAPER_WEIGHTS, **dict(loss_weights or {})}
        need_image, need_text = use_pi or use_local, use_pt
        if need_image and image_teacher is None:
            raise ConfigError(
                "CLARPretrainer: use_pi / use_local need image_teacher=dict(type=..., "
                "pretrained=PATH) (or random_init=True for smoke tests)"
            )
        if need_text and text_teacher is None:
            raise ConfigError("CLARPretrainer: use_pt needs text_teacher=dict(type=...)")

        backbone = dict(backbone)
        backbone.setdefault("with_decoder", use_mae)
        self.backbone = BACKBONES.build(backbone)
        if use_mae and getattr(self.backbone, "decoder", None) is None:
            raise ConfigError("CLARPretrainer: use_mae needs a backbone built with_decoder=True")
        token_dim = int(self.backbone.token_dim)
        feat_dim = int(self.backbone.out_dim)

        # Frozen teachers live outside the module tree: they stay out of state_dict (checkpoints
        # hold only what is trained; teacher weights come from their own config on every
        # build), out of the optimizer and out of DDP's parameter sync. ``_apply`` still moves
        # them with the model (.to / .cuda / .half).
        self._teachers: dict[str, nn.Module | None] = {
            "image_teacher": BACKBONES.build(image_teacher) if need_image else None,
            "text_teacher": BACKBONES.build(text_teacher) if need_text else None,
        }
        self.mae_loss = (
            OBJECTIVES.build(mae_loss or dict(type="ChamferMAELoss")) if use_mae else None
        )
        self.pi_proj = self.pi_loss = self.pt_proj = self.pt_loss = self.local_loss = None
        if use_pi:
            dim = int(self.image_teacher.embed_dim)
            self.pi_proj = _projection(feat_dim, dim, proj_hidden_dim)
            self.pi_loss = OBJECTIVES.build(image_loss or dict(type="InfoNCELoss", name="pi"))
        if use_pt:
            dim = int(self.text_teacher.embed_dim)
            self.pt_proj = _projection(feat_dim, dim, proj_hidden_dim)
            self.pt_loss = OBJECTIVES.build(text_loss or dict(type="InfoNCELoss", name="pt"))
        if use_local:
            self.local_loss = OBJECTIVES.build(
                local_loss or dict(type="LocalAlignmentLoss"),
                default_args=dict(
                    token_dim=token_dim, feature_dim=int(self.image_teacher.feature_dim)
                ),
            )
        self._cache: Any = None  # (TeacherFeatureCache, data_root, {episode: camera})
        self.cache_hits = self.cache_misses = 0
        off = [k for k, v in self.use.items() if not v]
        if off:
            print_log(f"CLARPretrainer: loss terms switched off: {off}", logger="current")

    # ------------------------------------------------------------------ teachers
    @property
    def image_teacher(self) -> nn.Module | None:
        return self._teachers["image_teacher"]

    @property
    def text_teacher(self) -> nn.Module | None:
        return self._teachers["text_teacher"]

    def _apply(self, fn: Any, recurse: bool = True) -> CLARPretrainer:
        super()._apply(fn, recurse)
        for teacher in self._teachers.values():
            if teacher is not None:
                teacher._apply(fn, recurse)
        return self

    def attach_teacher_cache(self, cache: Any, data_root: str, cameras: Mapping[str, str]) -> None:
        """Serve image-teacher targets from ``cache`` (a filled ``TeacherFeatureCache``).

        ``cameras`` maps each episode path relative to ``data_root`` (``batch["episode"]``) to
        the camera whose features are cached.
        """
        self._cache = (cache, data_root, dict(cameras))

    def _cached_targets(self, batch: Mapping[str, Any]) -> dict[str, Tensor] | None:
        cache, root, cameras = self._cache
        episodes, steps = list(batch["episode"]), torch.as_tensor(batch["step"]).tolist()
        rows: dict[str, list[int]] = {}
        for i, ep in enumerate(episodes):
            rows.setdefault(ep, []).append(i)
        emb: list[Tensor | None] = [None] * len(episodes)
        fmap: list[Tensor | None] = [None] * len(episodes)
        for ep, idx in rows.items():
            if ep not in cameras:
                return None
            got = cache.get(os.path.join(root, ep), [steps[i] for i in idx], cameras[ep])
            if got is None:
                return None
            for n, i in enumerate(idx):
                emb[i], fmap[i] = got["embedding"][n], got["feature_map"][n]
        device = batch["points"].device
        return {
            "embedding": torch.stack(emb).to(device),  # type: ignore[arg-type]
            "feature_map": torch.stack(fmap).to(device),  # type: ignore[arg-type]
        }

    @torch.no_grad()
    def image_targets(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Image-teacher ``embedding`` (B, E) and ``feature_map`` (B, C, h, w) for the batch.

        From the attached cache when every frame of the batch is there, else from the teacher.
        """
        assert self.image_teacher is not None
        if self._cache is not None and "episode" in batch:
            cached = self._cached_targets(batch)
            if cached is not None:
                self.cache_hits += 1
                return cached
            self.cache_misses += 1
        out = self.image_teacher(batch["rgb"])
        return {"embedding": out["embedding"].float(), "feature_map": out["feature_map"].float()}

    # ------------------------------------------------------------------ losses
    def loss(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        points: Tensor = batch["points"].float()
        mask: Tensor | None = batch.get("points_mask")
        backbone = self.backbone
        groups = backbone.group(points, mask)
        losses: dict[str, Tensor] = {}

        def add(name: str, out: Mapping[str, Tensor]) -> None:
            raw = out[f"loss_{name}"]
            losses[f"loss_{name}"] = self.weights[name] * raw
            losses[f"raw_{name}"] = raw.detach()  # unweighted, logged (no "loss" in the key)
            for k, v in out.items():
                if k != f"loss_{name}":
                    losses[k] = v.detach() if isinstance(v, Tensor) else v

        if self.use["mae"]:
            mae = backbone.forward_mae(points, mask, groups=groups)
            add("mae", self.mae_loss(mae["pred"], mae["target"]))
        if not (self.use["pi"] or self.use["pt"] or self.use["local"]):
            return losses

        neighborhoods, centers = groups
        tokens = backbone.encode(neighborhoods, centers)  # all patches (alignment branch)
        pooled = backbone.pool_tokens(tokens)
        targets = self.image_targets(batch) if self.image_teacher is not None else {}
        if self.use["pi"]:
            add("pi", self.pi_loss(self.pi_proj(pooled), targets["embedding"]))
        if self.use["pt"]:
            texts = _as_texts(batch.get("text"), len(points))
            text_emb = self.text_teacher(texts).to(pooled.device).float()
            add("pt", self.pt_loss(self.pt_proj(pooled), text_emb))
        if self.use["local"]:
            rgb = batch["rgb"]
            out = self.local_loss(
                tokens,
                centers,
                targets["feature_map"],
                batch["intrinsics"].float(),
                batch["extrinsics"].float(),
                image_hw=(int(rgb.shape[-2]), int(rgb.shape[-1])),
                pixel_valid=batch.get("pixel_valid"),
            )
            add("local", out)
        return losses

    @torch.no_grad()
    def inspect(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """What the pictures show, for a batch (eval mode, no gradients).

        Returns ``centers`` (B, G, 3), ``neighborhoods`` (B, G, K, 3) and, with the MAE term,
        ``mask`` (B, G), ``pred`` (B, M, K, 3), ``masked_idx`` (B, M); with the local term,
        ``reference_points`` (B, G, 2), ``valid`` (B, G), ``locations`` (B, G, H, P, 2) and
        ``weights`` (B, G, H, P) of the deformable sampling.
        """
        was_training = self.training
        self.eval()
        try:
            points = batch["points"].float()
            mask = batch.get("points_mask")
            groups = self.backbone.group(points, mask)
            out: dict[str, Tensor] = {"centers": groups[1], "neighborhoods": groups[0]}
            if self.use["mae"]:
                mae = self.backbone.forward_mae(points, mask, groups=groups)
                out.update({k: mae[k] for k in ("mask", "pred", "masked_idx")})
            if self.use["local"]:
                tokens = self.backbone.encode(*groups)
                rgb = batch["rgb"]
                det = self.local_loss(
                    tokens,
                    groups[1],
                    self.image_targets(batch)["feature_map"],
                    batch["intrinsics"].float(),
                    batch["extrinsics"].float(),
                    image_hw=(int(rgb.shape[-2]), int(rgb.shape[-1])),
                    pixel_valid=batch.get("pixel_valid"),
                    return_details=True,
                )
                out.update(
                    {k: det[k] for k in ("reference_points", "valid", "locations", "weights")}
                )
            return out
        finally:
            self.train(was_training)

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Encoder outputs over all patches (``tokens``, ``pooled``, ``centers``)."""
        out = self.backbone(batch["points"].float(), batch.get("points_mask"))
        return {k: out[k] for k in ("tokens", "pooled", "centers")}


def _as_texts(text: Any, batch_size: int) -> list[str]:
    if isinstance(text, str):
        return [text] * batch_size
    if not isinstance(text, Sequence) or len(text) != batch_size:
        raise ConfigError(
            f"CLARPretrainer: batch['text'] must be {batch_size} strings (one per sample), got "
            f"{type(text).__name__}"
        )
    return [str(t) for t in text]
