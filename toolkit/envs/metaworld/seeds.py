"""The one place where MetaWorld seed ranges are defined.

A seed fixes one episode's layout (object / goal positions) through
``env.seed(seed); env.reset()``. The ranges are disjoint, so no evaluation episode ever
reuses a demonstration layout, and pretraining data never overlaps either:

============  =====================  ====================================================
use           range                  how seeds are taken
============  =====================  ====================================================
train demos   [0, 5000)              in order from 0; a seed whose expert fails is skipped
val demos     [5000, 10000)          in order from 5000; same rule
pretraining   [10000, 100000)        reserved for large-scale pretraining data
evaluation    [100000, ...)          rollout ``i`` of an evaluation uses 100000 + i
============  =====================  ====================================================

The same seed gives a different layout in different tasks (each task draws from its own
randomization space), so seed ranges are per task.
"""

from __future__ import annotations

from toolkit.envs.base import seed_split

TRAIN_SEEDS = range(0, 5_000)
VAL_SEEDS = range(5_000, 10_000)
PRETRAIN_SEEDS = range(10_000, 100_000)
#: First evaluation seed: rollout ``i`` uses ``EVAL_SEED_OFFSET + i``.
EVAL_SEED_OFFSET = 100_000

SPLITS: dict[str, range] = {"train": TRAIN_SEEDS, "val": VAL_SEEDS, "pretrain": PRETRAIN_SEEDS}


def split_of(seed: int) -> str:
    """Which range ``seed`` belongs to: ``train``, ``val``, ``pretrain`` or ``eval``."""
    return seed_split(seed, SPLITS, EVAL_SEED_OFFSET)


def eval_seeds(num_episodes: int, offset: int = EVAL_SEED_OFFSET) -> list[int]:
    """The seeds of an evaluation of ``num_episodes`` rollouts."""
    return [offset + i for i in range(num_episodes)]
