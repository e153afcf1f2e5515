"""End to end on real MetaWorld data: gen -> train with the eval hook -> `toolkit eval`."""

from __future__ import annotations

import json

import pytest
from _helpers import REPO, generate_metaworld, run_toolkit

pytest.importorskip("metaworld")

TINY = [
    "model.encoder.mlp_dims=(32,64)",
    "model.head.hidden_dims=(64,64)",
    "train_dataloader.batch_size=32",
    "train_cfg.max_epochs=2",
    "custom_hooks=[dict(type='RNGStateHook'),dict(type='FitNormalizationHook'),"
    "dict(type='RolloutEvalHook',suite=dict(type='MetaWorldSuite'),interval=1,episodes=2,max_steps=30,"
    "rollout_workers=2,video_last=1)]",  # one pool of 2 spawned workers for both evaluations
]


@pytest.fixture(scope="module")
def reach_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw")
    return generate_metaworld(out, ["reach"], episodes=3, val=1, max_steps=60)


def test_train_eval_hook_then_offline_eval(reach_data, tmp_path):
    cfg = str(REPO / "baselines" / "bc_pointnet_1xb16_150e_metaworld.py")
    work = tmp_path / "run"
    proc = run_toolkit(
        "train",
        cfg,
        "--work-dir",
        str(work),
        "--cfg-options",
        f"train_dataloader.dataset.data_root={reach_data}",
        "train_dataloader.dataset.tasks=['reach']",
        *TINY,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    history = json.loads((work / "eval" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(0.0 <= h["sr"]["reach"] <= 1.0 for h in history)
    assert (work / "best_sr.pth").is_file() and (work / "eval" / "sr_curve.png").is_file()
    episodes = sorted((work / "eval" / "epoch_2" / "reach").glob("*.json"))
    assert episodes, "per-episode results are written"
    # video_last=1: one MP4 per task at the last evaluation, none before
    assert not list((work / "eval" / "epoch_1" / "reach").glob("*.mp4"))
    videos = sorted((work / "eval" / "epoch_2" / "reach").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    rec = json.loads(episodes[0].read_text())
    assert rec["video"] and rec["video"].endswith(videos[0].name)

    out = tmp_path / "offline"
    proc = run_toolkit(
        "eval",
        cfg,
        str(work / "best_sr.pth"),
        "--episodes",
        "2",
        "--max-steps",
        "30",
        "--out",
        str(out),
        "--cfg-options",
        *TINY[:2],
        "train_dataloader.dataset.tasks=['reach']",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sr"]) == {"reach"} and summary["episodes"] == 2

    # the same rollouts in 2 worker processes (`python -m toolkit` under spawn): same records
    par = tmp_path / "offline_par"
    proc = run_toolkit(
        "eval", cfg, str(work / "best_sr.pth"), "--episodes", "2", "--max-steps", "30",
        "--workers", "2", "--out", str(par), "--cfg-options", *TINY[:2],
        "train_dataloader.dataset.tasks=['reach']",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def records(folder):
        eps = sorted((folder / "reach").glob("episode_*.json"))
        return [{k: v for k, v in json.loads(p.read_text()).items() if k != "seconds"} for p in eps]

    assert len(records(out)) == 2 and records(par) == records(out)

    # a checkpoint of another architecture is refused with both files named
    bad = run_toolkit("eval", cfg, str(work / "best_sr.pth"), "--episodes", "1", "--out", str(out))
    assert bad.returncode == 2 and "best_sr.pth" in bad.stderr and "Traceback" not in bad.stderr
