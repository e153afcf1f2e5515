"""Building open_clip CLIP models for the teachers: named or custom configs, weights from a local
file only (nothing is downloaded), or an explicit seeded random init. See docs/teachers.md."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from toolkit.models.teachers._common import (
    file_sha256,
    module_sha256,
)
from toolkit.utils.errors import CheckpointError, ConfigError

logger = logging.getLogger("toolkit.models.teachers")

#: A tiny ViT CLIP (about 3.5 M parameters, 3.2 M of them the token embedding) for tests and the
#: CPU demo: 64x64 input, 16-pixel patches (4x4 grid), 2 layers of width 64.
TINY_VIT_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
#: A tiny ModifiedResNet CLIP: 64x64 input, one bottleneck per stage, layer4 = (512, 2, 2).
TINY_RN_CLIP_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def cfg_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _register_model_cfg(model_name: str, model_cfg: dict | None) -> str:
    """The open_clip name to build: ``model_name`` itself, or a registered custom config.

    A custom ``model_cfg`` is registered through open_clip's public ``add_model_config`` (from a
    temporary JSON file) under ``toolkit-<sha>``, so ``create_model`` and ``get_tokenizer`` (which
    reads the text context length) both see it.
    """
    import open_clip  # noqa: PLC0415 - 5 s import, only when a teacher is built

    if model_cfg is None:
        if open_clip.get_model_config(model_name) is None:
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(model_name, open_clip.list_models(), n=5)
            raise ConfigError(
                f"model_name: open_clip has no model config named {model_name!r}"
                + (f"; did you mean {', '.join(close)}?" if close else "")
                + " (or pass model_cfg=dict(embed_dim=..., vision_cfg=..., text_cfg=...))"
            )
        return model_name
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ConfigError(
            f"model_cfg: missing keys {missing} (expected embed_dim, vision_cfg, "
            f"text_cfg as in open_clip's model_configs/*.json)"
        )
    cfg = json.loads(json.dumps(dict(model_cfg)))  # plain JSON types (ConfigDict -> dict)
    name = f"toolkit-{cfg_digest(cfg)[:16]}"
    if open_clip.get_model_config(name) != cfg:
        folder = tempfile.mkdtemp(prefix="toolkit-openclip-cfg-")
        path = os.path.join(folder, f"{name}.json")
        try:
            with open(path, "w") as f:
                json.dump(cfg, f)
            open_clip.add_model_config(path)  # read now; the registry keeps the dict
        finally:
            os.remove(path)
            os.rmdir(folder)
        if open_clip.get_model_config(name) != cfg:
            raise ConfigError(f"model_cfg: open_clip did not accept the config {cfg}")
    return name


def _is_torchscript_archive(path: str) -> bool:
    """Same test as torch: a zip whose top folder holds ``constants.pkl`` (OpenAI's .pt files)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1] == "constants.pkl" for n in z.namelist())


class _DropMisleadingRandomInitLog(logging.Filter):
    """open_clip logs "initialized randomly" before we load the local file: drop that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@dataclass
class CLIPWeightsInfo:
    """What identifies a built CLIP's weights (kept by the teachers; holds no modules)."""

    model_name: str  # as configured (display / fingerprint)
    open_clip_name: str  # what open_clip built (``model_name`` or ``toolkit-<sha>``)
    cfg: dict  # resolved open_clip model config (after overrides)
    pretrained: str | None
    random_init: bool
    seed: int
    _weights_sha: str | None = field(default=None, repr=False)

    def weights_id(self, tower: nn.Module) -> str:
        """sha256 of the weights file, or ``random<seed>-<sha of the tower's parameters>``."""
        if self.pretrained is not None:
            if self._weights_sha is None:
                self._weights_sha = file_sha256(self.pretrained)
            return "w" + self._weights_sha[:16]
        return f"random{self.seed}-{module_sha256(tower)[:12]}"


@dataclass
class LoadedCLIP:
    """One built open_clip model, split into its towers."""

    info: CLIPWeightsInfo
    visual: nn.Module
    text: nn.Module  # the CLIP model with ``visual`` removed (encode_text still works)
    preprocess_cfg: dict


def _check_weight_args(owner: str, model_name: str, pretrained: Any, random_init: bool) -> None:
    if pretrained is None and not random_init:
        raise ConfigError(
            f"{owner}(model_name={model_name!r}): `pretrained` is not set, and weights cannot be "
            "downloaded here (no network). Set pretrained='/path/to/weights' (an OpenAI CLIP .pt, "
            "an open_clip .bin / .pt / .safetensors state dict or checkpoint) in the config, or "
            "explicitly random_init=True (tests and CPU demos only: the alignment targets of a "
            "random teacher are meaningless). See docs/teachers.md."
        )
    if pretrained is not None and random_init:
        raise ConfigError(
            f"{owner}: pass either pretrained={pretrained!r} or random_init=True, not both"
        )
    if pretrained is not None and not os.path.isfile(os.fspath(pretrained)):
        hint = ""
        if os.sep not in str(pretrained) and "." not in str(pretrained):
            hint = (
                " (it looks like an open_clip pretrained *tag*; tags need a download, which "
                "is impossible here: point to a local weights file)"
            )
        raise CheckpointError(f"{owner}: pretrained weights file not found: {pretrained}{hint}")


def _load_weights(model: nn.Module, path: str, owner: str, model_name: str, trust_ts: bool) -> None:
    import open_clip  # noqa: PLC0415
    from open_clip.model import resize_pos_embed, resize_text_pos_embed  # noqa: PLC0415

    try:
        if _is_torchscript_archive(path):
            if not trust_ts:
                raise CheckpointError(
                    f"{owner}: {path} is a TorchScript archive (OpenAI's CLIP .pt format), which "
                    "cannot be read weights-only. Pass trust_torchscript=True to read it with "
                    "torch.jit.load (TorchScript, not arbitrary pickle), or convert it once to a "
                    "state dict (docs/teachers.md)."
                )
            state = torch.jit.load(path, map_location="cpu").state_dict()
            # OpenAI's archives carry these ints; scripted open_clip models their non-persistent
            # buffers (attn_mask): neither belongs in a state dict
            own = model.state_dict()
            extra = {"input_resolution", "context_length", "vocab_size"}
            extra |= {k for k, _ in model.named_buffers() if k not in own}
            state = {k: v for k, v in state.items() if k not in extra}
            state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
            resize_pos_embed(state, model)
            resize_text_pos_embed(state, model)
            model.load_state_dict(state, strict=True)
        else:
            # weights_only=True: third-party files are untrusted (no pickle code runs)
            open_clip.load_checkpoint(model, path, strict=True, weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and the likely cause
        text = str(exc)
        text = text if len(text) < 1500 else text[:1500] + " ..."
        raise CheckpointError(
            f"{owner}: could not load CLIP weights from {path} into open_clip model "
            f"{model_name!r}: {type(exc).__name__}: {text}. Check that model_name (or model_cfg) "
            "matches the weights (ViT-B-32 vs ViT-B-16 vs RN50 ...)."
        ) from exc


def load_clip(
    model_name: str = "ViT-B-32",
    pretrained: str | os.PathLike | None = None,
    random_init: bool = False,
    model_cfg: dict | None = None,
    seed: int = 0,
    image_size: int | None = None,
    quick_gelu: bool | None = None,
    trust_torchscript: bool = False,
    owner: str = "load_clip",
) -> LoadedCLIP:
    """Build one open_clip CLIP from a local weights file (or seeded random init) and split it.

    Args:
        model_name: open_clip architecture name (``open_clip.list_models()``), also the display
            name when ``model_cfg`` is given.
        pretrained: Local weights file; ``None`` only together with ``random_init=True``.
        random_init: Explicitly accept random weights (loud warning).
        model_cfg: A full open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``)
            instead of a named one, e.g. :data:`TINY_VIT_CLIP_CFG`.
        seed: Seed of the random init (the global RNG is left untouched).
        image_size: Override the input size (ViT position embeddings are interpolated when
            loading weights trained at another size).
        quick_gelu: Use QuickGELU (OpenAI-trained weights need it). ``None``: True for
            TorchScript (OpenAI) archives, else the config's value.
        trust_torchscript: Allow ``torch.jit.load`` for TorchScript archives.
    """
    import open_clip  # noqa: PLC0415

    pretrained = os.fspath(pretrained) if pretrained is not None else None
    _check_weight_args(owner, model_name, pretrained, random_init)
    name = _register_model_cfg(model_name, model_cfg)
    if quick_gelu is None:
        quick_gelu = pretrained is not None and _is_torchscript_archive(pretrained)
    root = logging.getLogger()
    quiet = _DropMisleadingRandomInitLog()
    root.addFilter(quiet)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # a random teacher is a pure function of (config, seed)
            model = open_clip.create_model(
                name,
                pretrained=None,
                force_quick_gelu=bool(quick_gelu),
                force_image_size=image_size,
            )
    finally:
        root.removeFilter(quiet)
    if pretrained is not None:
        _load_weights(model, pretrained, owner, model_name, trust_torchscript)
    cfg = copy.deepcopy(open_clip.get_model_config(name))
    cfg["quick_gelu"] = bool(cfg.get("quick_gelu", False) or quick_gelu)
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = image_size
    visual = model.visual
    del model.visual  # the text holder keeps encode_text only; each tower lives in one teacher
    info = CLIPWeightsInfo(
        model_name=model_name,
        open_clip_name=name,
        cfg=cfg,
        pretrained=pretrained,
        random_init=random_init,
        seed=seed,
    )
    return LoadedCLIP(info, visual, model, dict(visual.preprocess_cfg))
