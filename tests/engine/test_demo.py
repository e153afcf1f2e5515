"""`toolkit demo` (the README's main job) end to end at the smallest size, including CLAR."""

from __future__ import annotations

import json

from _helpers import run_toolkit


def test_demo_runs_pretraining_training_and_closed_loop_eval(tmp_path):
    out = tmp_path / "demo"
    args = [
        "demo", "--out", str(out), "--tasks", "reach", "--episodes", "2", "--epochs", "1",
        "--eval-episodes", "1", "--eval-interval", "1", "--workers", "1",
        "--encoders", "pointmae-tiny", "--pretrain-episodes", "1", "--pretrain-epochs", "1",
    ]  # fmt: skip
    proc = run_toolkit(*args, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CLAR pretraining" in proc.stdout
    assert (out / "pretrain" / "epoch_1.pth").is_file()
    assert (out / "pretrain" / "vis" / "final_local_alignment.png").is_file()
    table = (out / "bench" / "table.md").read_text()
    assert "pointmae-tiny" in table and "clar-tiny" in table
    for enc in ("pointmae-tiny", "clar-tiny"):
        res = json.loads(
            (out / "bench" / "runs" / enc / "reach" / "seed0" / "result.json").read_text()
        )
        assert 0.0 <= res["best_sr"] <= 1.0 and res["history"][0]["epoch"] == 1
        # --videos 2 (default) with 1 rollout: one MP4 of the last evaluation
        run_eval = out / "bench" / "runs" / enc / "reach" / "seed0" / "eval" / "epoch_1" / "reach"
        assert len(list(run_eval.glob("episode_*.mp4"))) == 1
    assert "rollout videos:" in proc.stdout and "sr_curves.png" in proc.stdout
    log = (out / "bench" / "runs" / "clar-tiny" / "reach" / "seed0" / "train.log").read_text()
    assert "pretrain" in log and "loaded encoder weights" in log
    # a rerun skips everything that is done
    proc = run_toolkit(*args, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "done, skipped" in proc.stdout and proc.stdout.count("done, skipped") >= 3
