"""The one place where ALOHA seed ranges are defined.

A seed fixes one episode's layout (slot permutation, object yaws, cabinet pose...) through
``env.reset(seed=seed)``; the task name is mixed into the random generator, so the same seed
gives unrelated layouts in different tasks. The ranges are disjoint, so no evaluation episode
reuses a demonstration layout and pretraining data never overlaps either:

============  ==========================  ===============================================
use           range                       how seeds are taken
============  ==========================  ===============================================
train demos   [0, 10000)                  in order from 0; a failed expert seed is skipped
val demos     [10000, 20000)              in order from 10000; same rule
pretraining   [20000, 1000000)            large-scale pretraining data
evaluation    [1000000, ...)              rollout ``i`` of an evaluation uses 1000000 + i
============  ==========================  ===============================================
"""

from __future__ import annotations

from toolkit.envs.base import seed_split

TRAIN_SEEDS = range(0, 10_000)
VAL_SEEDS = range(10_000, 20_000)
PRETRAIN_SEEDS = range(20_000, 1_000_000)
#: First evaluation seed: rollout ``i`` uses ``EVAL_SEED_OFFSET + i``.
EVAL_SEED_OFFSET = 1_000_000

SPLITS: dict[str, range] = {"train": TRAIN_SEEDS, "val": VAL_SEEDS, "pretrain": PRETRAIN_SEEDS}


def split_of(seed: int) -> str:
    """Which range ``seed`` belongs to: ``train``, ``val``, ``pretrain`` or ``eval``."""
    return seed_split(seed, SPLITS, EVAL_SEED_OFFSET)
