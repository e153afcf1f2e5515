"""``toolkit bench policy``: cost of the CLAR behaviour-cloning protocol per point-cloud encoder.

For each encoder it builds a :class:`~toolkit.models.policies.PointCloudPolicy` (encoder +
``BNMLPHead``, as the MetaWorld recipes) and measures, on random clouds:

- ``train_ms``: one training step at ``--batch`` x ``--points`` (forward, MSE loss, backward,
  Adam step), the batch carrying an all-valid ``points_mask`` as the dataset does;
- ``infer_ms``: ``select_action`` on one observation (the closed-loop cost per env step);
- ``proto_h``: the projected wall time of the CLAR single-task protocol (formula printed).

A second group times one MetaWorld env step (``reach``, depth -> point cloud, ``rgb=False``),
the other part of the rollout cost. ``ratio`` columns divide by the fastest row. Times are
wall-clock medians after warm-up; nothing is asserted (CPU figures move with machine load).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from toolkit.utils.memory import tune_glibc_malloc

HELP = "train-step / inference / protocol-time table of the BC policy per encoder (+ env step)"

#: Encoder configs (BACKBONES) measured by default, by short name.
ENCODERS: dict[str, dict[str, Any]] = {
    "pointnet": dict(type="PointNet"),  # Lift3D's PointNet size: 64-128-1024
    "pointnet-256": dict(type="PointNet", mlp_dims=(64, 128, 256)),  # the CPU demo's
    "pointnet2": dict(type="PointNet2"),
    # CPU size (baselines/bc_pointnet2-tiny_1xb16_150e_metaworld.py): 128 x 16 + 32 x 16
    # neighbourhoods, half the widths
    "pointnet2-tiny": dict(
        type="PointNet2",
        num_centers=(128, 32),
        num_samples=(16, 16),
        mlp_dims=((32, 32, 64), (64, 64, 128)),
        global_mlp_dims=(128, 256, 512),
    ),
    "dp3": dict(type="DP3Encoder"),
    "pointmae-tiny": dict(type="PointMAE", arch="tiny", with_decoder=False),
    "pointmae-small": dict(type="PointMAE", arch="small", with_decoder=False),
    "pointmae-base": dict(type="PointMAE", arch="base", with_decoder=False),
}
QUICK_ENCODERS = ["pointnet-256", "pointnet2", "dp3", "pointmae-tiny"]
#: Smaller PointNet++ for --quick (the default one groups 512 x 32 points per cloud).
QUICK_OVERRIDES: dict[str, dict[str, Any]] = {
    "pointnet2": dict(num_centers=(64, 16), num_samples=(16, 16), radii=(0.1, 0.2)),
}

#: CLAR / Lift3D single-task MetaWorld protocol (recipes/_base_/policies/metaworld_bc.py).
PROTOCOL = dict(epochs=150, demos=25, demo_steps=200, eval_interval=10, episodes=25, max_steps=200)


def protocol_counts(batch: int) -> tuple[int, int]:
    """``(training iterations, env steps of the rollouts, at most)`` of the protocol.

    iterations = epochs * ceil(demos * demo_steps / batch) (150 * 313 = 46,950 at batch 16);
    env steps = (epochs / eval_interval) * episodes * max_steps (15 * 25 * 200 = 75,000).
    """
    p = PROTOCOL
    iters = p["epochs"] * math.ceil(p["demos"] * p["demo_steps"] / batch)
    rollouts = (p["epochs"] // p["eval_interval"]) * p["episodes"]
    return iters, rollouts * p["max_steps"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoders",
        nargs="+",
        choices=list(ENCODERS),
        default=None,
        help=f"default: all ({', '.join(ENCODERS)}); --quick: {' '.join(QUICK_ENCODERS)}",
    )
    p.add_argument("--batch", type=int, default=None, help="training batch (default 16; quick 2)")
    p.add_argument(
        "--points", type=int, default=None, help="points per cloud (default 1024; quick 128)"
    )
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default 10; quick 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    p.add_argument(
        "--env",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time a MetaWorld env step too (default: on, off with --quick)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time each encoder under torch.compile (prints compile time and speed-up)",
    )
    p.add_argument(
        "--tune-malloc",
        action="store_true",
        help="glibc malloc: no mmap for big blocks and no trimming, so freed tensors are reused "
        "without page faults (process-wide; see docs/performance.md)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, one timed step: a smoke run")


def _times_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _policy(encoder: dict[str, Any]):
    import toolkit.models  # noqa: F401  (registers the models)
    from toolkit.registry import MODELS

    return MODELS.build(
        dict(
            type="PointCloudPolicy",
            encoder=encoder,
            head=dict(type="BNMLPHead", hidden_dims=(256, 256, 256)),
            proprio_dim=4,
            action_dim=4,
        )
    )


def measure_encoder(
    encoder: dict[str, Any],
    batch: int,
    points: int,
    repeats: int,
    compile_encoder: bool = False,
    infer_repeats: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Parameters (M), train-step and ``select_action`` times (ms) of one policy."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    policy = _policy(encoder)
    params = sum(p.numel() for p in policy.parameters()) / 1e6
    g = torch.Generator().manual_seed(seed)
    data = dict(
        points=torch.rand(batch, points, 3, generator=g) * 0.8 - 0.4,  # a metric workspace
        points_mask=torch.ones(batch, points, dtype=torch.bool),
        proprio=torch.randn(batch, 4, generator=g),
        action=torch.rand(batch, 4, generator=g) * 2 - 1,
    )
    compile_s = float("nan")
    if compile_encoder:
        policy.encoder = torch.compile(policy.encoder)
    policy.train()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        policy.loss(data)["loss_bc"].backward()
        opt.step()

    if compile_encoder:  # the first step compiles (forward and backward)
        t0 = time.perf_counter()
        train_step()
        compile_s = time.perf_counter() - t0
    train = _times_ms(train_step, repeats)
    obs = dict(
        points=data["points"][0].numpy(),
        points_mask=np.ones(points, dtype=bool),
        proprio=data["proprio"][0].numpy(),
    )
    infer = _times_ms(lambda: policy.select_action(obs), infer_repeats, warmup=1)
    return dict(
        params_M=params,
        train_ms=statistics.median(train),
        train_best_ms=min(train),
        infer_ms=statistics.median(infer),
        compile_s=compile_s,
    )


def measure_env_step(repeats: int, task: str = "reach") -> dict[str, float]:
    """Time ``make_env`` (s), ``reset`` (ms) and ``step`` (ms, median / best) of MetaWorld."""
    import numpy as np

    import toolkit.envs  # noqa: F401  (registers the suites)
    from toolkit.registry import SUITES

    t0 = time.perf_counter()
    env = SUITES.build(dict(type="MetaWorldSuite")).make_env(task, seed=0, rgb=False)
    make_s = time.perf_counter() - t0
    try:
        reset = _times_ms(lambda: env.reset(seed=0), 1, warmup=0)[0]
        action = np.zeros(env.action_dim, dtype=np.float32)
        steps = _times_ms(lambda: env.step(action), max(repeats, 20), warmup=2)
    finally:
        env.close()
    return dict(
        make_s=make_s, reset_ms=reset, step_ms=statistics.median(steps), step_best_ms=min(steps)
    )


def _fmt_table(header: list[str], rows: list[tuple[str, list[float]]], fmt: list[str]) -> str:
    width = max([len("encoder")] + [len(r[0]) for r in rows])
    lines = ["  " + f"{'encoder':{width}}" + "".join(f"  {h:>13}" for h in header)]
    for name, values in rows:
        cells = "".join(f"  {format(v, f):>13}" for v, f in zip(values, fmt))
        lines.append(f"  {name:{width}}{cells}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    tuned = args.tune_malloc and tune_glibc_malloc()  # before the run's big tensors
    import torch

    import toolkit.models  # noqa: F401  (first: see the env step below)

    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    names = args.encoders or (QUICK_ENCODERS if quick else list(ENCODERS))
    batch = args.batch or (2 if quick else 16)
    points = args.points or (128 if quick else 1024)
    repeats = args.repeats or (1 if quick else 10)
    with_env = (not quick) if args.env is None else args.env
    iters, env_steps = protocol_counts(batch)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    malloc = "glibc tuned (--tune-malloc)" if tuned else "default"
    print(
        f"toolkit bench policy{' --quick' if quick else ''}: torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, batch {batch} x {points} points, "
        f"{repeats} timed steps, malloc {malloc}, load average {load:.2f}"
    )

    results: dict[str, dict[str, float]] = {}
    for name in names:
        cfg = {**ENCODERS[name], **(QUICK_OVERRIDES.get(name, {}) if quick else {})}
        n_infer = 2 if quick else max(10, repeats)
        results[name] = measure_encoder(cfg, batch, points, repeats, infer_repeats=n_infer)
        if args.compile:
            comp = measure_encoder(
                cfg, batch, points, repeats, compile_encoder=True, infer_repeats=n_infer
            )
            results[f"{name} (compiled)"] = comp

    # The env after the models: loading triton (imported with toolkit.models, via torchvision
    # and torch._dynamo) after an EGL context exists segfaults in libtriton.
    env: dict[str, float] | None = None
    env_note = "env step not measured (--no-env / --quick): rollouts count select_action only"
    if with_env:
        try:
            env = measure_env_step(repeats)
        except Exception as e:  # a missing simulator must not hide the encoder table
            env_note = f"env step not available ({type(e).__name__}: {e})"
    env_ms = env["step_ms"] if env else 0.0

    for r in results.values():
        r["train_h"] = iters * r["train_ms"] / 3.6e6
        r["rollout_h"] = env_steps * (r["infer_ms"] + env_ms) / 3.6e6
        r["proto_h"] = r["train_h"] + r["rollout_h"]
    best = {k: min(r[k] for r in results.values()) for k in ("train_ms", "infer_ms", "proto_h")}
    header = [
        "params_M",
        "train_ms",
        "train_best_ms",
        "train_ratio",
        "infer_ms",
        "infer_ratio",
        "train_h",
        "rollout_h",
        "proto_h",
        "proto_ratio",
    ]
    fmt = [".3f", ".1f", ".1f", ".2f", ".2f", ".2f", ".3f", ".3f", ".3f", ".2f"]
    rows = []
    for name, r in results.items():
        rows.append(
            (
                name,
                [
                    r["params_M"],
                    r["train_ms"],
                    r["train_best_ms"],
                    r["train_ms"] / best["train_ms"],
                    r["infer_ms"],
                    r["infer_ms"] / best["infer_ms"],
                    r["train_h"],
                    r["rollout_h"],
                    r["proto_h"],
                    r["proto_h"] / best["proto_h"],
                ],
            )
        )
    print("\nBC policy per encoder (PointCloudPolicy + BNMLPHead 256x3, Adam)  [cpu]")
    print(_fmt_table(header, rows, fmt))
    print(
        f"\nprotocol: train_h = {iters:,} iterations x train_ms "
        f"(150 epochs x ceil(25 demos x 200 steps / batch {batch}));\n"
        f"          rollout_h = {env_steps:,} env steps x (infer_ms + env step {env_ms:.1f} ms) "
        "(15 evaluations x 25 episodes x <= 200 steps; an upper bound: successes end early);\n"
        "          data loading and checkpointing are not included."
    )
    if args.compile:
        print("\ntorch.compile (encoder only): first step incl. compilation, speed-up vs eager")
        for name in names:
            eager, comp = results[name], results[f"{name} (compiled)"]
            print(
                f"  {name}: compile {comp['compile_s']:.1f} s, "
                f"train x{eager['train_ms'] / comp['train_ms']:.2f}, "
                f"infer x{eager['infer_ms'] / comp['infer_ms']:.2f}"
            )
    print("\nMetaWorld env step (reach, corner camera, depth -> 1024-point cloud, rgb=False)")
    if env is None:
        print(f"  {env_note}")
    else:
        print(
            f"  make_env {env['make_s']:.2f} s, reset {env['reset_ms']:.1f} ms, "
            f"step {env['step_ms']:.1f} ms (best {env['step_best_ms']:.1f} ms); "
            f"{env_steps:,} steps = {env_steps * env['step_ms'] / 3.6e6:.2f} h of simulation"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average at the end: {load:.2f} (other processes on the machine inflate times)")
    return 0
