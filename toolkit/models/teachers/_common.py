"""Shared pieces of the frozen teachers: freezing, loud random-init warnings, fingerprints and the
text-embedding cache."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from toolkit.utils.errors import ShapeError

logger = logging.getLogger("toolkit.models.teachers")

RANDOM_TEACHER_BANNER = (
    "RANDOMLY INITIALIZED TEACHER: alignment targets are meaningless for real results"
)


class RandomTeacherWarning(RuntimeWarning):
    """A teacher runs with random weights (tests / CPU demos only)."""


def warn_random_teacher(what: str) -> None:
    """Log ``RANDOMLY INITIALIZED TEACHER ...`` through mmengine's logger and ``warnings``.

    The banner is repeated on purpose: it must survive a skim of a long training log.
    """
    msg = (
        f"{RANDOM_TEACHER_BANNER} ({what}). Pass pretrained=/path/to/weights for real runs. "
        f"{RANDOM_TEACHER_BANNER}."
    )
    try:
        from mmengine.logging import MMLogger  # noqa: PLC0415

        MMLogger.get_current_instance().warning("!" * 8 + " " + msg + " " + "!" * 8)
    except Exception:  # noqa: BLE001 - logging must never break model construction
        logger.warning(msg)
    warnings.warn(msg, RandomTeacherWarning, stacklevel=4)


class FrozenTeacher(nn.Module):
    """Base of every teacher: no parameter trains, and the module never leaves eval mode.

    ``train()`` is overridden so that ``pretrainer.train()`` (called by the Runner every epoch)
    cannot switch on dropout / BatchNorm statistics updates in the teacher.
    """

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenTeacher:  # noqa: ARG002 - always eval
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (for fingerprints / cache folders)."""
    return _SAFE_NAME.sub("-", text).strip("-") or "model"


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (streamed; memoized per (path, size, mtime) in this process)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        digest = _FILE_DIGESTS[key] = h.hexdigest()
    return digest


def module_sha256(module: nn.Module) -> str:
    """Hex sha256 over a module's state_dict (names, dtypes, shapes and bytes, in key order)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def as_text_list(texts: Sequence[str] | str, owner: str) -> list[str]:
    """``texts`` as a list of str (one str counts as a batch of one)."""
    if isinstance(texts, str):
        return [texts]
    out = list(texts)
    bad = [type(t).__name__ for t in out if not isinstance(t, str)]
    if bad:
        raise ShapeError(f"{owner}.forward(texts): expected a list of str, got items of {bad[:3]}")
    return out


class TextEmbeddingCache:
    """LRU cache ``text -> (E,) CPU tensor``: repeated instructions cost one dict lookup.

    ``max_size=0`` disables caching. Entries live on the CPU so moving the teacher between
    devices never invalidates them; the owner clears the cache when its weights change.
    """

    def __init__(self, max_size: int = 10_000):
        self.max_size = int(max_size)
        self._items: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

    def lookup(self, texts: list[str], encode, device: torch.device) -> torch.Tensor:
        """(B, E) embeddings of ``texts``; ``encode(list[str]) -> (M, E)`` runs on misses only."""
        if not texts:
            raise ShapeError("texts: expected at least one sentence, got an empty list")
        missing = [t for t in dict.fromkeys(texts) if t not in self._items]
        fresh: dict[str, torch.Tensor] = {}
        if missing:
            emb = encode(missing).detach().cpu()
            fresh = dict(zip(missing, emb, strict=True))
        rows = []
        for t in texts:
            row = fresh.get(t)
            if row is None:
                row = self._items[t]
                self._items.move_to_end(t)
            rows.append(row)
        if self.max_size > 0:
            for t, row in fresh.items():
                self._items[t] = row.clone()  # own storage: never a view of a big batch tensor
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
        return torch.stack(rows).to(device)
