"""`toolkit bench metaworld --multitask`: one language-conditioned policy over several tasks,
evaluated per task, collected into the per-task table; a rerun skips the finished run."""

from __future__ import annotations

import json

import pytest
from _helpers import REPO, generate_metaworld, run_toolkit


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw_mt")
    return generate_metaworld(out, ["reach", "button-press"], episodes=2, val=0, max_steps=70)


def test_multitask_bench_trains_one_policy_and_reports_every_task(two_tasks, tmp_path):
    out = tmp_path / "bench"
    cfg = REPO / "recipes" / "clar" / "bc_pointnet_multitask_metaworld.py"
    args = [
        "bench", "metaworld", "--multitask", "--encoders", f"pn={cfg}",
        "--tasks", "reach", "button-press", "--data", str(two_tasks), "--out", str(out),
        "--epochs", "1", "--eval-interval", "1", "--episodes", "1",
        "--cfg-options", "model.encoder.mlp_dims=(16,32,64)", "train_dataloader.batch_size=8",
        "train_dataloader.dataset.language.backend=hash", "default_hooks.logger.interval=5",
    ]  # fmt: skip
    proc = run_toolkit(*args, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = out / "runs" / "pn" / "multitask" / "seed0"
    rec = json.loads((run / "result.json").read_text())
    assert rec["tasks"] == ["reach", "button-press"]
    assert set(rec["best_sr"]) == {"reach", "button-press"}
    assert not (out / "runs" / "pn" / "reach").exists()  # one policy, not one per task
    assert rec["segments"] == 1 and rec["train_time_s"] > 0 and rec["eval_time_s"] > 0
    assert rec["protocol_time_s"] == pytest.approx(
        rec["train_time_s"] + rec["eval_time_s"], abs=0.2
    )
    table = (out / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| pn "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) >= 3 and all(c for c in cells)
    assert "PARTIAL" not in table
    again = run_toolkit(*args, timeout=300)
    assert again.returncode == 0 and "done, skipped" in again.stdout


def test_run_time_counts_each_iteration_once_across_resumes(tmp_path):
    """Two starts of one run (the second resumed at iteration 100 and redid 100-150): each
    iteration's logged time counts once, the later start's wins, a line cut by a kill is skipped,
    and evaluation records are not training time."""
    from toolkit.bench.metaworld import run_time

    def write(stamp: str, lines: list[str]) -> None:
        d = tmp_path / stamp / "vis_data"
        d.mkdir(parents=True)
        (d / "scalars.json").write_text("\n".join(lines) + "\n")

    rec = lambda it, t: json.dumps({"lr": 1e-3, "loss": 0.1, "time": t, "iter": it})  # noqa: E731
    write("20260101_000000", [rec(50, 0.2), rec(100, 0.2), rec(150, 9.9), '{"lr": 0.001, "ti'])
    write("20260101_010000", [rec(150, 0.1), rec(200, 0.1), json.dumps({"time": 5.0, "iter": 1})])
    out = run_time(str(tmp_path), [{"seconds": 30.0}, {"seconds": 12.5}])
    assert out["train_time_s"] == pytest.approx(50 * 0.2 + 50 * 0.2 + 50 * 0.1 + 50 * 0.1)
    assert out["eval_time_s"] == 42.5 and out["segments"] == 2
    assert out["protocol_time_s"] == pytest.approx(30.0 + 42.5)


def _job_args(tmp_path, jobs, threads=None):
    import argparse

    return argparse.Namespace(out=str(tmp_path), jobs=jobs, threads=threads)


def _fake_result(task):
    return {"best_sr": 0.5, "best_epoch": 1, "wall_time_s": 0.0, "protocol_time_s": 0.0,
            "segments": 1, "task": task}  # fmt: skip


def test_jobs_train_runs_concurrently_with_a_share_of_the_cores_each(tmp_path, monkeypatch):
    import os
    import threading

    from toolkit.bench import metaworld as bench

    barrier = threading.Barrier(2, timeout=20)  # breaks (and the test fails) unless 2 run at once
    seen = []

    def fake_run_one(config, task, seed, run_dir, args):
        seen.append((task, args.threads))
        barrier.wait()
        return _fake_result(task)

    monkeypatch.setattr(bench, "run_one", fake_run_one)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    jobs = [("enc", "cfg.py", t, 0) for t in ("reach", "button-press", "hammer", "drawer-open")]
    bench._run_jobs(jobs, _job_args(tmp_path, jobs=2), multitask=False)
    assert sorted(t for t, _ in seen) == sorted(j[2] for j in jobs)
    assert {th for _, th in seen} == {2}  # 4 cores // 2 jobs
    for _, _, t, _ in jobs:
        rec = json.loads((tmp_path / "runs" / "enc" / t / "seed0" / "result.json").read_text())
        assert rec["task"] == t
    # explicit --threads wins; a rerun skips every finished run
    seen.clear()
    jobs.append(("enc", "cfg.py", "window-open", 0))
    monkeypatch.setattr(
        bench, "run_one", lambda c, t, s, d, a: seen.append((t, a.threads)) or _fake_result(t)
    )
    bench._run_jobs(jobs, _job_args(tmp_path, jobs=2, threads=1), multitask=False)
    assert seen == [("window-open", 1)]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_jobs_a_failed_run_does_not_stop_the_others_and_is_reported(tmp_path, monkeypatch, n_jobs):
    from toolkit.bench import metaworld as bench

    def fake_run_one(config, task, seed, run_dir, args):
        if task == "hammer":
            raise RuntimeError("training failed (exit 1); see train.log")
        return _fake_result(task)

    monkeypatch.setattr(bench, "run_one", fake_run_one)
    jobs = [("enc", "cfg.py", t, 0) for t in ("hammer", "reach", "button-press")]
    with pytest.raises(RuntimeError, match=r"1 of 3 run\(s\) failed:\n.*hammer.*exit 1"):
        bench._run_jobs(jobs, _job_args(tmp_path, jobs=n_jobs), multitask=False)
    assert (tmp_path / "runs" / "enc" / "reach" / "seed0" / "result.json").is_file()
    assert (tmp_path / "runs" / "enc" / "button-press" / "seed0" / "result.json").is_file()
    assert not (tmp_path / "runs" / "enc" / "hammer" / "seed0" / "result.json").exists()
    from toolkit.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="--jobs must be >= 1, got 0"):
        bench._run_jobs(jobs, _job_args(tmp_path, jobs=0), multitask=False)
