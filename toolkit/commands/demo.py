"""``toolkit demo``: the embedded default main job, a small but real end-to-end run.

1. generate a small MetaWorld dataset with the scripted experts (episode files),
2. train two point-cloud encoders from scratch (PointNet, Point-MAE) under CLAR's BC protocol,
3. evaluate each policy in closed loop and print the success-rate table.

Everything lands under ``--out`` and every stage is resumable: a rerun skips finished episodes
and finished runs, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import argparse
import time

HELP = "end-to-end demo: MetaWorld data -> train PointNet & Point-MAE -> closed-loop SR table"

DEMO_ENCODERS = {
    "pointnet": "recipes/demo/bc_pointnet_demo_metaworld.py",
    "pointmae-tiny": "recipes/demo/bc_pointmae-tiny_demo_metaworld.py",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="work_dirs/demo", help="everything goes here")
    p.add_argument("--tasks", nargs="+", default=["button-press", "handle-pull"])
    p.add_argument(
        "--episodes", type=int, default=10, help="expert demos per task (8 train / 2 val)"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--eval-episodes", type=int, default=8, help="rollouts per task per evaluation")
    p.add_argument("--eval-interval", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="data-generation processes")
    p.add_argument(
        "--encoders",
        nargs="+",
        default=list(DEMO_ENCODERS),
        help=f"subset of {list(DEMO_ENCODERS)} or config paths",
    )
    p.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    import os

    from toolkit.bench import metaworld as bench
    from toolkit.commands.gen import load_recipe

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data = os.path.join(args.out, "data")
    start = time.time()
    n_val = max(1, args.episodes // 5)
    print(
        f"== 1/3 generating {args.episodes} expert demos x {len(args.tasks)} tasks -> {data}",
        flush=True,
    )
    gen = load_recipe(os.path.join(repo, "datasets", "metaworld_clar.py"))
    argv = ["--tasks", *args.tasks, "--episodes", str(args.episodes), "--val", str(n_val)]
    code = gen([*argv, "--workers", str(args.workers), "--out", data])
    if code:
        return int(code)
    print(
        f"== 2/3 + 3/3 training {', '.join(args.encoders)} and evaluating in closed loop",
        flush=True,
    )
    encoders = [
        f"{e}={os.path.join(repo, DEMO_ENCODERS[e])}" if e in DEMO_ENCODERS else e
        for e in args.encoders
    ]
    bench_args = argparse.Namespace(
        encoders=encoders,
        tasks=list(args.tasks),
        seeds=[args.seed],
        data=data,
        out=os.path.join(args.out, "bench"),
        epochs=args.epochs,
        eval_interval=args.eval_interval,
        episodes=args.eval_episodes,
        train_episodes=None,
        cfg_options=[],
        collect_only=False,
        title=f"toolkit demo: MetaWorld SR (%), {args.episodes - n_val} demos/task, "
        f"{args.epochs} epochs, {args.eval_episodes} rollouts",
    )
    bench.run(bench_args)
    print(
        f"demo finished in {(time.time() - start) / 60:.1f} min. Training logs, TensorBoard "
        f"events, eval videos and per-episode JSON: {args.out}/bench/runs/<encoder>/<task>/seed0/"
    )
    return 0
