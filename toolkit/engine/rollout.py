"""Closed-loop evaluation: roll a policy out in a suite's task and measure its success rate.

The CLAR / Lift3D protocol: ``R`` rollouts per task (default 25) of at most ``max_steps`` steps
(MetaWorld: 200) from fixed, reproducible layouts; an episode succeeds if ``info["success"]``
is True at any step (rollouts stop there by default). Layouts come from the suite's evaluation
seed range (rollout ``i`` uses ``seed_offset + i``), disjoint from every demonstration seed, so
evaluations of different checkpoints see the same layouts and never the training ones.

Outputs, with ``out_dir``::

    out_dir/episode_<seed>.json     one record per rollout (written as each episode ends)
    out_dir/episode_<seed>.mp4      with video=True (camera RGB, imageio / ffmpeg)
    out_dir/summary.json            success rate, config and every record

The policy contract is :class:`toolkit.envs.base.Policy`: ``reset()`` before each episode and
``select_action(obs) -> (A,)`` every step.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from toolkit.envs.base import Env, Suite
from toolkit.utils.errors import ToolkitError
from toolkit.utils.io import atomic_write_text

__all__ = ["RolloutPool", "evaluate", "evaluate_tasks", "rollout_episode"]


def _check_policy(policy: Any) -> None:
    missing = [m for m in ("reset", "select_action") if not callable(getattr(policy, m, None))]
    if missing:
        raise ToolkitError(
            f"policy {type(policy).__name__} lacks {', '.join(missing)}: the evaluation harness "
            "needs reset() and select_action(obs) -> action (toolkit.envs.base.Policy)"
        )


def rollout_episode(
    env: Env,
    policy: Any,
    seed: int,
    max_steps: int,
    stop_on_success: bool = True,
    video_camera: str | None = None,
    obs_transform: Callable[[dict], dict] | None = None,
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Run one episode; return ``(record, frames)`` (frames only with ``video_camera``).

    ``record``: ``seed``, ``success`` (any step), ``steps`` taken, ``return`` (sum of rewards),
    ``first_success_step`` (1-based, or None), ``seconds``, and ``max_stage`` (the furthest
    task-progress stage, when the env reports ``info["stage"]``: CLAMP's partial success).
    """
    start = time.perf_counter()
    obs = env.reset(seed=seed)
    policy.reset()
    frames: list[np.ndarray] = []
    if video_camera is not None:
        frames.append(env.render_rgb(video_camera))
    total, success, first, steps = 0.0, False, None, 0
    max_stage = None  # partial success (ALOHA's progress stages), when the env reports it
    for t in range(max_steps):
        action = policy.select_action(obs_transform(obs) if obs_transform else obs)
        obs, reward, done, info = env.step(np.asarray(action))
        steps = t + 1
        total += float(reward)
        if video_camera is not None:
            frames.append(env.render_rgb(video_camera))
        if info.get("stage") is not None:
            max_stage = max(int(info["stage"]), -1 if max_stage is None else max_stage)
        if info.get("success") and not success:
            success, first = True, steps
        if done or (success and stop_on_success):
            break
    record = {
        "seed": int(seed),
        "success": bool(success),
        "steps": steps,
        "return": round(total, 4),
        "first_success_step": first,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if max_stage is not None:
        record["max_stage"] = max_stage
    return record, frames


def _write_video(path: str, frames: Sequence[np.ndarray], fps: int) -> None:
    """MP4 (H.264) of ``frames``, written to a hidden temporary ``.mp4`` then renamed."""
    import imageio.v2 as imageio

    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.partial.mp4")  # ffmpeg needs the suffix
    try:
        # macro_block_size=1: keep odd sizes as they are (no resize warning).
        with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(np.asarray(frame, dtype=np.uint8))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _episode(
    env: Env,
    policy: Any,
    seed: int,
    want_video: bool,
    job: dict[str, Any],
    obs_transform: Callable[[dict], dict] | None = None,
) -> dict[str, Any]:
    """One rollout of :func:`evaluate`, its JSON record (and MP4) written to ``job["out_dir"]``."""
    cam = job["video_camera"] or env.cameras[0].name
    record, frames = rollout_episode(
        env,
        policy,
        seed,
        job["max_steps"],
        stop_on_success=job["stop_on_success"],
        video_camera=cam if want_video else None,
        obs_transform=obs_transform,
    )
    record["video"] = None
    out_dir = job["out_dir"]
    if out_dir is not None:
        if want_video and frames:
            path = os.path.join(out_dir, f"episode_{seed}.mp4")
            _write_video(path, frames, job["video_fps"])
            record["video"] = path
        atomic_write_text(
            os.path.join(out_dir, f"episode_{seed}.json"),
            json.dumps({"suite": job["suite_name"], "task": job["task"], **record}, indent=1),
        )
    return record


def _pickle_for_workers(
    policy: Any, env: Env | None, obs_transform: Any
) -> tuple[bytes | None, str]:
    """The policy pickled for :class:`RolloutPool` workers, or ``(None, why not)``.

    The bytes are what the pool ships, so the picklability check and the copy are one pass
    over a possibly large encoder."""
    import pickle

    if env is not None:
        return None, "an env object was passed in; workers build their own"
    if obs_transform is not None:
        return (
            None,
            "obs_transform is given: it may count episodes in order (language instructions)",
        )
    try:
        return pickle.dumps(policy), ""
    except Exception as exc:  # any pickling failure means: no copy for the workers
        return None, f"the policy cannot be pickled for the workers: {type(exc).__name__}: {exc}"


# Per worker process of a RolloutPool: its envs (by task and options) and the latest policy.
_WORKER: dict[str, Any] = {"envs": {}, "token": None, "policy": None}


def _init_pool_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _pool_episode(
    token: str,
    policy_path: str,
    suite: Suite,
    env_key: str,
    cameras: Any,
    env_kwargs: dict,
    seed: int,
    want_video: bool,
    job: dict[str, Any],
) -> dict[str, Any]:
    import pickle

    if _WORKER["token"] != token:  # a new policy (new checkpoint): load it once
        try:
            with open(policy_path, "rb") as f:
                _WORKER["policy"] = pickle.load(f)
        except (ModuleNotFoundError, AttributeError) as e:
            # The policy pickled in the parent, but its class is not importable here: it was
            # defined in a module the spawned process cannot import by that name.
            raise ToolkitError(
                f"rollout worker {os.getpid()} cannot load the policy ({e}): its class must be "
                f"importable by its module name from a spawned process (sys.path={sys.path[:4]}...); "
                "define it in an importable module or evaluate with workers=1"
            ) from None
        _WORKER["token"] = token
    envs = _WORKER["envs"]
    if env_key not in envs:
        envs[env_key] = suite.make_env(
            job["task"], cameras=cameras, max_steps=job["max_steps"], **env_kwargs
        )
    return _episode(envs[env_key], _WORKER["policy"], seed, want_video, job)


class RolloutPool:
    """``workers`` spawned processes that play :func:`evaluate`'s episodes.

    Each worker keeps the envs it has built (per task and options) and the latest policy, so
    the start-up (imports, env build) is paid once per pool, not per evaluation: keep one pool
    for a whole training run (``RolloutEvalHook`` does) and ``close()`` it at the end.
    ``spawn`` rather than ``fork``: the parent may hold an OpenGL context and OpenMP threads,
    neither of which survives a fork. The policy travels once per evaluation through a
    temporary pickle file (a large encoder would be costly to send with every episode).

    Args:
        workers: processes (>= 1).
        threads: torch intra-op threads per process. Default 1.
    """

    def __init__(self, workers: int, threads: int = 1) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if int(workers) < 1:
            raise ToolkitError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_pool_worker,
            initargs=(threads,),
        )

    def run(
        self,
        suite: Suite,
        policy_blob: bytes,
        seeds: Sequence[int],
        n_video: int,
        job: dict[str, Any],
        cameras: Any,
        env_kwargs: dict,
        done: Callable[[dict[str, Any]], None],
    ) -> None:
        """Play ``seeds`` (episodes handed out one at a time); ``done(record)`` as each ends.
        ``policy_blob``: the pickled policy (see :func:`_pickle_for_workers`)."""
        import tempfile
        import uuid
        from concurrent.futures import as_completed

        token = f"{os.getpid()}-{uuid.uuid4().hex}"
        env_key = repr((job["task"], cameras, job["max_steps"], sorted(env_kwargs.items())))
        fd, path = tempfile.mkstemp(prefix="toolkit-policy-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(policy_blob)
            futures = [
                self._pool.submit(
                    _pool_episode,
                    token,
                    path,
                    suite,
                    env_key,
                    cameras,
                    env_kwargs,
                    s,
                    i < n_video,
                    job,
                )  # fmt: skip
                for i, s in enumerate(seeds)
            ]
            try:
                for fut in as_completed(futures):
                    done(fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        finally:
            os.remove(path)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def evaluate(
    suite: Suite | str,
    task: str,
    policy: Any,
    num_episodes: int = 25,
    max_steps: int | None = None,
    seed_offset: int | None = None,
    out_dir: str | None = None,
    video: bool | int = False,
    progress: bool = True,
    cameras=None,
    stop_on_success: bool = True,
    video_camera: str | None = None,
    video_fps: int = 30,
    obs_transform: Callable[[dict], dict] | None = None,
    env: Env | None = None,
    workers: int = 1,
    worker_threads: int = 1,
    pool: RolloutPool | None = None,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Roll ``policy`` out ``num_episodes`` times in ``task``; return its success rate.

    Args:
        suite: a :class:`Suite` or its name (``"metaworld"``).
        task: task name (unknown names raise, listing the valid ones).
        policy: an object with ``reset()`` and ``select_action(obs) -> (A,)``.
        num_episodes: rollouts (R); rollout ``i`` uses layout seed ``seed_offset + i``.
        max_steps: step limit per rollout (default: the suite's horizon).
        seed_offset: first evaluation seed (default: the suite's ``eval_seed_offset``).
        out_dir: write per-episode JSON records (+ videos) and ``summary.json`` here.
        video: ``True`` writes an MP4 of every rollout, an int ``k`` of the first ``k``.
        progress: show a tqdm bar with the running success rate.
        cameras: cameras of the env (default: the suite's); the video uses ``video_camera``
            or the first of them.
        stop_on_success: end a rollout at its first success (the success rate is the same).
        obs_transform: applied to each observation before the policy (e.g. add a language
            embedding).
        env: reuse an already built env of this task (its cameras / options are kept).
        workers: roll out in this many processes at once (each builds its own env and gets a
            copy of the policy; episodes are handed out one at a time). Every record is the
            same as with ``workers=1``: a rollout depends only on its seed and the policy.
            Falls back to one process, with a warning, when ``env`` or ``obs_transform`` is
            given (they are tied to this process / count episodes in order) or when the policy
            cannot be pickled.
        worker_threads: torch threads per worker process.
        pool: play the episodes in this :class:`RolloutPool` (kept across calls, so its
            workers start once); overrides ``workers``.
        **env_kwargs: more arguments of ``suite.make_env`` (e.g. ``rgb=False``).

    Returns:
        ``dict(suite, task, success_rate, num_episodes, successes, mean_return, mean_steps,
        seeds, max_steps, seconds, episodes=[record, ...])``; each record has ``seed``,
        ``success``, ``steps``, ``return``, ``first_success_step``, ``seconds`` and ``video``
        (path or None).
    """
    from toolkit.envs import get_suite

    suite = get_suite(suite)
    task = suite.check_task(task)
    _check_policy(policy)
    if int(num_episodes) <= 0:
        raise ToolkitError(f"num_episodes must be positive, got {num_episodes}")
    max_steps = int(max_steps if max_steps is not None else suite.max_steps)
    if max_steps <= 0:
        raise ToolkitError(f"max_steps must be positive, got {max_steps}")
    offset = int(seed_offset if seed_offset is not None else suite.eval_seed_offset)
    seeds = [offset + i for i in range(int(num_episodes))]
    overlap = [s for s in seeds if s in suite.demo_seeds]
    if overlap:
        warnings.warn(
            f"evaluation seeds {overlap[0]}..{overlap[-1]} overlap the {suite.name} demonstration "
            f"seed range {suite.demo_seeds}: the policy may be evaluated on training layouts",
            stacklevel=2,
        )
    n_video = len(seeds) if video is True else max(0, int(video or 0))

    if int(workers) < 1:
        raise ToolkitError(f"workers must be >= 1, got {workers}")
    workers = pool.workers if pool is not None else min(int(workers), len(seeds))
    blob = None
    if workers > 1:
        blob, why = _pickle_for_workers(policy, env, obs_transform)
        if blob is None:
            warnings.warn(f"evaluate: rolling out in one process ({why})", stacklevel=2)
            workers, pool = 1, None
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds), desc=f"eval {suite.name}/{task}", unit="ep", leave=False)
    records: list[dict[str, Any]] = []

    def done(record: dict[str, Any]) -> None:
        records.append(record)
        if bar is not None:
            wins = sum(r["success"] for r in records)
            bar.set_postfix(sr=f"{wins}/{len(records)}")
            bar.update(1)

    job = dict(
        suite_name=suite.name,
        task=task,
        max_steps=max_steps,
        stop_on_success=stop_on_success,
        out_dir=out_dir,
        video_fps=video_fps,
        video_camera=video_camera,
    )
    start = time.perf_counter()
    try:
        if workers > 1:
            if pool is not None:
                pool.run(suite, blob, seeds, n_video, job, cameras, env_kwargs, done)
            else:
                with RolloutPool(workers, worker_threads) as own_pool:
                    own_pool.run(suite, blob, seeds, n_video, job, cameras, env_kwargs, done)
        else:
            own_env = env is None
            if own_env:
                env = suite.make_env(task, cameras=cameras, max_steps=max_steps, **env_kwargs)
            try:
                for i, seed in enumerate(seeds):
                    done(_episode(env, policy, seed, i < n_video, job, obs_transform))
            finally:
                if own_env:
                    env.close()
    finally:
        if bar is not None:
            bar.close()
    records.sort(key=lambda r: r["seed"])

    successes = sum(r["success"] for r in records)
    result = {
        "suite": suite.name,
        "task": task,
        "success_rate": successes / len(records),
        "num_episodes": len(records),
        "successes": successes,
        "mean_return": float(np.mean([r["return"] for r in records])),
        "mean_steps": float(np.mean([r["steps"] for r in records])),
        "seeds": seeds,
        "max_steps": max_steps,
        "seconds": round(time.perf_counter() - start, 2),
        "episodes": records,
    }
    stages = [r["max_stage"] for r in records if "max_stage" in r]
    if stages:  # partial success: how far rollouts get, and the share reaching each stage
        result["mean_max_stage"] = float(np.mean(stages))
        result["stage_reached"] = {
            int(k): float(np.mean([s >= k for s in stages])) for k in range(1, max(stages) + 1)
        }
    if out_dir is not None:
        atomic_write_text(os.path.join(out_dir, "summary.json"), json.dumps(result, indent=1))
    return result


def evaluate_tasks(
    suite: Suite | str,
    tasks: Iterable[str],
    policy_for: Callable[[str], Any],
    out_dir: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`evaluate` over several tasks; ``policy_for(task)`` gives each task's policy.

    Returns ``dict(success_rate=mean over tasks, per_task={task: success_rate},
    results={task: evaluate(...)})``; with ``out_dir`` each task writes to ``out_dir/<task>``
    and the overview goes to ``out_dir/summary.json``.
    """
    from toolkit.envs import get_suite

    suite = get_suite(suite)
    results = {}
    for task in tasks:
        sub = os.path.join(out_dir, task) if out_dir is not None else None
        results[task] = evaluate(suite, task, policy_for(task), out_dir=sub, **kwargs)
    per_task = {t: r["success_rate"] for t, r in results.items()}
    mean = float(np.mean(list(per_task.values()))) if per_task else math.nan
    out = {"suite": suite.name, "success_rate": mean, "per_task": per_task, "results": results}
    if out_dir is not None:
        brief = {k: v for k, v in out.items() if k != "results"}
        atomic_write_text(os.path.join(out_dir, "summary.json"), json.dumps(brief, indent=1))
    return out
