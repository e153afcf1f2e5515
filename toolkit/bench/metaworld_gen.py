"""``toolkit bench metaworld_gen``: MetaWorld data-generation throughput.

Measures env steps per second of what ``toolkit gen datasets/metaworld_clar.py`` does per step
(scripted expert, physics, depth render, unprojection + crop + FPS to a 1024-point cloud, and
optionally RGB and writing the episode file), in one process and with ``--workers`` processes
(each with its own env and renderer), plus a per-stage breakdown in one process. Numbers
depend on the CPU and on other load: they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

HELP = "MetaWorld data generation throughput (steps/s: depth + point cloud, 1 vs N processes)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="hammer")
    p.add_argument("--steps", type=int, default=200, help="env steps per process and setting")
    p.add_argument("--workers", type=int, nargs="+", default=[2], help="process counts to try")
    p.add_argument("--camera", default="corner")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument("--rgb", action="store_true", help="also render RGB every step")
    p.add_argument("--write", action="store_true", help="also write an episode file (gzip)")


def _setup_process() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)


def _make(args_d: dict[str, Any], points: bool = True):
    from toolkit.envs import get_suite

    suite = get_suite("metaworld")
    env = suite.make_env(
        args_d["task"],
        cameras={args_d["camera"]: (args_d["size"], args_d["size"])},
        num_points=args_d["num_points"],
        rgb=args_d["rgb"],
        depth=True,
        points=points,
        max_steps=10**6,
    )
    return suite, env


def _loop(args_d: dict[str, Any]) -> dict[str, float]:
    """One process: ``steps`` expert steps with observation rendering; returns timings."""
    _setup_process()
    suite, env = _make(args_d)
    expert = suite.expert(args_d["task"])
    obs = env.reset(seed=0)
    expert.reset()
    writer = None
    tmp = None
    if args_d["write"]:
        from toolkit.data.episodes import EpisodeWriter

        tmp = tempfile.mkdtemp(prefix="bench_mw_")
        cams = {c.name: c.size for c in env.cameras}
        writer = EpisodeWriter(
            os.path.join(tmp, "ep.hdf5"),
            suite="metaworld",
            task=env.task,
            seed=0,
            cameras=cams,
            compression_level=1,  # as `toolkit gen` writes
        )
    start = time.perf_counter()
    seed = 0
    for t in range(args_d["steps"]):
        action = expert.select_action(obs)
        nxt, _r, _done, info = env.step(action)
        if writer is not None:
            writer.add_step(
                rgb=obs.get("rgb"),
                depth=obs["depth"],
                intrinsics=obs["intrinsics"],
                extrinsics=obs["extrinsics"],
                qpos=obs["qpos"],
                action=action,
                proprio=obs["proprio"],
                success=bool(info["success"]),
                extras={"point_cloud": obs["points"]},
            )
        obs = nxt
        if (t + 1) % 200 == 0:  # keep the expert busy: new layout every 200 steps
            seed += 1
            obs = env.reset(seed=seed)
            expert.reset()
    if writer is not None:
        writer.finish(success=True)
    seconds = time.perf_counter() - start
    env.close()
    if tmp is not None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return {"steps": args_d["steps"], "seconds": seconds}


def _breakdown(args_d: dict[str, Any], n: int = 50) -> dict[str, float]:
    """Milliseconds per call of each stage, in this process."""
    import numpy as np

    from toolkit.ops.cameras import depth_to_points
    from toolkit.ops.pointcloud import process_cloud

    _setup_process()
    suite, env = _make({**args_d, "rgb": False}, points=False)
    expert = suite.expert(args_d["task"])
    obs = env.reset(seed=0)
    cam = args_d["camera"]
    out: dict[str, float] = {}

    def timed(name, fn):
        fn()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out[name] = (time.perf_counter() - t0) / n * 1e3

    # Physics from one state over and over is as costly as along an episode.
    timed("expert + physics step", lambda: env.raw.step(expert.select_action(obs)))
    timed("depth render", lambda: env.render_depth(cam))
    timed("rgb render (shadows off)", lambda: env.render_rgb(cam))
    depth = env.render_depth(cam)
    K, T = env.camera_params(cam)
    timed("unproject (toolkit.ops.cameras)", lambda: depth_to_points(depth, K, T, max_depth=10.0))
    pts = np.asarray(depth_to_points(depth, K, T, max_depth=10.0)[0], dtype=np.float32)
    timed(
        "crop + bucket FPS (toolkit.ops.pointcloud)",
        lambda: process_cloud(pts, bounds=env.bounds, n=args_d["num_points"]),
    )
    out["cloud points before crop"] = float(len(pts))
    env.close()
    return out


def run(args: argparse.Namespace) -> int:
    import multiprocessing as mp

    args_d = {
        "task": args.task,
        "steps": args.steps,
        "camera": args.camera,
        "size": args.size,
        "num_points": args.num_points,
        "rgb": bool(args.rgb),
        "write": bool(args.write),
    }
    what = (
        "depth + point cloud" + (" + RGB" if args.rgb else "") + (" + write" if args.write else "")
    )
    print(f"MetaWorld generation throughput: {args.task}, {args.camera} {args.size}px, {what}")
    print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")

    br = _breakdown(args_d)
    print("\nper stage, one process (ms per call):")
    for k, v in br.items():
        print(f"  {k:44s} {v:8.2f}" if "points" not in k else f"  {k:44s} {int(v):8d}")

    ctx = mp.get_context("spawn")
    rows = []
    base = None
    for w in [1, *[w for w in args.workers if w > 1]]:
        start = time.perf_counter()
        if w == 1:
            res = [_loop(args_d)]
        else:
            with ctx.Pool(w) as pool:
                res = pool.map(_loop, [args_d] * w)
        wall = time.perf_counter() - start
        steps = sum(r["steps"] for r in res)
        # Throughput over the stepping itself (env construction and EGL start excluded).
        sps = steps / max(r["seconds"] for r in res)
        base = base or sps
        rows.append((w, steps, sps, wall))
    print("\nprocesses  steps  steps/s  speed-up  wall s (incl. start-up)")
    for w, steps, sps, wall in rows:
        print(f"{w:9d} {steps:6d} {sps:8.1f} {sps / base:8.2f}x {wall:9.1f}")
    per_ep = 200 / rows[-1][2]
    print(f"\n=> one 200-step episode every {per_ep:.1f} s with {rows[-1][0]} process(es)")
    return 0
