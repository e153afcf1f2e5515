"""CLAMP pretraining through `toolkit train` with retrieval validation on real episodes."""

from __future__ import annotations

import json

import pytest
from _helpers import REPO, generate_metaworld, run_toolkit


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw_clamp_e2e")
    return generate_metaworld(out, ["reach"], episodes=2, val=0, max_steps=60)


def test_cpu_recipe_trains_and_validates_retrieval(data, tmp_path):
    work = tmp_path / "clamp"
    cfg = str(REPO / "recipes" / "clamp" / "pretrain_clamp_string-vit-tiny_metaworld-cpu.py")
    proc = run_toolkit(
        "train", cfg, "--work-dir", str(work), "--cfg-options",
        f"train_dataloader.dataset.data_root={data}", f"val_dataloader.dataset.data_root={data}",
        "train_dataloader.dataset.split=train", "val_dataloader.dataset.split=train",
        "train_dataloader.dataset.episodes=(0,1)", "val_dataloader.dataset.episodes=(1,2)",
        "train_dataloader.dataset.frame_stride=4", "val_dataloader.dataset.frame_stride=6",
        "train_dataloader.dataset.num_points=2048", "val_dataloader.dataset.num_points=2048",
        "train_dataloader.batch_size=5", "train_dataloader.num_workers=0",
        "train_dataloader.persistent_workers=False", "val_dataloader.num_workers=0",
        "val_dataloader.persistent_workers=False", "train_cfg.max_epochs=2",
        "train_cfg.val_interval=2", "default_hooks.logger.interval=1",
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (scalars,) = sorted(work.glob("*/vis_data/scalars.json"))
    recs = [json.loads(line) for line in scalars.read_text().splitlines()]
    train = [r for r in recs if "loss_clamp" in r]
    val = [r for r in recs if "retrieval/R@5/mean" in r]
    assert len(train) >= 4 and val
    for d in ("image->text", "text->image", "image->action", "action->image", "text->action",
              "action->text"):  # fmt: skip
        assert 0.0 <= val[-1][f"retrieval/R@5/{d}"] <= 1.0
    assert val[-1]["retrieval/R@5/chance"] == pytest.approx(5 / 10)
    assert (work / "vis" / "retrieval_epoch002.png").stat().st_size > 5_000
