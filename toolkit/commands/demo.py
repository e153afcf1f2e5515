"""``toolkit demo``: the embedded default main job, a small but real end-to-end run.

1. generate a small MetaWorld dataset with the scripted experts (episode files), plus a few
   episodes from the reserved pretraining seeds,
2. pretrain a CPU-sized CLAR encoder (Point-MAE tiny + Chamfer MAE + global / local alignment
   to tiny, explicitly random-init CLIP teachers: no weights can be downloaded here) on them,
3. train policies on the demos with PointNet and Point-MAE from scratch and with the
   CLAR-pretrained Point-MAE, under CLAR's BC protocol,
4. evaluate each policy in closed loop and print the success-rate table.

``--no-pretrain`` skips 2 and the CLAR policy.

Everything lands under ``--out`` and every stage is resumable: a rerun skips finished episodes
and finished runs, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import argparse
import time

HELP = (
    "end-to-end demo: MetaWorld data -> CLAR pretraining -> PointNet / Point-MAE / CLAR "
    "policies -> closed-loop SR table"
)
PRETRAIN_RECIPE = "recipes/clar/pretrain_clar_pointmae-tiny_metaworld-cpu.py"
CLAR_POLICY_BASE = "recipes/demo/bc_pointmae-tiny_demo_metaworld.py"

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
        "--jobs",
        type=int,
        default=2,
        help="policy runs trained at the same time, with cores // jobs torch threads each: "
        "while one run evaluates in closed loop (one core), the other trains",
    )
    p.add_argument(
        "--rollout-workers",
        type=int,
        default=1,
        help="processes per closed-loop evaluation (more only with idle cores to spare)",
    )
    p.add_argument(
        "--encoders",
        nargs="+",
        default=list(DEMO_ENCODERS),
        help=f"subset of {list(DEMO_ENCODERS)} or config paths",
    )
    p.add_argument(
        "--videos", type=int, default=2, help="rollout MP4s per run at its last evaluation"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-pretrain", dest="pretrain", action="store_false", help="skip CLAR pretraining"
    )
    p.add_argument("--pretrain-episodes", type=int, default=4, help="pretraining episodes per task")
    p.add_argument("--pretrain-epochs", type=int, default=6)


def _pretrain(args: argparse.Namespace, repo: str, data: str) -> str:
    """CLAR pretraining (resumable); returns the work_dir whose last checkpoint holds it."""
    import os
    import subprocess
    import sys

    work = os.path.join(args.out, "pretrain")
    final = os.path.join(work, f"epoch_{args.pretrain_epochs}.pth")
    if os.path.isfile(final):
        print(f"   CLAR pretraining: done, skipped ({final})")
        return work
    resume = ["--resume"] if os.path.isfile(os.path.join(work, "last_checkpoint")) else []
    cmd = [
        sys.executable, "-m", "toolkit", "train", os.path.join(repo, PRETRAIN_RECIPE),
        "--work-dir", work, "--seed", str(args.seed), *resume, "--tune-malloc", "--cfg-options",
        f"train_dataloader.dataset.data_root={data}", f"train_cfg.max_epochs={args.pretrain_epochs}",
        "train_dataloader.dataset.frame_stride=2", "default_hooks.logger.interval=10",
        f"default_hooks.checkpoint.interval={args.pretrain_epochs}",
    ]  # fmt: skip
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "pretrain.log"), "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(
            f"CLAR pretraining failed (exit {proc.returncode}); see {work}/pretrain.log"
        )
    print(f"   CLAR pretraining: {work} (pictures in {work}/vis/)")
    return work


def _clar_policy_config(args: argparse.Namespace, repo: str, pretrained: str) -> str:
    """A one-line recipe: the demo Point-MAE-tiny policy initialized from ``pretrained``."""
    import os

    from toolkit.utils.io import atomic_write_text

    path = os.path.join(args.out, "bc_clar-tiny_demo_metaworld.py")
    atomic_write_text(
        path,
        "# written by `toolkit demo`: the demo Point-MAE-tiny policy, CLAR-pretrained encoder\n"
        f"_base_ = [{os.path.join(repo, CLAR_POLICY_BASE)!r}]\n"
        f"model = dict(encoder_weights={os.path.abspath(pretrained)!r}, "
        'encoder_weights_prefix="backbone.")\n',
    )
    return path


def main(args: argparse.Namespace) -> int:
    import os

    from toolkit.bench import metaworld as bench
    from toolkit.commands.gen import load_recipe

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data = os.path.join(args.out, "data")
    start = time.time()
    n_val = max(1, args.episodes // 5)
    pre = f" + {args.pretrain_episodes} pretraining episodes" if args.pretrain else ""
    print(
        f"== 1/3 generating {args.episodes} expert demos{pre} x {len(args.tasks)} tasks -> {data}",
        flush=True,
    )
    gen = load_recipe(os.path.join(repo, "datasets", "metaworld_clar.py"))
    argv = ["--tasks", *args.tasks, "--episodes", str(args.episodes), "--val", str(n_val)]
    if args.pretrain:
        argv += ["--pretrain", str(args.pretrain_episodes)]
    code = gen([*argv, "--workers", str(args.workers), "--out", data])
    if code:
        return int(code)
    encoders = [
        f"{e}={os.path.join(repo, DEMO_ENCODERS[e])}" if e in DEMO_ENCODERS else e
        for e in args.encoders
    ]
    if args.pretrain:
        print(
            f"== 2/3 CLAR pretraining (Point-MAE tiny, random-init tiny CLIP teachers), "
            f"{args.pretrain_epochs} epochs",
            flush=True,
        )
        pretrained = _pretrain(args, repo, data)
        encoders.append(f"clar-tiny={_clar_policy_config(args, repo, pretrained)}")
    names = ", ".join(e.split("=", 1)[0] for e in encoders)
    print(f"== 3/3 training {names} and evaluating in closed loop", flush=True)
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
        tune_malloc=True,  # same results, 15-35% faster CPU steps (docs/performance.md)
        rollout_workers=args.rollout_workers,
        jobs=args.jobs,
        videos=args.videos,
        threads=None,
        title=f"toolkit demo: MetaWorld SR (%), {args.episodes - n_val} demos/task, "
        f"{args.epochs} epochs, {args.eval_episodes} rollouts",
    )
    bench.run(bench_args)
    runs = os.path.join(args.out, "bench", "runs")
    print(
        f"demo finished in {(time.time() - start) / 60:.1f} min.\n"
        f"  SR curves: {args.out}/bench/sr_curves.png\n"
        f"  rollout videos: {runs}/<encoder>/<task>/seed{args.seed}/eval/epoch_{args.epochs}/"
        "<task>/episode_*.mp4\n"
        f"  training logs, TensorBoard events, per-episode JSON: {runs}/<encoder>/<task>/"
        f"seed{args.seed}/"
        + (f"\n  CLAR pretraining pictures: {args.out}/pretrain/vis/" if args.pretrain else "")
    )
    return 0
