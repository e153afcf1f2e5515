"""ChunkErrorMetric: chunk errors against a per-element loop, padding, the hold baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.engine.chunk_metric import ChunkErrorMetric, chunk_errors
from toolkit.utils.errors import ShapeError


def _loop_reference(pred, target, proprio, is_pad):
    b, c, a = target.shape
    tot = hold_tot = cnt = 0.0
    first = hold_first = 0.0
    for i in range(b):
        for j in range(c):
            if is_pad[i, j]:
                continue
            for k in range(a):
                tot += abs(pred[i, j, k] - target[i, j, k])
                hold_tot += abs(proprio[i, k] - target[i, j, k])
                cnt += 1
        first += np.mean(np.abs(pred[i, 0] - target[i, 0]))
        hold_first += np.mean(np.abs(proprio[i, :a] - target[i, 0]))
    return tot / cnt, first / b, hold_tot / cnt, hold_first / b


def test_metric_matches_loop_reference_with_padding_and_hold_baseline():
    g = torch.Generator().manual_seed(0)
    b, c, a = 5, 7, 3
    target = torch.randn(b, c, a, generator=g)
    pred = target + 0.1 * torch.randn(b, c, a, generator=g)
    proprio = torch.randn(b, a + 2, generator=g)  # extra entries (e.g. velocities) are ignored
    is_pad = torch.zeros(b, c, dtype=torch.bool)
    is_pad[1, 4:] = True
    is_pad[3, 2:] = True
    pred[1, 4:] += 100.0  # errors on padding must not count
    metric = ChunkErrorMetric()
    for sl in (slice(0, 2), slice(2, 5)):  # two validation batches
        batch = {"action": target[sl], "proprio": proprio[sl], "action_is_pad": is_pad[sl]}
        metric.process(batch, list(pred[sl]))
    out = metric.compute_metrics(metric.results)
    ref = _loop_reference(pred.numpy(), target.numpy(), proprio.numpy(), is_pad.numpy())
    got = (out["mae"], out["first_mae"], out["hold_mae"], out["hold_first_mae"])
    assert got == pytest.approx(ref, rel=1e-5)
    assert out["mae"] < 0.2 < out["hold_mae"]


def test_perfect_prediction_is_zero_and_shapes_are_checked():
    target = torch.rand(2, 4, 3)
    err = chunk_errors(target.clone(), target)
    assert float(err["sum"].sum()) == 0.0 and err["count"].tolist() == [12.0, 12.0]
    with pytest.raises(ShapeError, match=r"\(B, C, A\)"):
        chunk_errors(target[:, :3], target)
    with pytest.raises(ShapeError, match="hold baseline"):
        chunk_errors(target, target, proprio=torch.zeros(2, 2))
