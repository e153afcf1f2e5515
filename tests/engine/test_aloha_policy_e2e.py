"""End to end on real ALOHA data: gen -> fine-tune a Diffusion Policy from a pretrained one with
(random, tiny) CLAMP tokens and the iteration-based eval hook -> `toolkit eval` offline; ACT
through the same harness (slow)."""

from __future__ import annotations

import json

import pytest
from _helpers import REPO, run_toolkit

pytest.importorskip("gym_aloha")

CAMS = "['front_left','left_wrist']"
TINY_CLAMP = (
    "dict(type='CLAMPPretrainer',"
    "image_encoder=dict(type='StringViT',arch='tiny',string_mode='string'),"
    "action_encoder=dict(type='ActionHistoryEncoder',arch='tiny',action_dim=14,history=4),"
    "text_encoder=None,embed_dim=32)"
)
CLAMP_INPUTS = "dict(image_size=32,num_points=512,history=4,source='depth')"


def _tiny(data, head_type="DiffusionTransformerHead"):
    head = (
        "model.head=dict(type='DiffusionTransformerHead',nhead=2,num_encoder_layers=1,"
        "num_decoder_layers=1,dim_feedforward=64)"
        if head_type == "DiffusionTransformerHead"
        else "model.head=dict(type='ACTTransformer',nhead=2,num_encoder_layers=1,"
        "num_decoder_layers=1,num_vae_layers=1,dim_feedforward=64)"
    )
    return [
        f"train_dataloader.dataset.data_root={data}",
        f"train_dataloader.dataset.cameras={CAMS}",
        "train_dataloader.dataset.image_size=32",
        "train_dataloader.batch_size=4",
        "train_dataloader.num_workers=0",
        "train_dataloader.persistent_workers=False",
        f"val_dataloader.dataset.data_root={data}",
        f"val_dataloader.dataset.cameras={CAMS}",
        "val_dataloader.dataset.image_size=32",
        "val_dataloader.dataset.frame_stride=40",
        "val_dataloader.batch_size=2",
        f"model.cameras={CAMS}",
        "model.image_size=32",
        "model.d_model=32",
        "model.image_encoder=dict(type='ImageResNet',arch='resnet18',out_dim=32)",
        head,
        "model.n_action_steps=10",
        "train_cfg.max_iters=4",
        "train_cfg.val_interval=2",
        "default_hooks.checkpoint.interval=2",
        "custom_hooks=[dict(type='RNGStateHook'),dict(type='FitNormalizationHook'),"
        "dict(type='RolloutEvalHook',suite=dict(type='AlohaSuite'),tasks=['drawer_open'],"
        "by_epoch=False,interval=2,episodes=1,max_steps=12,"
        "env_kwargs=dict(cameras=dict(front_left=(32,32),left_wrist=(32,32)),points=False))]",
    ]


@pytest.fixture(scope="module")
def drawer_data(tmp_path_factory):
    # in a subprocess: importing triton (via timm / torchvision) after MuJoCo's EGL context was
    # created in the same process segfaults (seen here); `toolkit train` builds the model first
    out = tmp_path_factory.mktemp("aloha")
    proc = run_toolkit(
        "gen", "datasets/aloha_finetune.py", "--out", str(out), "--tasks", "drawer_open",
        "--episodes", "2", "--val", "1", "--cameras", "front_left:32", "left_wrist:32",
        "--num-points", "256", "--max-steps", "160", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_finetune_with_clamp_tokens_eval_hook_and_offline_eval(drawer_data, tmp_path):
    """CLAMP's fine-tuning step: start from a pretrained policy (saved here by hand), add
    (random, tiny) frozen CLAMP tokens rendered from the depth cameras, train with the
    iteration-based eval hook, then `toolkit eval` the best checkpoint."""
    import torch

    from toolkit.engine.runner import load_config
    from toolkit.registry import MODELS

    cfg_ft = str(REPO / "recipes" / "clamp" / "dp_pretrained-clamp_aloha-cpu.py")
    scratch = load_config(
        str(REPO / "recipes" / "clamp" / "dp_scratch_aloha-cpu.py"), _tiny(drawer_data)
    )
    pre = tmp_path / "pretrained"
    pre.mkdir()
    torch.save({"state_dict": MODELS.build(scratch.model).state_dict()}, pre / "iter_9.pth")
    (pre / "last_checkpoint").write_text(str(pre / "iter_9.pth"))
    ft = tmp_path / "finetune"
    opts = _tiny(drawer_data) + [
        f"model.init_weights={pre}",
        f"model.clamp=dict(_delete_=True,config={TINY_CLAMP},weights=None)",
        f"model.clamp_inputs={CLAMP_INPUTS}",
        f"train_dataloader.dataset.clamp={CLAMP_INPUTS}",
        f"val_dataloader.dataset.clamp={CLAMP_INPUTS}",
    ]
    proc = run_toolkit("train", cfg_ft, "--work-dir", str(ft), "--cfg-options", *opts)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "initialized" in log and "starting fresh: tokenizer.clamp" in log
    assert "CLAMP encoders are RANDOM" in log
    history = json.loads((ft / "eval" / "history.json").read_text())
    assert [(h["epoch"], h["unit"]) for h in history] == [(2, "iter"), (4, "iter")]
    assert (ft / "eval" / "iter_4" / "drawer_open").is_dir()
    assert (ft / "best_sr.pth").is_file() and (ft / "eval" / "sr_curve.png").is_file()
    # the offline chunk error on the held-out demo, at the same steps as the rollouts
    from toolkit.bench.aloha import val_history

    val = val_history(str(ft))
    assert [h["iter"] for h in val] == [2, 4]
    assert all(h["mae"] > 0 and h["hold_mae"] > 0 for h in val)

    out = tmp_path / "offline"
    proc = run_toolkit(
        "eval", cfg_ft, str(ft / "best_sr.pth"), "--episodes", "1", "--max-steps", "12",
        "--out", str(out), "--cfg-options", *opts,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sr"]) == {"drawer_open"} and summary["episodes"] == 1


@pytest.mark.slow
def test_act_trains_through_the_same_harness(drawer_data, tmp_path):
    cfg = str(REPO / "recipes" / "clamp" / "act_scratch_aloha-cpu.py")
    work = tmp_path / "act"
    opts = [o for o in _tiny(drawer_data, "ACTTransformer") if "n_action_steps" not in o]
    proc = run_toolkit("train", cfg, "--work-dir", str(work), "--cfg-options", *opts)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    history = json.loads((work / "eval" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [2, 4]
    assert all(0.0 <= h["sr"]["drawer_open"] <= 1.0 for h in history)
