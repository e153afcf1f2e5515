"""CLAR pretraining end to end through `toolkit train` on real MetaWorld frames, then transfer."""

from __future__ import annotations

import json

import pytest
import torch
from _helpers import REPO, generate_metaworld, run_toolkit


@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw_clar")
    return generate_metaworld(out, ["reach"], episodes=0, val=0, max_steps=40, rgb=True, pretrain=2)


def _losses(work_dir) -> list[dict]:
    (scalars,) = sorted(work_dir.glob("*/vis_data/scalars.json"))
    return [json.loads(line) for line in scalars.read_text().splitlines() if "loss" in line]


def test_cpu_recipe_pretrains_caches_teacher_draws_and_transfers(pretrain_data, tmp_path):
    work = tmp_path / "clar"
    cfg = str(REPO / "recipes" / "clar" / "pretrain_clar_pointmae-tiny_metaworld-cpu.py")
    proc = run_toolkit(
        "train", cfg, "--work-dir", str(work), "--cfg-options",
        f"train_dataloader.dataset.data_root={pretrain_data}",
        "train_dataloader.batch_size=8", "train_dataloader.num_workers=0",
        "train_dataloader.persistent_workers=False", "train_dataloader.dataset.frame_stride=2",
        "train_cfg.max_epochs=3", "default_hooks.logger.interval=2",
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "RANDOMLY INITIALIZED TEACHER" in log  # the explicit random-init is loud
    assert "80 frames computed" in log  # the teacher ran once per stored frame, into the cache
    recs = _losses(work)
    assert len(recs) >= 4
    for term in ("mae", "pi", "pt", "local"):
        assert all(torch.isfinite(torch.tensor(r[f"loss_{term}"])) for r in recs)
    assert recs[-1]["loss"] < recs[0]["loss"]
    # pictures of the last state
    assert (work / "vis" / "final_reconstruction.png").stat().st_size > 10_000
    assert (work / "vis" / "final_local_alignment.png").stat().st_size > 10_000
    # the checkpoint holds what was trained, not the frozen teachers
    ckpt = torch.load(work / "epoch_3.pth", map_location="cpu", weights_only=False)
    keys = list(ckpt["state_dict"])
    assert any(k.startswith("backbone.blocks.") for k in keys)
    assert not any("teacher" in k for k in keys)
    # a rerun reuses the teacher cache (0 frames computed) and resumes
    proc = run_toolkit(
        "train", cfg, "--work-dir", str(work), "--resume", "--cfg-options",
        f"train_dataloader.dataset.data_root={pretrain_data}",
        "train_dataloader.batch_size=8", "train_dataloader.num_workers=0",
        "train_dataloader.persistent_workers=False", "train_dataloader.dataset.frame_stride=2",
        "train_cfg.max_epochs=4",
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 frames computed" in proc.stdout + proc.stderr
    assert (work / "epoch_4.pth").is_file()

    # the encoder transfers into the MetaWorld policy through the work_dir
    from mmengine.config import Config

    from toolkit.registry import MODELS

    pol = Config.fromfile(
        str(REPO / "recipes" / "clar" / "bc_clar-pointmae-tiny_1xb16_150e_metaworld.py")
    )
    pol.model.encoder_weights = str(work)
    policy = MODELS.build(pol.model)
    state = torch.load(work / "epoch_4.pth", map_location="cpu", weights_only=False)["state_dict"]
    for k, v in policy.encoder.state_dict().items():
        assert torch.equal(v, state[f"backbone.{k}"]), k
