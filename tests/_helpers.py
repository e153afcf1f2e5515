"""Helpers shared by tests (importable as `_helpers`; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "tests" / "plugins"


def run_toolkit(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run ``python -m toolkit ARGS`` in a fresh process (mmengine keeps global state)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS), full_env.get("PYTHONPATH", "")])
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_losses(work_dir: Path) -> dict[int, float]:
    """Per-iteration losses from every run in ``work_dir`` (later runs override earlier)."""
    losses: dict[int, float] = {}
    for scalars in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in scalars.read_text().splitlines():
            rec = json.loads(line)
            if "loss" in rec:
                losses[rec["step"]] = rec["loss"]
    return losses


def generate_metaworld(
    out: Path,
    tasks: list[str],
    episodes: int,
    val: int,
    max_steps: int,
    rgb: bool = False,
    pretrain: int = 0,
) -> Path:
    """A tiny MetaWorld dataset through ``toolkit gen`` (asserts it succeeded); depth-only
    unless ``rgb``; ``pretrain`` episodes per task from the pretraining seed range."""
    extra = ([] if rgb else ["--no-rgb"]) + (["--pretrain", str(pretrain)] if pretrain else [])
    proc = run_toolkit(
        "gen", "datasets/metaworld_clar.py", "--tasks", *tasks, "--episodes", str(episodes),
        "--val", str(val), "--max-steps", str(max_steps), "--no-progress", *extra,
        "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


# Lives here, not in a test module: with --import-mode=importlib a test module is named
# tests.engine.test_x, which a spawned rollout worker (sys.path has tests/, not the repo root)
# cannot import when it unpickles the policy.
class DampedExpert:
    """The scripted expert at a fraction of its action (so episode lengths vary with the seed);
    logs the pid of the process that plays each episode."""

    def __init__(self, expert, scale: float, pid_log: str):
        self.expert, self.scale, self.pid_log = expert, scale, pid_log

    def reset(self):
        import os

        self.expert.reset()
        with open(self.pid_log, "a") as f:
            f.write(f"{os.getpid()}\n")

    def select_action(self, obs):
        import numpy as np

        return self.scale * np.asarray(self.expert.select_action(obs))
