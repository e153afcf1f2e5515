"""End-to-end checks of ``toolkit train``: plugins, resume, seeds, DDP, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import PLUGINS, REPO, read_losses, run_toolkit

CFG = str(PLUGINS / "tiny_config.py")


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _final_params(work_dir: Path, name: str = "epoch_4.pth") -> dict[str, torch.Tensor]:
    from toolkit.engine.checkpoint import load_checkpoint_file

    return load_checkpoint_file(str(work_dir / name))["state_dict"]


def test_plugin_from_outside_package_trains_and_loss_decreases(tmp_path):
    proc = run_toolkit(
        "train",
        CFG,
        "--work-dir",
        str(tmp_path),
        "--threads",
        "1",
        "--cfg-options",
        "train_cfg.max_epochs=6",
    )
    _ok(proc)
    losses = read_losses(tmp_path)
    first = sum(losses[i] for i in range(1, 9)) / 8
    last = sum(losses[i] for i in range(41, 49)) / 8
    assert last < 0.7 * first, (first, last)


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    full, broken = tmp_path / "full", tmp_path / "broken"
    _ok(run_toolkit("train", CFG, "--work-dir", str(full)))
    crash = "custom_hooks=[dict(type='RNGStateHook'),dict(type='CrashAtIterHook',at_iter=20)]"
    proc = run_toolkit("train", CFG, "--work-dir", str(broken), "--cfg-options", crash)
    assert proc.returncode == 17  # killed in epoch 3, after epoch_2.pth was written
    assert not (broken / "epoch_3.pth").exists()
    _ok(run_toolkit("train", CFG, "--work-dir", str(broken), "--resume"))
    a, b = read_losses(full), read_losses(broken)
    assert sorted(a) == list(range(1, 33)) and sorted(b) == list(range(1, 33))
    # Dropout is on: equal losses after the resume point need the restored RNG streams too.
    for step in range(17, 33):
        assert a[step] == pytest.approx(b[step], rel=1e-6, abs=1e-7), step
    pa, pb = _final_params(full), _final_params(broken)
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k])


def test_resume_explicit_checkpoint_and_errors(tmp_path):
    _ok(
        run_toolkit(
            "train",
            CFG,
            "--work-dir",
            str(tmp_path / "a"),
            "--cfg-options",
            "train_cfg.max_epochs=1",
        )
    )
    ckpt = tmp_path / "a" / "epoch_1.pth"
    proc = run_toolkit(
        "train",
        CFG,
        "--work-dir",
        str(tmp_path / "b"),
        "--resume",
        str(ckpt),
        "--cfg-options",
        "train_cfg.max_epochs=2",
    )
    _ok(proc)
    assert (tmp_path / "b" / "epoch_2.pth").exists() and not (
        tmp_path / "b" / "epoch_1.pth"
    ).exists()

    missing = run_toolkit(
        "train", CFG, "--work-dir", str(tmp_path / "c"), "--resume", str(tmp_path / "nope.pth")
    )
    assert missing.returncode == 2
    assert "nope.pth" in missing.stderr and "Traceback" not in missing.stderr

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    bad = run_toolkit("train", CFG, "--work-dir", str(tmp_path / "d"), "--resume", str(corrupt))
    assert bad.returncode == 2
    assert "corrupt.pth" in bad.stderr and "Traceback" not in bad.stderr


def test_seed_determinism(tmp_path):
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        _ok(
            run_toolkit(
                "train",
                CFG,
                "--work-dir",
                str(tmp_path / name),
                "--seed",
                str(seed),
                "--cfg-options",
                "train_cfg.max_epochs=2",
            )
        )
        runs[name] = read_losses(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_ddp_two_process_gloo_matches_single_process(tmp_path):
    if shutil.which("torchrun") is None and not torch.distributed.is_available():
        pytest.skip("torch.distributed unavailable")
    # Same global batch (4): 1 process x 4 vs 2 processes x 2; no dropout (per-rank RNG).
    common = ["model.backbone.dropout=0.0", "train_cfg.max_epochs=2", "randomness.seed=5"]
    _ok(run_toolkit("train", CFG, "--work-dir", str(tmp_path / "single"), "--cfg-options", *common))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "toolkit",
        "train",
        CFG,
        "--launcher",
        "pytorch",
        "--work-dir",
        str(tmp_path / "ddp"),
        "--cfg-options",
        *common,
        "train_dataloader.batch_size=2",
    ]
    _ok(subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300))
    first = _final_params(tmp_path / "single", "epoch_1.pth")
    ps = _final_params(tmp_path / "single", "epoch_2.pth")
    pd = _final_params(tmp_path / "ddp", "epoch_2.pth")
    assert set(ps) == set(pd)
    for k in ps:
        torch.testing.assert_close(ps[k], pd[k], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(first[k], ps[k]) for k in ps)  # training moved the parameters


def test_malformed_cfg_options_and_missing_config(tmp_path):
    bad = run_toolkit(
        "train", CFG, "--work-dir", str(tmp_path), "--cfg-options", "train_cfg.max_epochs"
    )
    assert (
        bad.returncode == 2
        and "malformed --cfg-options" in bad.stderr
        and "Traceback" not in bad.stderr
    )
    threads = run_toolkit("train", CFG, "--work-dir", str(tmp_path), "--threads", "0")
    assert threads.returncode == 2 and "--threads must be >= 1, got 0" in threads.stderr
    missing = run_toolkit("train", str(tmp_path / "nope.py"))
    assert (
        missing.returncode == 2
        and "nope.py" in missing.stderr
        and "Traceback" not in missing.stderr
    )


def test_unknown_type_in_config_names_registry_and_close_names(tmp_path):
    proc = run_toolkit(
        "train",
        CFG,
        "--work-dir",
        str(tmp_path),
        "--cfg-options",
        "model.backbone.type=TinyMLPBackbon",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "TinyMLPBackbon" in proc.stderr and "backbone registry" in proc.stderr
    assert "Did you mean: TinyMLPBackbone" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_toolkit(
        "train", CFG, "--work-dir", str(tmp_path), "--cfg-options", "model.type=TinyRegresor"
    )
    assert (
        proc.returncode == 2 and "model registry" in proc.stderr and "TinyRegressor" in proc.stderr
    )


def test_tune_malloc_leaves_the_losses_unchanged(tmp_path):
    """--tune-malloc only changes where freed memory goes: same seed, bit-identical losses."""
    runs = {}
    for name, extra in (("plain", []), ("tuned", ["--tune-malloc"])):
        work = tmp_path / name
        args = ["--work-dir", str(work), "--seed", "3", "--threads", "1", *extra]
        _ok(run_toolkit("train", CFG, *args, "--cfg-options", "train_cfg.max_epochs=1"))
        runs[name] = read_losses(work)
    assert len(runs["plain"]) >= 4
    assert runs["plain"] == runs["tuned"]


def test_tune_glibc_malloc_applies_on_linux():
    code = "from toolkit.utils.memory import tune_glibc_malloc as t; print(t())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    expected = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None
    assert out.stdout.strip() == str(expected)
