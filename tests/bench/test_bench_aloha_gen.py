"""A tiny ``toolkit bench aloha_gen`` run (one camera at 32x32, one short drawer_open episode):
every table row is printed with finite, positive figures that agree with each other. No time is
asserted: the figures move with machine load."""

from __future__ import annotations

import math
import re

import pytest

from toolkit.cli import main

pytest.importorskip("gym_aloha")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(text: str) -> float:
    value = float(re.sub(r"[x*]", "", text))
    assert math.isfinite(value) and value >= 0, text
    return value


def test_bench_aloha_gen_tiny(capsys, tmp_path):
    rc = main(
        [
            "bench",
            "aloha_gen",
            "--task",
            "drawer_open",
            "--cameras",
            "front_left",
            "--sizes",
            "32",
            "--num-points",
            "128",
            "--breakdown-steps",
            "2",
            "--episodes",
            "1",
            "--episode-steps",
            "150",  # the drawer_open expert succeeds at step 147 on seed 0
            "--workers",
            "1",
            "--tmp",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "load average" in out
    rows = [_cells(line) for line in out.splitlines() if line.startswith("| 32x32 |")]
    stages = {r[1]: r[2:] for r in rows if len(r) == 4}
    expected = [
        "physics + expert (state only: the dry run)",
        "expert action + sim state (recording run)",
        "env step + full observation (as recorded)",
        "RGB render, one pass per camera",
        "depth render (depth mode), one pass per camera",
        "RGB + depth from one pass per camera (rig.rgbd)",
        "cloud: unproject + crop + merge (env.merged_points)",
        "cloud: total (env.point_cloud)",
        "**sum: dry run + recording + gzip-1 write**",
    ]
    for name in expected:
        assert name in stages, (name, list(stages))
    assert any(s.startswith("cloud: FPS (bucket_fps") for s in stages), list(stages)
    writes = [s for s in stages if s.startswith("HDF5 write")]
    assert len(writes) == 4 and any(s.startswith("HDF5 write (gzip 1)") for s in writes)
    for wall, cpu in stages.values():
        _number(wall), _number(cpu)
    pred = next(v for k, v in stages.items() if k.startswith("=> predicted ep/h/core"))
    assert _number(pred[0]) > 0

    e2e = [r for r in rows if len(r) == 12]
    assert len(e2e) == 1, out  # one row: 1 worker (W = 1 adds no second run)
    workers, episodes, wall, s_ep, ep_h, ep_h_core, ratio = e2e[0][1:8]
    assert workers == "1" and episodes == "1 (0)"
    assert _number(wall) > 0 and _number(ep_h) > 0
    assert math.isclose(_number(ep_h), 3600.0 / _number(wall), rel_tol=0.02)
    assert math.isclose(_number(ep_h_core), _number(ep_h), rel_tol=1e-6)
    assert math.isclose(_number(ratio), _number(ep_h_core) / 60.0, abs_tol=0.01)
    assert not list(tmp_path.iterdir())  # scratch files are removed
