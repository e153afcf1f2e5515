"""Smoke run of ``toolkit bench clar --quick``: every row present, figures consistent."""

from __future__ import annotations

import math

from toolkit.cli import main


def test_bench_clar_quick(capsys):
    rc = main(["bench", "clar", "--quick", "--device", "cpu", "--repeats", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0] == "tiny" and parts[1] == "cpu":
            rows[parts[2]] = tuple(float(x) for x in parts[3:])
    assert set(rows) == {"live", "cached"}, out
    for ms, sps, _ratio in rows.values():
        assert math.isfinite(ms) and ms > 0
        assert abs(sps - 4 / (ms / 1e3)) / sps < 0.02  # samples/s = batch / step time
    assert rows["live"][2] == 1.0
    assert abs(rows["cached"][2] - rows["live"][0] / rows["cached"][0]) < 0.01
    assert "tiny  encoder      267,648" in out  # parameter count of the tiny preset
