"""Smoke runs of ``toolkit bench ops --quick`` and ``toolkit bench render --quick``, in process.

They parse the printed tables and check that every expected row is there with positive, finite
figures that agree with each other (ratios, best <= median, clouds/s = batch / time). No time is
asserted: the figures move with machine load.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from toolkit.cli import main
from toolkit.ops.sampling import available_fps_backends


def _positive(text: str) -> float:
    value = float(text)
    assert math.isfinite(value) and value > 0, text
    return value


def _groups(out: str) -> dict[str, list[str]]:
    """Blank-line separated blocks of the ops bench: title -> the lines below it."""
    blocks = {}
    for block in out.strip().split("\n\n"):
        lines = block.splitlines()
        blocks[lines[0].strip()] = lines[1:]
    return blocks


def _table(lines: list[str]) -> dict[str, tuple[float, float, float]]:
    """A group's rows (after its header line) -> name: (median, best, ratio)."""
    assert lines and "median" in lines[0], lines
    rows = {}
    for line in lines[1:]:
        name, med, best, ratio = line.strip().rsplit(maxsplit=3)
        rows[name.strip()] = (_positive(med), _positive(best), _positive(ratio))
    return rows


def test_bench_ops_quick(capsys):
    rc = main(["bench", "ops", "--quick", "--device", "cpu", "--repeats", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "not available" not in out and "failed" not in out, out
    assert "indices differ" not in out, out  # every FPS backend picks the torch loop's indices
    groups = _groups(out)
    assert next(iter(groups)).startswith("toolkit bench ops --quick")

    backends = [b for b in available_fps_backends() if b != "pointnet2"]
    downsample = ["fps (exact, backend auto)", "random"]
    if "fpsample" in backends:
        downsample.insert(1, "bucket_fps (approx, fpsample)")
    knn_rows = ["toolkit knn (exact differences)", "cdist (matmul) + topk"]
    expected = {
        "FPS exact  B=2 N=2048 -> 64  [cpu]": backends,
        "FPS exact  B=2 N=2048 -> 128  [cpu]": backends,
        "downsample_points one cloud N=4096 -> 512  [cpu]": downsample,
        "kNN  B=2 N=2048 M=64 k=16  [cpu]": knn_rows,
        "kNN  B=2 N=2048 M=128 k=16  [cpu]": knn_rows,
        "Chamfer L2^2 forward  B=2 N=M=1024  [cpu]": [
            "toolkit chamfer_distance (chunked)",
            "cdist^2 + min, full matrix",
        ],
        "renderer  30000 points -> 5 views 224x224  [cpu]": ["batch 1", "batch 4"],
    }
    for title, names in expected.items():
        assert title in groups, f"missing group {title!r} in:\n{out}"
        rows = _table(groups[title])
        assert list(rows) == names, (title, list(rows))
        ratios = [r[2] for r in rows.values()]
        assert min(ratios) == pytest.approx(1.0, abs=0.005), (title, ratios)  # the fastest row
        assert all(r >= 0.995 for r in ratios), (title, ratios)
        for med, best, _ in rows.values():
            if title.startswith("renderer"):  # throughputs: the best run is the highest
                assert best >= med - 0.01, (title, med, best)
            else:
                assert best <= med + 0.01, (title, med, best)

    big = groups["Chamfer L2^2 forward  B=1 N=M=10000  [cpu]  (one run, fresh process)"]
    m = re.fullmatch(r"\s*time (\S+) ms; extra memory \(.*\) (\S+) MiB", big[0])
    assert m, big
    _positive(m.group(1))
    assert math.isfinite(float(m.group(2)))  # RSS growth: may be ~0 when memory is reused
    assert "load average at the end" in out


def _render_rows(out: str) -> list[dict]:
    lines = out.strip().splitlines()
    header = lines[1].split()
    assert header[:3] == ["threads", "batch", "mode"], lines[1]
    rows = []
    for line in lines[2:]:
        if line.startswith("compiled / eager"):
            continue
        threads, batch, mode, med, best, cps, cpu, first = line.split()
        rows.append(
            dict(
                threads=int(threads),
                batch=int(batch),
                mode=mode,
                ms_median=_positive(med),
                ms_best=_positive(best),
                clouds_per_s=_positive(cps),
                cpu_ms=_positive(cpu),
                first_s=_positive(first),
            )
        )
    return rows


def _check_render_row(r: dict) -> None:
    assert r["ms_best"] <= r["ms_median"] + 0.01
    # clouds/s is computed from the median time: same number up to the printed rounding
    assert r["clouds_per_s"] == pytest.approx(r["batch"] * 1e3 / r["ms_median"], rel=0.05, abs=0.1)


def test_bench_render_quick(capsys):
    rc = main(["bench", "render", "--quick"])
    out = capsys.readouterr().out
    assert rc == 0, out
    first = out.splitlines()[0]
    assert first.startswith("render_views: 4096 points -> 5 x 64x64x4 (CLAMP rig), 2 repeats")
    assert "(--quick)" in first
    rows = _render_rows(out)
    nt = torch.get_num_threads()
    assert [(r["threads"], r["batch"], r["mode"]) for r in rows] == [
        (nt, 1, "eager"),
        (nt, 2, "eager"),
    ]
    for r in rows:
        _check_render_row(r)
    assert "speed-up" not in out  # no compiled rows in --quick


def test_bench_render_quick_options_override(capsys):
    rc = main(
        ["bench", "render", "--quick", "--batch-sizes", "3", "--n-points", "500", "--repeats", "1"]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("render_views: 500 points -> 5 x 64x64x4 (CLAMP rig), 1 repeats")
    rows = _render_rows(out)
    assert [(r["batch"], r["mode"]) for r in rows] == [(3, "eager")]
    _check_render_row(rows[0])
