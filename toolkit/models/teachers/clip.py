"""Frozen open_clip teachers: a CLIP image encoder with a spatial feature map, and its text encoder.

Weights only ever come from a local file (nothing is downloaded); see docs/teachers.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from toolkit.models.teachers._common import (
    FrozenTeacher,
    TextEmbeddingCache,
    as_text_list,
    slug,
    warn_random_teacher,
)
from toolkit.models.teachers.clip_loading import LoadedCLIP, cfg_digest, load_clip
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ConfigError, ShapeError


def to_unit_images(images: torch.Tensor | np.ndarray, owner: str) -> torch.Tensor:
    """(B, 3, H, W) / (B, H, W, 3) uint8 or float in [0, 1] -> (B, 3, H, W) float32 in [0, 1].

    Layout: channels-first when ``shape[1] == 3``, else channels-last when ``shape[-1] == 3``
    (so a (B, 3, H, 3) batch counts as channels-first). Floats must already lie in [0, 1]:
    0-255 floats or mean/std-normalized images are refused rather than silently misread.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not torch.is_tensor(x) or x.ndim != 4:
        shape = tuple(getattr(x, "shape", ()))
        raise ShapeError(
            f"{owner}.forward(images): expected a 4-D (B, 3, H, W) or (B, H, W, 3) "
            f"array, got shape {shape}"
        )
    if x.shape[1] != 3:
        if x.shape[-1] != 3:
            raise ShapeError(
                f"{owner}.forward(images): no RGB axis of size 3 at dim 1 or -1 in "
                f"shape {tuple(x.shape)}"
            )
        x = x.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise ShapeError(f"{owner}.forward(images): expected uint8 or float images, got {x.dtype}")
    x = x.float()
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ShapeError(
                f"{owner}.forward(images): float images must lie in [0, 1], got values in "
                f"[{lo:.3g}, {hi:.3g}] (pass uint8 for 0-255 images; the teacher normalizes "
                "with the model's mean/std itself)"
            )
    return x


@BACKBONES.register_module()
class OpenCLIPImageTeacher(FrozenTeacher):
    """Frozen CLIP image encoder: global embedding + spatial feature map (CLAR's E_I).

    ``forward(images)`` takes uint8 (B, 3, H, W) or (B, H, W, 3), or float in [0, 1] (see
    :func:`to_unit_images`); resizes the whole image to ``input_size`` (bicubic, antialiased;
    no crop, so normalized image coordinates stay valid on the feature map), normalizes with
    the model's mean/std and returns::

        embedding:   (B, E) the CLIP image embedding (== open_clip ``encode_image``, not
                     L2-normalized), the one CLIP matches with text.
        feature_map: (B, C, h, w) spatial features on the ``grid_size`` grid:
                     ViT, feature="tokens": patch tokens after ln_post projected by visual.proj
                     (C = E), i.e. in the same space as ``embedding`` (the class token gets the
                     same ln_post + proj), so local and global targets share one space.
                     ViT, feature="tokens_unprojected": the same tokens before proj (C = width).
                     ModifiedResNet (RN50 ...): layer4 before attnpool (C = 2048 for RN50).

    Attributes: ``embed_dim`` (E), ``feature_dim`` (C), ``grid_size`` (h, w), ``input_size``
    (H_in, W_in), ``fingerprint`` (names feature caches; changes with the weights).

    Args:
        model_name: open_clip architecture (``ViT-B-32``, ``ViT-B-16``, ``RN50``, ...).
        pretrained: LOCAL weights file (OpenAI CLIP / open_clip state dict or checkpoint,
            ``.pt`` / ``.bin`` / ``.safetensors``). Required unless ``random_init``.
        random_init: Explicitly run with seeded random weights (tests / demos; warns loudly).
        image_size: Input size override (ViT position embeddings are interpolated on load).
        feature: Which spatial map (see above).
        model_cfg: Full open_clip config dict instead of a named one (e.g. ``TINY_VIT_CLIP_CFG``).
        seed: Seed of the random init.
        quick_gelu: QuickGELU activations (OpenAI-trained weights need True; None: True for
            OpenAI TorchScript archives, else the config's choice).
        trust_torchscript: Allow reading TorchScript archives (OpenAI's ``.pt``) with
            ``torch.jit.load``; other files are always read weights-only.
        image_mean, image_std: Override the normalization (default: open_clip's preprocess
            config, the OpenAI CLIP statistics for every built-in architecture).
    """

    FEATURES = {"vit": ("tokens", "tokens_unprojected"), "resnet": ("tokens", "layer4")}

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = None,
        random_init: bool = False,
        image_size: int | None = None,
        feature: str = "tokens",
        model_cfg: dict | None = None,
        seed: int = 0,
        quick_gelu: bool | None = None,
        trust_torchscript: bool = False,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ):
        super().__init__()
        loaded = load_clip(
            model_name,
            pretrained,
            random_init,
            model_cfg,
            seed,
            image_size,
            quick_gelu,
            trust_torchscript,
            owner=type(self).__name__,
        )
        self._setup(loaded, feature, image_mean, image_std)

    @classmethod
    def from_loaded(
        cls,
        loaded: LoadedCLIP,
        feature: str = "tokens",
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
    ) -> OpenCLIPImageTeacher:
        """A teacher around an already-built model (see :func:`build_clip_teachers`)."""
        obj = cls.__new__(cls)
        FrozenTeacher.__init__(obj)
        obj._setup(loaded, feature, image_mean, image_std)
        return obj

    def _setup(self, loaded: LoadedCLIP, feature: str, mean: Any, std: Any) -> None:
        from open_clip.modified_resnet import ModifiedResNet  # noqa: PLC0415
        from open_clip.transformer import VisionTransformer  # noqa: PLC0415

        name, info = type(self).__name__, loaded.info
        visual = loaded.visual
        if isinstance(visual, VisionTransformer):
            self.arch = "vit"
            if visual.attn_pool is not None or visual.pool_type not in ("tok", "avg"):
                raise ConfigError(
                    f"{name}: ViT towers with attentional pooling / pool_type "
                    f"{visual.pool_type!r} have no patch-token grid"
                )
        elif isinstance(visual, ModifiedResNet):
            self.arch = "resnet"
        else:
            raise ConfigError(
                f"{name}: visual tower {type(visual).__name__} of {info.model_name!r} is not "
                "supported (supported: open_clip VisionTransformer, ModifiedResNet)"
            )
        if feature not in self.FEATURES[self.arch]:
            raise ConfigError(
                f"{name}: feature={feature!r} is not valid for a {self.arch} tower; "
                f"expected one of {self.FEATURES[self.arch]}"
            )
        self.model_name, self.feature, self.random_init = info.model_name, feature, info.random_init
        self.weights_info = info
        self.visual = visual
        self.embed_dim = int(info.cfg["embed_dim"])
        size = visual.image_size
        self.input_size = (int(size), int(size)) if isinstance(size, int) else tuple(map(int, size))
        if self.arch == "vit":
            visual.output_tokens = True  # forward returns (pooled, patch tokens)
            self.grid_size = tuple(int(g) for g in visual.grid_size)
            self.feature_dim = self.embed_dim if feature == "tokens" else int(visual.proj.shape[0])
        else:
            self.grid_size = (self.input_size[0] // 32, self.input_size[1] // 32)
            self.feature_dim = int(visual.layer4[-1].conv3.out_channels)
        pp = loaded.preprocess_cfg
        mean = tuple(float(v) for v in (mean if mean is not None else pp["mean"]))
        std = tuple(float(v) for v in (std if std is not None else pp["std"]))
        self.image_mean, self.image_std = mean, std
        self.register_buffer("_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._fingerprint: str | None = None
        self.freeze()
        if info.random_init:
            warn_random_teacher(f"{name} {info.model_name}, seed {info.seed}")

    @property
    def fingerprint(self) -> str:
        """``<model>-<feature>-<H>x<W>-<config sha>-<weights id>``: names feature caches."""
        if self._fingerprint is None:
            meta = self.weights_info
            cfg = {
                "cfg": meta.cfg,
                "mean": self.image_mean,
                "std": self.image_std,
                "feature": self.feature,
                "resize": "squash-bicubic-aa",
            }
            self._fingerprint = (
                f"{slug(self.model_name)}-{self.feature}-{self.input_size[0]}x{self.input_size[1]}"
                f"-{cfg_digest(cfg)[:8]}-{meta.weights_id(self.visual)}"
            )
        return self._fingerprint

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Images (see class doc) -> (B, 3, H_in, W_in) normalized model input."""
        x = images if not isinstance(images, np.ndarray) else torch.from_numpy(images)
        x = to_unit_images(x.to(self._mean.device), type(self).__name__)
        if tuple(x.shape[-2:]) != self.input_size:
            # the whole frame, squashed: feature-map cell (i, j) covers the same normalized image
            # region as the projected 3D points that look it up (no center crop)
            x = F.interpolate(
                x, size=self.input_size, mode="bicubic", align_corners=False, antialias=True
            ).clamp_(0.0, 1.0)
        x = (x - self._mean) / self._std
        return x.to(self.visual.conv1.weight.dtype)

    @torch.no_grad()
    def forward(self, images: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        x = self.preprocess(images)
        v = self.visual
        if self.arch == "vit":
            pooled, tokens = v(x)  # tokens: (B, h*w, width), after ln_post
            if v.final_ln_after_pool:
                tokens = v.ln_post(tokens)  # open_clip normalizes only the pooled token then
            if self.feature == "tokens" and v.proj is not None:
                tokens = tokens @ v.proj
            b, (h, w) = tokens.shape[0], self.grid_size
            fmap = tokens.reshape(b, h, w, tokens.shape[-1]).permute(0, 3, 1, 2).contiguous()
            return {"embedding": pooled, "feature_map": fmap}
        y = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))
        return {"embedding": v.attnpool(y), "feature_map": y}

    def extra_repr(self) -> str:
        return (
            f"model={self.model_name!r}, feature={self.feature!r}, input={self.input_size}, "
            f"embed_dim={self.embed_dim}, feature_map=({self.feature_dim}, "
            f"{self.grid_size[0]}, {self.grid_size[1]}), random_init={self.random_init}"
        )


@BACKBONES.register_module()
class OpenCLIPTextTeacher(FrozenTeacher):
    """Frozen CLIP text encoder (CLAR's E_T): ``forward(texts: list[str]) -> (B, E)``.

    Embeddings equal open_clip ``encode_text`` on ``open_clip.get_tokenizer(model)`` tokens (not
    L2-normalized). Results are cached per sentence (LRU, ``cache_size`` entries, on the CPU),
    so the few instructions of a dataset are encoded once. Only the text tower is kept.

    Args: ``model_name``, ``pretrained``, ``random_init``, ``model_cfg``, ``seed``,
    ``quick_gelu``, ``trust_torchscript`` as for :class:`OpenCLIPImageTeacher`; ``cache_size``
    (sentences kept, 0 = no cache) and ``batch_size`` (sentences per encoder call).
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = None,
        random_init: bool = False,
        model_cfg: dict | None = None,
        seed: int = 0,
        quick_gelu: bool | None = None,
        trust_torchscript: bool = False,
        cache_size: int = 10_000,
        batch_size: int = 256,
    ):
        super().__init__()
        loaded = load_clip(
            model_name,
            pretrained,
            random_init,
            model_cfg,
            seed,
            None,
            quick_gelu,
            trust_torchscript,
            owner=type(self).__name__,
        )
        self._setup(loaded, cache_size, batch_size)

    @classmethod
    def from_loaded(
        cls, loaded: LoadedCLIP, cache_size: int = 10_000, batch_size: int = 256
    ) -> OpenCLIPTextTeacher:
        obj = cls.__new__(cls)
        FrozenTeacher.__init__(obj)
        obj._setup(loaded, cache_size, batch_size)
        return obj

    def _setup(self, loaded: LoadedCLIP, cache_size: int, batch_size: int) -> None:
        import open_clip  # noqa: PLC0415

        name, info = type(self).__name__, loaded.info
        self.model_name, self.random_init, self.weights_info = (
            info.model_name,
            info.random_init,
            info,
        )
        self.clip = loaded.text
        self.embed_dim = int(info.cfg["embed_dim"])
        self.batch_size = int(batch_size)
        try:
            self.tokenizer = open_clip.get_tokenizer(info.open_clip_name)
        except Exception as exc:  # noqa: BLE001 - HF tokenizers may try the network
            raise ConfigError(
                f"{name}: the tokenizer of {info.model_name!r} could not be "
                f"loaded offline: {type(exc).__name__}: {exc}"
            ) from exc
        self.cache = TextEmbeddingCache(cache_size)
        # new weights (e.g. a parent's load_state_dict) make cached embeddings stale
        self.register_load_state_dict_post_hook(lambda module, _keys: module.cache.clear())
        self._fingerprint: str | None = None
        self.freeze()
        if info.random_init:
            warn_random_teacher(f"{name} {info.model_name}, seed {info.seed}")

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            meta = self.weights_info
            self._fingerprint = (
                f"{slug(self.model_name)}-text-{cfg_digest(meta.cfg)[:8]}-"
                f"{meta.weights_id(self.clip)}"
            )
        return self._fingerprint

    def _encode(self, texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[i : i + self.batch_size]).to(self.device)
            out.append(self.clip.encode_text(tokens).float())
        return torch.cat(out)

    @torch.no_grad()
    def forward(self, texts: Sequence[str] | str) -> torch.Tensor:
        """(B,) sentences (one str = a batch of one) -> (B, E) float32 embeddings."""
        texts = as_text_list(texts, type(self).__name__)
        return self.cache.lookup(texts, self._encode, self.device)


def build_clip_teachers(
    model_name: str = "ViT-B-32",
    pretrained: str | None = None,
    random_init: bool = False,
    model_cfg: dict | None = None,
    seed: int = 0,
    image_size: int | None = None,
    feature: str = "tokens",
    quick_gelu: bool | None = None,
    trust_torchscript: bool = False,
) -> tuple[OpenCLIPImageTeacher, OpenCLIPTextTeacher]:
    """Image and text teachers from ONE read of the weights file and one built model.

    Equivalent to constructing both teachers with the same arguments (same outputs, same
    fingerprints), but the file is read and the model built once. Each tower lives in one
    teacher, so nothing is held twice either way.
    """
    loaded = load_clip(
        model_name,
        pretrained,
        random_init,
        model_cfg,
        seed,
        image_size,
        quick_gelu,
        trust_torchscript,
        owner="build_clip_teachers",
    )
    return (
        OpenCLIPImageTeacher.from_loaded(loaded, feature),
        OpenCLIPTextTeacher.from_loaded(loaded),
    )
