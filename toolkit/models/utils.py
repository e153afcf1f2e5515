"""Loading pretrained weights into components (backbones, heads) from local files.

Weight files are untrusted: they are read with ``torch.load(weights_only=True)``, and only a
file that needs more (an mmengine training checkpoint: message hub, history buffers) is retried
with the restricted unpickler of :func:`toolkit.engine.checkpoint.load_checkpoint_file`, whose
allow-list refuses anything else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from toolkit.utils.errors import CheckpointError

#: Keys under which common training frameworks nest the model's state_dict
#: (mmengine: ``state_dict``; DeiT/MAE/timm scripts: ``model``; Point-MAE: ``base_model``).
_NESTED_KEYS = ("state_dict", "model", "base_model", "module")

__all__ = ["PretrainedMixin", "load_pretrained", "read_state_dict", "resolve_checkpoint_path"]


def _preview(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def resolve_checkpoint_path(path: str | os.PathLike) -> str:
    """A checkpoint file, or the one a work_dir's ``last_checkpoint`` names.

    Raises:
        CheckpointError: a directory without ``last_checkpoint``, or one naming a missing file.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        return path
    marker = os.path.join(path, "last_checkpoint")
    if not os.path.isfile(marker):
        raise CheckpointError(
            f"{path} is a directory without a 'last_checkpoint' file: pass a checkpoint file, or "
            f"the work_dir of a finished (or checkpointed) training run"
        )
    with open(marker) as f:
        name = f.read().strip()
    # mmengine writes the path as it saved it; the work_dir may have moved since
    for target in (os.path.join(path, os.path.basename(name)), name):
        if os.path.isfile(target):
            return target
    raise CheckpointError(f"{marker} names {name}, which does not exist")


def read_state_dict(path: str | os.PathLike, prefix: str = "") -> dict[str, torch.Tensor]:
    """Read a state_dict from a local file (weights only), optionally keeping one prefix.

    Args:
        path: A file saved with ``torch.save``: a state_dict, or a dict that nests one under
            ``state_dict`` / ``model`` / ``base_model`` / ``module`` (first match wins). A
            directory stands for the checkpoint its mmengine ``last_checkpoint`` file names (a
            pretraining run's work_dir).
        prefix: Keep only keys starting with ``prefix`` and strip it (e.g. ``"backbone."`` to
            pull an encoder out of a whole pretrainer checkpoint). ``""`` keeps every key. A
            leading ``"module."`` (DDP) is removed before matching.

    Raises:
        CheckpointError: the file is missing, not loadable with ``weights_only=True``, holds no
            tensors, or holds no key with ``prefix``.
    """
    # Lazy: toolkit.engine imports the Runner glue, which must not load with the models.
    from toolkit.engine.checkpoint import load_checkpoint_file

    path = resolve_checkpoint_path(path)
    # weights_only=True first; our own mmengine checkpoints (message hub, history buffers) fall
    # back to the restricted unpickler's allow-list, which refuses anything else
    obj: Any = load_checkpoint_file(str(path), map_location="cpu")
    while isinstance(obj, Mapping):
        nested = next((k for k in _NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = obj[nested]
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state_dict (no tensors found)")
    state = {
        (k[len("module.") :] if k.startswith("module.") else k): v
        for k, v in obj.items()
        if isinstance(v, torch.Tensor)
    }
    if prefix:
        kept = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if not kept:
            raise CheckpointError(
                f"no key in {path} starts with prefix '{prefix}'; keys look like: "
                f"{_preview(sorted(state))}"
            )
        state = kept
    return state


def load_pretrained(
    model: nn.Module,
    path: str | os.PathLike,
    prefix: str = "",
    strict: bool = True,
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> nn.modules.module._IncompatibleKeys:
    """Load a local state_dict file into ``model``.

    Args:
        model: The module to fill in place.
        path: Local weights file (see :func:`read_state_dict`).
        prefix: Key prefix to select and strip (``""``: all keys).
        strict: Require the key sets to match exactly (after ``prefix`` and ``convert``).
        convert: Optional key/tensor mapping applied after prefix stripping (e.g. converting
            an upstream checkpoint's names to ours). Default: the model's own
            ``convert_state_dict`` when it has one (:class:`PretrainedMixin`).

    Returns:
        torch's ``_IncompatibleKeys(missing_keys, unexpected_keys)`` (both empty when strict).

    Raises:
        CheckpointError: unreadable file, or (``strict``) missing / unexpected keys, or a shape
            mismatch; the message names the file and the offending keys.
    """
    state = read_state_dict(path, prefix=prefix)
    if convert is None:
        convert = getattr(model, "convert_state_dict", None)
    if convert is not None:
        state = convert(state)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
        hint = f" (prefix='{prefix}')" if prefix else ""
        raise CheckpointError(
            f"state_dict in {path}{hint} does not match {type(model).__name__}: " + "; ".join(parts)
        )
    shape_errors = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if shape_errors:
        raise CheckpointError(
            f"state_dict in {path} has shape mismatches for {type(model).__name__}: "
            + _preview(shape_errors)
        )
    return model.load_state_dict(state, strict=strict)


class PretrainedMixin:
    """Adds ``load_pretrained(path, prefix=..., strict=...)`` to an ``nn.Module``.

    Subclasses may override :meth:`convert_state_dict` to accept upstream checkpoint layouts.
    """

    def convert_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a loaded state_dict onto this module's names (identity by default)."""
        return state

    def load_pretrained(
        self, path: str | os.PathLike, prefix: str = "", strict: bool = True
    ) -> nn.modules.module._IncompatibleKeys:
        """Load weights from a local file; see :func:`toolkit.models.utils.load_pretrained`."""
        assert isinstance(self, nn.Module)
        return load_pretrained(
            self, path, prefix=prefix, strict=strict, convert=self.convert_state_dict
        )
