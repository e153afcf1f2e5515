"""Executing action chunks in closed loop: a queue (open-loop chunk execution) and ACT's
temporal ensembling, shared by the chunking policies."""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["ActionQueue", "TemporalEnsembler"]


class ActionQueue:
    """Run the first ``n_steps`` actions of each predicted chunk, then predict again."""

    def __init__(self, n_steps: int) -> None:
        if n_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_steps}")
        self.n_steps = n_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, chunk: np.ndarray) -> None:
        """``chunk`` (C, A); keeps its first ``min(n_steps, C)`` actions."""
        self._queue.extend(np.asarray(chunk)[: self.n_steps])

    def pop(self) -> np.ndarray:
        return self._queue.popleft()


class TemporalEnsembler:
    """ACT's temporal ensembling: a new chunk every step; the action executed at step ``t`` is
    the average of every chunk's prediction for ``t``, weighted ``exp(-k i)`` with ``i = 0``
    the OLDEST prediction (ACT's convention: older predictions weigh more, k = 0.01).
    """

    def __init__(self, coeff: float = 0.01) -> None:
        self.coeff = coeff
        self.reset()

    def reset(self) -> None:
        self._t = 0
        self._chunks: list[tuple[int, np.ndarray]] = []  # (start step, chunk)

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Add the chunk predicted at the current step; return the action to execute now."""
        chunk = np.asarray(chunk, dtype=np.float64)
        self._chunks.append((self._t, chunk))
        # drop chunks that no longer cover the current step
        self._chunks = [(s, c) for s, c in self._chunks if self._t - s < len(c)]
        preds = np.stack([c[self._t - s] for s, c in self._chunks])  # oldest first
        w = np.exp(-self.coeff * np.arange(len(preds)))
        self._t += 1
        return (w[:, None] * preds).sum(0) / w.sum()

    @staticmethod
    def weights(n: int, coeff: float = 0.01) -> np.ndarray:
        """Normalized weights of ``n`` overlapping predictions, oldest first."""
        w = np.exp(-coeff * np.arange(n))
        return w / w.sum() if n else w
