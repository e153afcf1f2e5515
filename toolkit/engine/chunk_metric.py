"""Offline action-chunk error on a held-out split (``ChunkErrorMetric``).

Closed-loop success on a CPU-sized run is often 0 for every variant early in training, which
says nothing about which one is learning faster. The error of the predicted chunk against the
demonstrator's, on held-out demonstrations, does; it is logged next to the rollouts' success rate
(the same ``val_interval``) and ``toolkit bench aloha`` draws it as a second curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from toolkit.registry import METRICS
from toolkit.utils.errors import ShapeError

__all__ = ["ChunkErrorMetric", "chunk_errors"]


def chunk_errors(
    pred: Tensor, target: Tensor, proprio: Tensor | None = None, is_pad: Tensor | None = None
) -> dict[str, Tensor]:
    """Per-sample absolute errors of action chunks (units of the actions, e.g. radians).

    Args:
        pred: ``(B, C, A)`` predicted chunks (unnormalized).
        target: ``(B, C, A)`` demonstrated chunks.
        proprio: ``(B, P)`` current state with ``P >= A`` (its first ``A`` entries are the
            joint positions the actions command): adds the "hold the current state" baseline.
        is_pad: ``(B, C)`` True where the target is padding past the episode end (ignored).

    Returns:
        ``sum`` ``(B,)`` summed |error| over valid steps and joints, ``count`` ``(B,)`` valid
        entries, ``first`` ``(B,)`` mean |error| of the first action, and with ``proprio``
        ``hold_sum`` / ``hold_first`` for the baseline.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ShapeError(
            f"chunk_errors: pred and target must both be (B, C, A), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    b, c, a = target.shape
    keep = torch.ones(b, c, dtype=target.dtype, device=target.device)
    if is_pad is not None:
        keep = (~is_pad.bool()).to(target.dtype)
    keep = keep[..., None]
    out = {
        "sum": ((pred - target).abs() * keep).sum((1, 2)),
        "count": keep.sum((1, 2)) * a,
        "first": (pred[:, 0] - target[:, 0]).abs().mean(-1),
    }
    if proprio is not None:
        if proprio.shape[-1] < a:
            raise ShapeError(
                f"chunk_errors: proprio has {proprio.shape[-1]} entries, the actions {a}: the "
                "hold baseline needs the commanded joints in proprio[:, :A]"
            )
        hold = proprio[:, None, :a].to(target.dtype).expand_as(target)
        out["hold_sum"] = ((hold - target).abs() * keep).sum((1, 2))
        out["hold_first"] = (hold[:, 0] - target[:, 0]).abs().mean(-1)
    return out


@METRICS.register_module()
class ChunkErrorMetric(BaseMetric):
    """Mean absolute error of predicted chunks on a validation split.

    Reads the model's ``predict`` output (unnormalized chunks, ``(C, A)`` per sample) and the
    batch's ``action``, ``action_is_pad`` and ``proprio``. Logs ``chunk/mae`` (all valid steps
    and joints), ``chunk/first_mae`` (the action executed next) and the same for the baseline
    that holds the current joint positions (``chunk/hold_mae``, ``chunk/hold_first_mae``): a
    policy worse than holding still has not learned to read its own state yet.
    """

    default_prefix = "chunk"

    def process(self, data_batch: Any, data_samples: Sequence[Tensor]) -> None:
        pred = torch.stack([torch.as_tensor(s) for s in data_samples]).float().cpu()
        target = data_batch["action"].float().cpu()
        proprio = data_batch.get("proprio")
        is_pad = data_batch.get("action_is_pad")
        err = chunk_errors(
            pred,
            target,
            None if proprio is None else proprio.float().cpu(),
            None if is_pad is None else is_pad.cpu(),
        )
        for i in range(pred.shape[0]):
            self.results.append({k: float(v[i]) for k, v in err.items()})

    def compute_metrics(self, results: list) -> dict[str, float]:
        count = sum(r["count"] for r in results)
        out = {
            "mae": sum(r["sum"] for r in results) / max(count, 1.0),
            "first_mae": sum(r["first"] for r in results) / max(len(results), 1),
        }
        if results and "hold_sum" in results[0]:
            out["hold_mae"] = sum(r["hold_sum"] for r in results) / max(count, 1.0)
            out["hold_first_mae"] = sum(r["hold_first"] for r in results) / max(len(results), 1)
        return out
