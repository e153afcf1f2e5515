"""Smoke runs of ``toolkit bench policy``, in process: parse the printed table and check that
every expected row is there with positive, finite figures that agree with each other (ratios,
protocol hours = iterations x step time). No time is asserted: the figures move with load."""

from __future__ import annotations

import math
import re

import pytest

from toolkit.bench.policy import QUICK_ENCODERS, protocol_counts
from toolkit.cli import main

COLUMNS = [
    "params_M",
    "train_ms",
    "train_best_ms",
    "train_ratio",
    "infer_ms",
    "infer_ratio",
    "train_h",
    "rollout_h",
    "proto_h",
    "proto_ratio",
]


def _positive(text: str) -> float:
    value = float(text)
    assert math.isfinite(value) and value > 0, text
    return value


def _table(out: str) -> dict[str, dict[str, float]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("encoder"))
    assert lines[start].split() == ["encoder", *COLUMNS], lines[start]
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        parts = line.split()
        name, values = " ".join(parts[: -len(COLUMNS)]), parts[-len(COLUMNS) :]
        rows[name] = {c: _positive(v) for c, v in zip(COLUMNS, values)}
    return rows


def _check_rows(rows: dict[str, dict[str, float]], batch: int, env_ms: float = 0.0) -> None:
    iters, env_steps = protocol_counts(batch)
    for col in ("train_ratio", "infer_ratio", "proto_ratio"):
        ratios = [r[col] for r in rows.values()]
        assert min(ratios) == pytest.approx(1.0, abs=0.005), (col, ratios)  # the fastest row
        assert all(x >= 0.995 for x in ratios), (col, ratios)
    for name, r in rows.items():
        assert r["train_best_ms"] <= r["train_ms"] + 0.05, name
        # the printed hours follow the printed formula (up to the printed rounding)
        assert r["train_h"] == pytest.approx(iters * r["train_ms"] / 3.6e6, rel=0.01, abs=2e-3)
        rollout = env_steps * (r["infer_ms"] + env_ms) / 3.6e6
        assert r["rollout_h"] == pytest.approx(rollout, rel=0.02, abs=2e-3), name
        assert r["proto_h"] == pytest.approx(r["train_h"] + r["rollout_h"], abs=2e-3), name


def test_bench_policy_quick(capsys):
    rc = main(["bench", "policy", "--quick"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("toolkit bench policy --quick:")
    assert "batch 2 x 128 points" in out.splitlines()[0]
    rows = _table(out)
    assert list(rows) == QUICK_ENCODERS, out
    _check_rows(rows, batch=2)
    assert "train_h = 375,000 iterations x train_ms" in out  # 150 x ceil(5000 / 2)
    assert "rollout_h = 75,000 env steps" in out
    assert "env step not measured" in out
    assert "load average at the end" in out


def test_protocol_counts_match_the_clar_protocol():
    assert protocol_counts(16) == (150 * 313, 15 * 25 * 200)  # 46,950 iterations
    assert protocol_counts(32) == (150 * 157, 75_000)


@pytest.mark.slow
def test_bench_policy_with_env_step(capsys):
    pytest.importorskip("metaworld")
    rc = main(["bench", "policy", "--quick", "--env", "--encoders", "dp3", "pointnet-256"])
    out = capsys.readouterr().out
    assert rc == 0, out
    m = re.search(r"step (\S+) ms \(best (\S+) ms\); 75,000 steps = (\S+) h of simulation", out)
    assert m, out
    step, best, hours = (_positive(x) for x in m.groups())
    assert best <= step + 0.05
    assert hours == pytest.approx(75_000 * step / 3.6e6, rel=0.02, abs=2e-3)
    rows = _table(out)
    assert list(rows) == ["dp3", "pointnet-256"]
    _check_rows(rows, batch=2, env_ms=step)
