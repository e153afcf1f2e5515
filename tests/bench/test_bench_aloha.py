"""`toolkit bench aloha`: prerequisites of each variant, the table, the curves, resumability."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from toolkit.bench import aloha as B


def test_variants_name_their_pretraining_runs():
    need = dict(B.prerequisites(B.VARIANTS["dp-pretrained-clamp"]))
    assert need == {
        "recipes/clamp/dp_pretrain_aloha-cpu.py": "work_dirs/dp_pretrain_aloha-cpu",
        "recipes/clamp/pretrain_clamp_string-vit-tiny_aloha-cpu.py": (
            "work_dirs/pretrain_clamp_string-vit-tiny_aloha-cpu"
        ),
    }
    assert B.prerequisites(B.VARIANTS["dp-scratch"]) == []
    assert dict(B.prerequisites(B.VARIANTS["act-pretrained"])) == {
        "recipes/clamp/act_pretrain_aloha-cpu.py": "work_dirs/act_pretrain_aloha-cpu"
    }
    with pytest.raises(Exception, match="unknown variant 'dp-nope'"):
        B._variants(["dp-nope"])


def _record(variant, sr_curve, task="drawer_open", seed=0):
    history = [
        {"epoch": 500 * (i + 1), "unit": "iter", "sr": {task: sr}, "sr_mean": sr}
        for i, sr in enumerate(sr_curve)
    ]
    best = max(history, key=lambda h: h["sr_mean"])
    return {
        "variant": variant, "task": task, "seed": seed, "best_sr": best["sr"][task],
        "best_step": best["epoch"], "final_sr": history[-1]["sr"][task], "history": history,
    }  # fmt: skip


def test_table_curves_and_partial_results(tmp_path):
    out = tmp_path / "bench"
    for variant, curve in (("dp-scratch", [0.1, 0.3, 0.2]), ("dp-pretrained", [0.4, 0.6, 0.5])):
        d = out / "runs" / variant / "drawer_open" / "seed0"
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(_record(variant, curve)))
    variants = ["dp-scratch", "dp-pretrained", "dp-pretrained-clamp"]
    args = argparse.Namespace(
        variants=variants, tasks=["drawer_open"], seeds=[0], out=str(out), collect_only=True
    )
    assert B.run(args) == 0
    md = (out / "table.md").read_text()
    assert "| dp-scratch | 30.0 | 30.0 |" in md
    assert "| dp-pretrained | 60.0 | 60.0 |" in md
    assert "| dp-pretrained-clamp | – | – |" in md
    assert "Missing (partial table): dp-pretrained-clamp/drawer_open/seed0" in md
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[1] == "dp-scratch,drawer_open,0,0.3,1000,0.2,,"
    assert (out / "sr_curves.png").stat().st_size > 1000


def test_concurrent_benches_train_a_shared_prerequisite_once(tmp_path, monkeypatch):
    """Two `bench aloha` processes (one per variant) that need the same policy pretraining:
    the first trains it under the work-dir lock, the second waits and then finds it done."""
    import threading
    import time

    calls = []

    def fake_train(config, work_dir, overrides, seed=0, threads=None, tune_malloc=False):
        calls.append((config, list(overrides)))
        time.sleep(0.5)  # the other caller arrives while this one holds the lock
        os.makedirs(work_dir, exist_ok=True)
        with open(os.path.join(work_dir, "last_checkpoint"), "w") as f:
            f.write(os.path.join(work_dir, "iter_7.pth"))

    monkeypatch.setattr(B, "_train", fake_train)
    work_dir = str(tmp_path / "dp_pretrain_aloha-cpu")
    args = argparse.Namespace(pretrain_iters=7, pretrain_data=None, skip_prerequisites=False)
    errors = []

    def call():
        try:
            B.run_prerequisite("recipes/clamp/dp_pretrain_aloha-cpu.py", work_dir, args)
        except Exception as e:  # surfaced below: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(calls) == 1 and "train_cfg.max_iters=7" in calls[0][1]
    B.run_prerequisite("recipes/clamp/dp_pretrain_aloha-cpu.py", work_dir, args)  # done: no-op
    assert len(calls) == 1


def test_val_history_from_resumed_runs_and_table_columns(tmp_path):
    """The chunk-error metric is read back from every resumed run's scalars.json (later runs
    win at equal steps; a line cut by a kill is skipped) and shown next to the SR."""
    run = tmp_path / "runs" / "dp-scratch" / "drawer_open" / "seed0"
    first, second = run / "20260101_000000" / "vis_data", run / "20260102_000000" / "vis_data"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    (first / "scalars.json").write_text(
        json.dumps({"loss": 1.0, "step": 50})
        + "\n"
        + json.dumps({"chunk/mae": 0.3, "chunk/hold_mae": 0.09, "step": 500})
        + "\n"
        + json.dumps({"chunk/mae": 0.9, "step": 1000})
        + "\n"
    )
    (second / "scalars.json").write_text(
        json.dumps({"chunk/mae": 0.2, "chunk/hold_mae": 0.09, "step": 1000}) + "\n" + '{"chunk/m'
    )
    val = B.val_history(str(run))
    assert [(h["iter"], h["mae"]) for h in val] == [(500, 0.3), (1000, 0.2)]
    rec = _record("dp-scratch", [0.0, 0.1])
    rec.update(val_history=val, final_val_mae=val[-1]["mae"], hold_val_mae=val[-1]["hold_mae"])
    (run / "result.json").write_text(json.dumps(rec))
    args = argparse.Namespace(
        variants=["dp-scratch"], tasks=["drawer_open"], seeds=[0], out=str(tmp_path),
        collect_only=True,
    )  # fmt: skip
    assert B.run(args) == 0
    md = (tmp_path / "table.md").read_text()
    assert "| val chunk MAE (rad), last | hold-state baseline |" in md
    assert "| dp-scratch | 10.0 | 10.0 | 0.2000 | 0.0900 |" in md
    assert (tmp_path / "table.csv").read_text().splitlines()[1].endswith(",0.2,0.09")
