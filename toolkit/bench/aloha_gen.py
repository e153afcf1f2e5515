"""``toolkit bench aloha_gen``: ALOHA data-generation throughput (issue #6).

For each image size (default: the four CLAMP RGB-D cameras front_left, back_right, left_wrist,
right_wrist at 224x224 and at 480x640, RGB + depth + a 4096-point merged cloud):

(a) a per-stage breakdown in this process along ``--breakdown-steps`` expert steps: physics +
    expert (state only), the whole observed step as generation does it, RGB render, depth
    render (depth mode), RGB + depth from one render pass (``MujocoRig.rgbd``), the cloud's
    stages (unproject + crop + merge, FPS, the env's whole ``point_cloud``) and the HDF5 write
    of one step (gzip level 1 as ``toolkit gen`` writes, plus other compressions for
    comparison); wall and CPU milliseconds per step (CPU time counts every thread of the
    process, e.g. llvmpipe's render threads), then the predicted episodes per hour per core;
(b) real end-to-end generation of ``--episodes`` episodes through
    :func:`toolkit.data.generate.generate` (dry run, then the recording run) with one worker and
    with ``--workers W``: episodes per hour per core (wall clock, ``W`` processes count as
    ``min(W, cores)`` cores), the ratio to the issue's target of 60, and episodes per CPU hour
    (CPU time of the run and its workers: less sensitive to other load on the machine).

Markdown tables are printed; nothing is asserted (figures move with the machine's load: the
load average is printed before and after).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

HELP = "ALOHA generation throughput: episodes/hour/core with 4 RGB-D cameras, per-stage ms/step"

#: Issue #6 target: episodes (400 steps, 4 cameras at 224x224) per hour per core.
TARGET_EP_PER_HOUR_PER_CORE = 60.0
#: HDF5 compressions timed in the breakdown: (label, compression, gzip level).
WRITE_VARIANTS: tuple[tuple[str, str | None, int], ...] = (
    ("gzip 1", "gzip", 1),
    ("gzip 4", "gzip", 4),
    ("lzf", "lzf", 1),
    ("none", None, 1),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from toolkit.envs.aloha.cameras import DEFAULT_CAMERAS

    p.add_argument("--task", default="mug_on_plate", help="mug_on_plate or drawer_open")
    p.add_argument("--cameras", nargs="+", default=list(DEFAULT_CAMERAS))
    p.add_argument(
        "--sizes", nargs="+", default=["224x224", "480x640"], help="image sizes HxW (or S)"
    )
    p.add_argument("--num-points", type=int, default=4096)
    p.add_argument("--breakdown-steps", type=int, default=50, help="steps of the breakdown")
    p.add_argument("--episodes", type=int, default=2, help="episodes per end-to-end run")
    p.add_argument(
        "--episode-steps", type=int, default=400, help="steps per episode (task horizon: 400)"
    )
    p.add_argument("--workers", type=int, default=2, help="W of the second end-to-end run")
    p.add_argument("--no-breakdown", action="store_true", help="skip (a)")
    p.add_argument("--no-e2e", action="store_true", help="skip (b)")
    p.add_argument("--tmp", default=None, help="scratch folder (default: the system's)")


def _size(text: str) -> tuple[int, int]:
    h, _, w = str(text).lower().partition("x")
    return int(h), int(w or h)


def _setup_process() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)


class _Clock:
    """Accumulates wall and CPU (all threads of this process) seconds per stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def time(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, its wall and CPU time added to stage ``name``."""
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w0
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0
        return out

    def per_step_ms(self, name: str, steps: int) -> tuple[float, float]:
        return self.wall[name] / steps * 1e3, self.cpu[name] / steps * 1e3


def _merged_points(env, depth: dict[str, np.ndarray]) -> np.ndarray:
    """An env without ``merged_points``: the generic unprojection, ``(M, 3)`` float32."""
    from toolkit.envs.rig_env import to_numpy
    from toolkit.ops.cameras import depth_to_points

    parts = []
    for cam in env.point_cameras:
        K, T = env.camera_params(cam)
        pts, _ = depth_to_points(depth[cam], K, T, max_depth=env.max_depth)
        parts.append(to_numpy(pts).astype(np.float32, copy=False))
    return np.concatenate(parts, axis=0)


def _crop(points: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    lo, hi = np.asarray(bounds, dtype=points.dtype)
    return points[np.all((points >= lo) & (points <= hi), axis=1)]


DRY = "physics + expert (state only: the dry run)"
ACTION = "expert action + sim state (recording run)"
OBSERVE = "env step + full observation (as recorded)"
RGB = "RGB render, one pass per camera"
DEPTH = "depth render (depth mode), one pass per camera"
RGBD = "RGB + depth from one pass per camera (rig.rgbd)"
CLOUD = "cloud: unproject + crop + merge (env.merged_points)"
SUM = "**sum: dry run + recording + gzip-1 write**"


def _dry_step(env, expert, obs: dict[str, Any]):
    return env.step(expert.select_action(obs))


def _action_and_state(env, expert, obs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What generation does before each recorded step (toolkit.data.generate_worker)."""
    action = expert.select_action(obs)
    return action, {**env.sim_state(), "stage": getattr(expert, "stage", None)}


def _each(fn: Callable[[Any, str], np.ndarray], data, names: Sequence[str]) -> list[np.ndarray]:
    return [fn(data, c) for c in names]


def breakdown(
    task: str,
    cameras: dict[str, tuple[int, int]],
    num_points: int,
    steps: int,
    tmp: str,
) -> list[tuple[str, float, float]]:
    """``[(stage, wall ms/step, CPU ms/step)]`` along ``steps`` expert steps, in this process."""
    from toolkit.data.episodes import EpisodeWriter
    from toolkit.data.generate_worker import step_record
    from toolkit.envs import get_suite
    from toolkit.ops.sampling import downsample_points

    _setup_process()
    suite = get_suite("aloha")
    horizon = 10**6  # the breakdown never times out
    dry = suite.make_env(task, max_steps=horizon, rgb=False, depth=False, points=False)
    full = suite.make_env(
        task, cameras=cameras, num_points=num_points, max_steps=horizon, points=True
    )
    ex_dry, ex_full = suite.expert(task), suite.expert(task)
    clock = _Clock()
    folder = tempfile.mkdtemp(prefix="bench_aloha_gen_", dir=tmp)
    # the one-pass row: absent on a rig without rgbd, marked when it falls back to two passes
    one_pass = None
    if hasattr(full.rig, "rgbd"):
        one_pass = "" if full.rig.one_pass else " (falls back to two passes)"
    n_kept: list[int] = []
    writers: dict[str, EpisodeWriter] = {}
    try:
        for i, (label, comp, level) in enumerate(WRITE_VARIANTS):
            writers[label] = EpisodeWriter(
                os.path.join(folder, f"ep_{i}.hdf5"),
                suite="aloha",
                task=task,
                seed=0,
                cameras=cameras,
                compression=comp,
                compression_level=level,
                fsync=False,  # generation fsyncs once per episode: not a per-step cost
            )
        obs_d, obs = dry.reset(seed=0), full.reset(seed=0)
        ex_dry.reset()
        ex_full.reset()
        rig, data = full.rig, full.data
        names = list(cameras)
        for _ in range(steps):
            obs_d, *_ = clock.time(DRY, _dry_step, dry, ex_dry, obs_d)
            action, state = clock.time(ACTION, _action_and_state, full, ex_full, obs)
            prev = obs
            obs, _r, _done, info = clock.time(OBSERVE, full.step, action)
            clock.time(RGB, _each, rig.rgb, data, names)
            depth = dict(zip(names, clock.time(DEPTH, _each, rig.depth, data, names)))
            if one_pass is not None:
                clock.time(RGBD + one_pass, _each, rig.rgbd, data, names)
            if hasattr(full, "merged_points"):  # the env crops while unprojecting
                kept = clock.time(CLOUD, full.merged_points, depth, full.bounds)
            else:
                cloud = clock.time("cloud: unproject + merge", _merged_points, full, depth)
                kept = clock.time("cloud: crop", _crop, cloud, full.bounds)
            n_kept.append(len(kept))
            if len(kept) >= num_points:
                clock.time("cloud: FPS", downsample_points, kept, num_points, full.sample_method)
            clock.time("cloud: total (env.point_cloud)", full.point_cloud, depth)
            for label, w in writers.items():
                clock.time(
                    f"HDF5 write ({label})",
                    w.add_step,
                    **step_record(prev, action, state, bool(info["success"])),
                )
        for label, w in writers.items():
            clock.time(f"HDF5 write ({label})", w.finish, success=True)
        sample_method = full.sample_method
        sizes = {
            label: os.path.getsize(os.path.join(folder, f"ep_{i}.hdf5")) / steps / 1e6
            for i, (label, _c, _l) in enumerate(WRITE_VARIANTS)
        }
    finally:
        for w in writers.values():
            w.abort()
        dry.close()
        full.close()
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for name in clock.wall:
        wall, cpu = clock.per_step_ms(name, steps)
        if name.startswith("HDF5 write"):
            name = f"{name}, {sizes[name[12:-1]]:.2f} MB/step"
        elif name == "cloud: FPS":
            name = f"cloud: FPS ({sample_method}, {np.mean(n_kept) / 1e3:.0f}k -> {num_points} pts)"
        rows.append((name, wall, cpu))
    return rows


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (generation workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def end_to_end(
    task: str,
    cameras: dict[str, tuple[int, int]],
    num_points: int,
    episodes: int,
    steps: int,
    workers: int,
    tmp: str,
) -> dict[str, Any]:
    """Generate ``episodes`` episodes with ``toolkit.data.generate``; timings and counts."""
    from toolkit.data.generate import GenConfig, generate
    from toolkit.envs.aloha import seeds as S

    out = tempfile.mkdtemp(prefix="bench_aloha_gen_e2e_", dir=tmp)
    cfg = GenConfig(
        suite="aloha",
        tasks=[task],
        splits={"train": (episodes, S.TRAIN_SEEDS)},
        out=out,
        cameras=dict(cameras),
        num_points=num_points,
        max_steps=steps,
        workers=workers,
        expert_name="toolkit IK (toolkit.envs.aloha)",
    )
    try:
        w0, c0 = time.perf_counter(), _cpu_seconds()
        summary = generate(cfg, progress=False)
        wall, cpu = time.perf_counter() - w0, _cpu_seconds() - c0
        files = [
            os.path.join(root, f)
            for root, _d, names in os.walk(out)
            for f in names
            if f.endswith(".hdf5")
        ]
        mb = sum(os.path.getsize(f) for f in files) / max(len(files), 1) / 1e6
    finally:
        shutil.rmtree(out, ignore_errors=True)
    n = int(summary["episodes_written"])
    cores = min(workers, os.cpu_count() or 1)
    ep_h = n / wall * 3600.0
    return {
        "workers": workers,
        "episodes": n,
        "failed": int(summary["new_failures"]),
        "wall_s": wall,
        "cpu_s": cpu,
        "ep_per_h": ep_h,
        "ep_per_h_core": ep_h / cores,
        "ep_per_cpu_h": n / cpu * 3600.0 if cpu > 0 else float("nan"),
        "mb_per_episode": mb,
    }


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


E2E_HEADER = (
    "| setting | workers | episodes (failed seeds) | wall s | core-s/episode | ep/h | ep/h/core | "
    "vs 60 target | CPU s/episode | ep/CPU-hour | MB/episode | load 1 min |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _e2e_row(setting: str, r: dict[str, Any]) -> str:
    n = max(r["episodes"], 1)
    cores = min(r["workers"], os.cpu_count() or 1)
    return (
        f"| {setting} | {r['workers']} | {r['episodes']} ({r['failed']}) | {r['wall_s']:.1f} | "
        f"{r['wall_s'] * cores / n:.1f} | {r['ep_per_h']:.1f} | {r['ep_per_h_core']:.1f} | "
        f"{r['ep_per_h_core'] / TARGET_EP_PER_HOUR_PER_CORE:.2f}x | {r['cpu_s'] / n:.1f} | "
        f"{r['ep_per_cpu_h']:.1f} | {r['mb_per_episode']:.0f} | {os.getloadavg()[0]:.1f} |"
    )


def run(args: argparse.Namespace) -> int:
    from toolkit.envs.aloha.env import check_cameras
    from toolkit.envs.base import CameraSpec

    sizes = [_size(s) for s in args.sizes]
    check_cameras([CameraSpec(c, 1, 1) for c in args.cameras])
    tmp = args.tmp or tempfile.gettempdir()
    os.makedirs(tmp, exist_ok=True)
    print(
        f"ALOHA generation throughput: {args.task}, cameras {', '.join(args.cameras)}, "
        f"RGB + depth + {args.num_points}-point cloud"
    )
    print(f"CPU cores: {os.cpu_count()}, load average (1/5/15 min) at start: {_load()}")

    settings = [(f"{h}x{w}", {c: (h, w) for c in args.cameras}) for h, w in sizes]
    if not args.no_breakdown:
        print(f"\n(a) per stage, one process, {args.breakdown_steps} steps (ms per step)\n")
        print("| setting | stage | wall ms/step | CPU ms/step |")
        print("|---|---|---|---|")
        for setting, cams in settings:
            rows = breakdown(args.task, cams, args.num_points, args.breakdown_steps, tmp)
            for name, wall, cpu in rows:
                print(f"| {setting} | {name} | {wall:.1f} | {cpu:.1f} |")
            by = {name.split(",")[0]: (wall, cpu) for name, wall, cpu in rows}
            dry, rec, obs, wr = by[DRY], by[ACTION], by[OBSERVE], by["HDF5 write (gzip 1)"]
            tot_w = dry[0] + rec[0] + obs[0] + wr[0]
            tot_c = dry[1] + rec[1] + obs[1] + wr[1]
            print(f"| {setting} | {SUM} | {tot_w:.1f} | {tot_c:.1f} |")
            steps = args.episode_steps
            print(
                f"| {setting} | => predicted ep/h/core ({steps} steps; by wall, by CPU time) | "
                f"{3.6e6 / (steps * tot_w):.1f} | {3.6e6 / (steps * tot_c):.1f} |",
                flush=True,
            )

    if not args.no_e2e:
        print(
            f"\n(b) end-to-end `toolkit.data.generate`: {args.task}, {args.episode_steps} steps "
            "per episode (dry run + recording + write, start-up included)\n"
        )
        print(E2E_HEADER, flush=True)
        for setting, cams in settings:
            for w in [1] + ([args.workers] if args.workers > 1 else []):
                n = max(args.episodes, w)
                r = end_to_end(args.task, cams, args.num_points, n, args.episode_steps, w, tmp)
                print(_e2e_row(setting, r), flush=True)
    print(f"\nload average (1/5/15 min) at the end: {_load()}")
    return 0
