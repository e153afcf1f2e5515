"""Worker side of :mod:`toolkit.data.generate`: one seed = a dry run, then a recording.

Every function here runs in a generation process (or inline with ``workers=1``); envs are built
once per process and task.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from toolkit.data.generate import GenConfig, episode_path, failure_path
from toolkit.utils.errors import ToolkitError
from toolkit.utils.io import atomic_write_text

_WORKER: dict[str, Any] = {}


def _init_worker() -> None:
    """Per-process setup: offscreen EGL rendering, one torch thread (workers are processes)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def _envs(cfg: GenConfig, task: str):
    """This process's (state-only env, rendering env) of ``task``, built once."""
    from toolkit.envs import get_suite

    key = (cfg.suite, task)
    if key not in _WORKER:
        suite = get_suite(cfg.suite)
        steps = cfg.steps_for(suite, task)
        dry = suite.make_env(task, max_steps=steps, rgb=False, depth=False, points=False)
        full = suite.make_env(
            task,
            cameras=cfg.cameras,
            max_steps=steps,
            num_points=cfg.num_points,
            rgb=cfg.rgb,
            depth=cfg.depth,
            points=True,
            **cfg.env_kwargs,
        )
        _WORKER[key] = (suite, dry, full)
    return _WORKER[key]


def dry_run(env, expert, seed: int, max_steps: int) -> tuple[bool, int | None]:
    """Run the expert without rendering: ``(success at any step, first success step)``."""
    obs = env.reset(seed=seed)
    expert.reset()
    for t in range(max_steps):
        obs, _r, done, info = env.step(expert.select_action(obs))
        if info["success"]:
            return True, t + 1
        if done:
            break
    return False, None


def record_episode(
    env,
    expert,
    seed: int,
    path: str,
    *,
    max_steps: int,
    config: Mapping[str, Any],
    split: str,
    compression: str | None = "gzip",
    compression_level: int = 1,
    depth_dtype: str = "float32",
) -> dict[str, Any]:
    """Roll the expert out for ``max_steps`` steps, writing every step to ``path``.

    Row ``t`` holds the observation at ``t``, the action taken from it and ``success`` after
    that action. Returns ``dict(success, steps, first_success_step)``; a failed episode is
    discarded (no file).
    """
    from toolkit.data.episodes import EpisodeWriter

    obs = env.reset(seed=seed)
    expert.reset()
    first = None
    cams = {c.name: (c.height, c.width) for c in env.cameras}
    with EpisodeWriter(
        path,
        suite=env.suite_name,
        task=env.task,
        seed=seed,
        config=dict(config),
        cameras=cams,
        compression=compression,
        compression_level=compression_level,
        depth_dtype=depth_dtype,
    ) as w:
        for t in range(max_steps):
            action = expert.select_action(obs)
            state = {**env.sim_state(), "stage": getattr(expert, "stage", None)}
            next_obs, _reward, done, info = env.step(action)
            if info["success"] and first is None:
                first = t + 1
            w.add_step(**step_record(obs, action, state, bool(info["success"])))
            obs = next_obs
            if done:
                break
        steps = len(w)
        if first is None:
            w.abort()
            return {"success": False, "steps": steps, "first_success_step": None}
        w.finish(
            success=True,
            extra_attrs={
                "split": split,
                "first_success_step": int(first),
                "description": env.description,
                "expert": repr(expert),
            },
        )
    return {"success": True, "steps": steps, "first_success_step": first}


def step_record(
    obs: Mapping[str, Any], action: Any, state: Mapping[str, Any], success: bool
) -> dict[str, Any]:
    """``EpisodeWriter.add_step`` keyword arguments for one recorded step (also what
    ``toolkit bench aloha_gen`` times)."""
    return dict(
        rgb=obs.get("rgb"),
        depth=obs.get("depth"),
        intrinsics=obs["intrinsics"],
        extrinsics=obs["extrinsics"],
        qpos=obs["qpos"],
        action=np.asarray(action, dtype=np.float32),
        proprio=obs["proprio"],
        ee_pose=obs.get("ee_pose"),
        state=state,
        success=success,
        extras=_extras(obs),
    )


def _extras(obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-step arrays stored under ``extras/``: the cloud, its mask, a numeric low-dim state."""
    out: dict[str, np.ndarray] = {}
    if obs.get("points") is not None:
        out["point_cloud"] = np.asarray(obs["points"])
        if obs.get("points_mask") is not None:
            out["point_mask"] = np.asarray(obs["points_mask"])
    state = obs.get("state")
    if isinstance(state, np.ndarray) and state.dtype.kind in "fiub":
        out["low_dim_state"] = np.asarray(state, dtype=np.float64)
    return out


def run_job(cfg: GenConfig, task: str, split: str, seed: int) -> dict[str, Any]:
    """One seed: dry run, then record if the expert succeeds, else write a failure record."""
    start = time.perf_counter()
    suite, dry, full = _envs(cfg, task)
    expert = suite.expert(task, stock=True) if cfg.stock_experts else suite.expert(task)
    max_steps = cfg.steps_for(suite, task)
    ok, first = dry_run(dry, expert, seed, max_steps)
    result: dict[str, Any] = {"task": task, "split": split, "seed": seed}
    if ok:
        path = episode_path(cfg.out, task, split, seed)
        rec = record_episode(
            full,
            expert,
            seed,
            path,
            max_steps=max_steps,
            config={**cfg.recipe(), "max_steps": max_steps},
            split=split,
            compression=cfg.compression,
            compression_level=cfg.compression_level,
            depth_dtype=cfg.depth_dtype,
        )
        if not rec["success"]:  # the dry run and the recorded run must agree (determinism)
            raise ToolkitError(
                f"{task} seed {seed}: the expert succeeded without rendering (step {first}) but "
                "failed while recording: the simulation is not deterministic"
            )
        result.update(rec, path=path)
    else:
        result.update(success=False, steps=max_steps, first_success_step=None)
        atomic_write_text(
            failure_path(cfg.out, task, split, seed),
            json.dumps({**result, "reason": f"expert did not succeed in {max_steps} steps"}),
        )
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def _close_worker_envs() -> None:
    for _suite, dry, full in _WORKER.values():
        dry.close()
        full.close()
    _WORKER.clear()


def _init_worker_inline() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
