"""What the action-chunking policies (Diffusion Policy, ACT) share.

- :class:`ObservationTokenizer`: observation -> encoder tokens + position embeddings:
  ``[proprio] + [camera k's ResNet map tokens, k = 1..K] + [CLAMP image tokens] +
  [CLAMP action tokens]``. Image tokens get a 2-D sine embedding plus a learned per-camera
  embedding; proprioception and each CLAMP token a learned one. Photometric augmentation
  (brightness / contrast / saturation / hue, per sample) while training.
- :class:`ChunkPolicy`: normalization (proprio mean/std, actions min/max, fitted on the
  training data and saved with the checkpoint), initialization from a pretrained policy
  (CLAMP's protocol: fine-tune from the weights pretrained on the pretraining tasks, new CLAMP
  projections start fresh, the pretraining normalization is kept), and the rollout contract
  (``reset`` / ``select_action``) with chunk execution or temporal ensembling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from toolkit.models.base import ToolkitModel
from toolkit.models.policies.chunking import ActionQueue, TemporalEnsembler
from toolkit.models.policies.normalization import Normalizer
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ConfigError, ShapeError

__all__ = ["ChunkPolicy", "ObservationTokenizer", "photometric_augment"]


def photometric_augment(
    images: Tensor,
    brightness: float = 0.3,
    contrast: float = 0.4,
    saturation: float = 0.5,
    hue: float = 0.03,
) -> Tensor:
    """Per-sample color jitter of ``(B, K, 3, H, W)`` uint8 images (each camera its own draw).

    torchvision's ColorJitter draws one set of factors per call; a loop over the (small)
    batch gives every image its own, as Diffusion Policy's per-sample augmentation does.
    """
    from torchvision.transforms import v2

    jitter = v2.ColorJitter(brightness, contrast, saturation, hue)
    flat = images.reshape(-1, *images.shape[-3:])
    out = torch.stack([jitter(img) for img in flat])
    return out.reshape(images.shape)


class ObservationTokenizer(nn.Module):
    """Observation -> ``(tokens (B, S, D), pos (B|1, S, D))`` for a policy Transformer.

    Args:
        cameras: camera names, in the order of ``batch["images"]`` (B, K, 3, H, W).
        image_encoder: BACKBONES config (``ImageResNet``), one instance per camera (the
            paper's separate ResNet per camera) unless ``share_image_encoder``.
        d_model: token width.
        proprio_dim: P (0: no proprio token).
        clamp: :class:`~toolkit.models.policies.clamp_tokens.ClampTokens` kwargs, or None.
        augment: ``photometric_augment`` kwargs applied while training, or None.
        clamp_views_shape: ``(V, 4, S, S)`` of the CLAMP views (sizes the CLAMP position
            tables; :func:`~toolkit.data.chunk_dataset.clamp_views_shape`).
    """

    def __init__(
        self,
        cameras: Sequence[str],
        image_encoder: dict | None,
        d_model: int,
        proprio_dim: int = 14,
        clamp: dict | None = None,
        share_image_encoder: bool = False,
        augment: dict | None = None,
        clamp_views_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        from toolkit.models.policies.clamp_tokens import ClampTokens

        self.cameras = list(cameras)
        self.d_model = d_model
        if image_encoder is not None and self.cameras:
            cfg = dict(image_encoder)
            cfg.setdefault("out_dim", d_model)
            if share_image_encoder:
                shared = BACKBONES.build(cfg)
                self.image_encoders = nn.ModuleDict({c: shared for c in self.cameras})
            else:
                self.image_encoders = nn.ModuleDict(
                    {c: BACKBONES.build(dict(cfg)) for c in self.cameras}
                )
            widths = {int(m.out_dim) for m in self.image_encoders.values()}
            if widths != {d_model}:
                raise ConfigError(
                    f"ObservationTokenizer: image encoders give {sorted(widths)}-d tokens, "
                    f"the policy is {d_model}-d (set image_encoder.out_dim)"
                )
            self.camera_embed = nn.Parameter(torch.zeros(len(self.cameras), d_model))
            nn.init.normal_(self.camera_embed, std=0.02)
        else:
            self.image_encoders = None
        self.proprio_in = nn.Linear(proprio_dim, d_model) if proprio_dim > 0 else None
        self.proprio_pos = nn.Parameter(torch.zeros(1, 1, d_model)) if proprio_dim > 0 else None
        self.clamp = ClampTokens(**clamp) if clamp is not None else None
        self.clamp_proj = nn.ModuleDict()
        self.clamp_pos = nn.ParameterDict()
        if self.clamp is not None:
            if clamp_views_shape is None:
                raise ConfigError(
                    "ObservationTokenizer: clamp needs clamp_views_shape (V, 4, S, S)"
                )
            counts = self.clamp.token_counts(tuple(clamp_views_shape))
            for m, width in self.clamp.dims.items():
                self.clamp_proj[m] = nn.Linear(width, d_model)
                self.clamp_pos[m] = nn.Parameter(torch.zeros(1, counts[m], d_model))
                nn.init.normal_(self.clamp_pos[m], std=0.02)
        self.augment = augment

    def forward(self, batch: dict[str, Any], proprio: Tensor | None) -> tuple[Tensor, Tensor]:
        """``proprio`` (B, P) already normalized. Returns ``(tokens (B, S, D), pos (1|B, S, D))``."""
        toks, pos = [], []
        if self.proprio_in is not None:
            if proprio is None:
                raise ConfigError("ObservationTokenizer: the policy takes proprio; none given")
            toks.append(self.proprio_in(proprio)[:, None])
            pos.append(self.proprio_pos.expand(proprio.shape[0], -1, -1))
        if self.image_encoders is not None:
            images = batch["images"]
            if images.ndim != 5 or images.shape[1] != len(self.cameras):
                raise ShapeError(
                    f"ObservationTokenizer: images must be (B, K={len(self.cameras)}, 3, H, W) "
                    f"for cameras {self.cameras}, got {tuple(images.shape)}"
                )
            if self.training and self.augment is not None:
                images = photometric_augment(images, **self.augment)
            for k, cam in enumerate(self.cameras):
                o = self.image_encoders[cam](images[:, k])
                toks.append(o["tokens"])
                pos.append((o["pos"] + self.camera_embed[k])[None].expand(len(images), -1, -1))
        if self.clamp is not None:
            feats = self.clamp(batch)
            for m, x in feats.items():
                toks.append(self.clamp_proj[m](x.float()))
                p = self.clamp_pos[m]
                if p.shape[1] != x.shape[1]:
                    raise ShapeError(
                        f"ObservationTokenizer: {x.shape[1]} CLAMP {m} tokens, the policy was "
                        f"built for {p.shape[1]} (other view resolution or history length?)"
                    )
                pos.append(p.expand(x.shape[0], -1, -1))
        if not toks:
            raise ConfigError("ObservationTokenizer: no observation tokens (no proprio/cameras)")
        return torch.cat(toks, dim=1), torch.cat(pos, dim=1)


class ChunkPolicy(ToolkitModel):
    """Base of policies that predict ``C x A`` action chunks from observation tokens.

    Subclasses build ``self.head`` and implement :meth:`loss` and :meth:`sample`.

    Args:
        cameras / image_encoder / d_model / clamp / share_image_encoder / augment:
            :class:`ObservationTokenizer` (``clamp``: CLAMP tokens; None: none).
        proprio_dim / action_dim / chunk_size: P, A, C.
        image_size: side of the images fed to the encoders at rollout time (the dataset's).
        clamp_inputs: the dataset's ``clamp`` dict (views, history...) used at rollout time to
            build the CLAMP inputs from a live observation the same way as in training.
        bounds: (2, 3) workspace of the CLAMP views at rollout time.
        n_action_steps: actions executed from each chunk before predicting again.
        temporal_ensemble: ACT's ensembling coefficient (predict every step) or None.
        proprio_norm / action_norm: ``meanstd`` / ``minmax`` (paper) / ``none``.
        init_weights: a pretrained policy checkpoint (file or work dir) to start from.
        init_include: only load keys starting with these prefixes (e.g. ``("head.decoder",)``
            for the decoder-only pretraining ablation); None: every matching key.
        data_preprocessor: mmengine's.
    """

    def __init__(
        self,
        cameras: Sequence[str] = (),
        image_encoder: dict | None = None,
        d_model: int = 256,
        proprio_dim: int = 14,
        action_dim: int = 14,
        chunk_size: int = 50,
        clamp: dict | None = None,
        share_image_encoder: bool = False,
        augment: dict | None = None,
        image_size: int | None = None,
        clamp_inputs: dict | None = None,
        bounds: Sequence[Sequence[float]] | None = None,
        n_action_steps: int | None = None,
        temporal_ensemble: float | None = None,
        proprio_norm: str = "meanstd",
        action_norm: str = "minmax",
        data_preprocessor: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        from toolkit.data.chunk_dataset import CLAMP_DEFAULTS, clamp_views_shape

        self.clamp_inputs = None
        views_shape = None
        if clamp is not None:
            self.clamp_inputs = {**CLAMP_DEFAULTS, **dict(clamp_inputs or {})}
            views_shape = clamp_views_shape(self.clamp_inputs)
        self.tokenizer = ObservationTokenizer(
            cameras,
            image_encoder,
            d_model,
            proprio_dim=proprio_dim,
            clamp=clamp,
            share_image_encoder=share_image_encoder,
            augment=augment,
            clamp_views_shape=views_shape,
        )
        self.proprio_dim, self.action_dim, self.chunk_size = proprio_dim, action_dim, chunk_size
        self.proprio_normalizer = Normalizer(proprio_dim, proprio_norm)
        self.action_normalizer = Normalizer(action_dim, action_norm)
        self.image_size = image_size
        self.bounds = None if bounds is None else np.asarray(bounds, dtype=np.float64)
        self.n_action_steps = int(n_action_steps or chunk_size)
        self.temporal_ensemble = temporal_ensemble
        self._queue = ActionQueue(self.n_action_steps)
        self._ensembler = TemporalEnsembler(temporal_ensemble or 0.01)
        self._history: list[np.ndarray] = []

    # ------------------------------------------------------------------ weights
    def init_from(self, path: str, include: Sequence[str] | None = None) -> None:
        """Start from a pretrained policy: copy every parameter / buffer whose name and shape
        match (restricted to ``include`` prefixes); log what stays at its initialization."""
        from toolkit.models.utils import read_state_dict, resolve_checkpoint_path

        path = resolve_checkpoint_path(path)
        state = read_state_dict(path)
        own = self.state_dict()
        take = {
            k: v
            for k, v in state.items()
            if k in own
            and (include is None or any(k.startswith(p) for p in include))
            and (v.shape == own[k].shape or "clamp_pos" in k)
        }
        if not take:
            raise ConfigError(
                f"{path}: no parameter of {type(self).__name__} found in it (include={include})"
            )
        skipped_shape = sorted(
            k for k, v in state.items() if k in own and k not in take and v.shape != own[k].shape
        )
        self.load_state_dict(take, strict=False)
        fresh = sorted(k for k in own if k not in take)
        print_log(
            f"initialized {len(take)}/{len(own)} tensors from {path}"
            + (f"; starting fresh: {_preview(fresh)}" if fresh else "")
            + (f"; shape mismatch (skipped): {_preview(skipped_shape)}" if skipped_shape else ""),
            logger="current",
        )
        if not bool(self.action_normalizer.fitted):
            print_log(
                f"{path} has no fitted normalization: it will be fitted on the fine-tuning data",
                logger="current",
                level=logging.WARNING,
            )

    # ------------------------------------------------------------------ normalization
    def fit_normalization(self, proprio: Tensor, actions: Tensor) -> None:
        """proprio (M, P), actions (M, A) from the training data."""
        self.proprio_normalizer.fit(proprio)
        self.action_normalizer.fit(actions)

    def tokens(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        proprio = batch.get("proprio")
        if proprio is not None:
            proprio = self.proprio_normalizer.normalize(proprio.float())
        return self.tokenizer(batch, proprio)

    # ------------------------------------------------------------------ subclass API
    def sample(self, batch: dict[str, Any]) -> Tensor:
        """Normalized chunk (B, C, A) for the observations in ``batch``."""
        raise NotImplementedError

    def predict(self, batch: dict[str, Any]) -> Tensor:
        """Unnormalized action chunks (B, C, A)."""
        return self.action_normalizer.unnormalize(self.sample(batch))

    # ------------------------------------------------------------------ rollout contract
    def reset(self) -> None:
        self._queue.reset()
        self._ensembler.reset()
        self._history = []

    def rollout_env_kwargs(self) -> dict[str, Any]:
        """Observations this policy needs from ``suite.make_env`` beyond the hook's."""
        need: dict[str, Any] = {}
        if self.tokenizer.image_encoders is not None:
            need["rgb"] = True
        if self.clamp_inputs is not None:
            need["depth" if self.clamp_inputs["source"] == "depth" else "points"] = True
        return need

    def obs_to_batch(self, obs: dict[str, Any]) -> dict[str, Tensor]:
        """One live observation -> a batch of one, preprocessed as the training data."""
        from toolkit.data.chunk_dataset import clamp_inputs, resize_images

        device = next(self.parameters()).device
        batch: dict[str, Tensor] = {
            "proprio": torch.as_tensor(np.asarray(obs["proprio"]), dtype=torch.float32)[None]
        }
        cams = self.tokenizer.cameras
        if self.tokenizer.image_encoders is not None:
            rgb = obs.get("rgb") or {}
            missing = [c for c in cams if c not in rgb]
            if missing:
                raise ConfigError(
                    f"{type(self).__name__}: the observation has no RGB for camera(s) {missing} "
                    f"(it has {sorted(rgb)}); evaluate with cameras={cams}"
                )
            images = np.stack([np.asarray(rgb[c]) for c in cams])
            batch["images"] = resize_images(images, self.image_size)[None]
        if self.clamp_inputs is not None:
            if self.bounds is None:
                raise ConfigError(f"{type(self).__name__}: CLAMP tokens at rollout need `bounds`")
            h = int(self.clamp_inputs["history"])
            prev = (
                np.stack(self._history[-h:])
                if self._history and h
                else np.zeros((0, self.action_dim), np.float32)
            )
            batch.update(
                {
                    k: v[None]
                    for k, v in clamp_inputs(obs, prev, self.bounds, self.clamp_inputs).items()
                }
            )
        return {k: v.to(device) for k, v in batch.items()}

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """obs -> action (A,): pops the current chunk, predicting a new one when it runs out
        (or every step with temporal ensembling)."""
        if self.temporal_ensemble is not None or len(self._queue) == 0:
            was_training = self.training
            self.eval()
            try:
                chunk = self.predict(self.obs_to_batch(obs))[0].float().cpu().numpy()
            finally:
                self.train(was_training)
            if self.temporal_ensemble is not None:
                action = self._ensembler.update(chunk)
                self._history.append(np.asarray(action, dtype=np.float32))
                return action
            self._queue.push(chunk)
        action = self._queue.pop()
        self._history.append(np.asarray(action, dtype=np.float32))
        return action


def _preview(keys: list[str], limit: int = 8) -> str:
    head = ", ".join(keys[:limit])
    return head + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")
