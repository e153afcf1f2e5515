"""MetaWorld expert demonstrations for the CLAR / Lift3D protocol (dataset card: metaworld_clar.md).

Run it with ``toolkit gen``::

    toolkit gen datasets/metaworld_clar.py --out data/metaworld_clar                # 15 tasks
    toolkit gen datasets/metaworld_clar.py --tasks hammer,assembly --episodes 30 --workers 2 --out DIR
    toolkit gen datasets/metaworld_clar.py --tasks all --cameras corner corner2 --out DIR

Defaults: the 15 CLAR tasks, 30 episodes per task (25 train + 5 val), 200 steps, camera
``corner`` at 224x224 (RGB + metric depth, shadows off), 1024-point world-frame clouds.
Re-running the same command completes an interrupted run and skips finished episodes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from toolkit.data.generate import (
    GenConfig,
    add_generation_arguments,
    generate,
    parse_cameras,
    report,
)
from toolkit.envs.metaworld import seeds as S
from toolkit.envs.metaworld import tasks as T


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="toolkit gen datasets/metaworld_clar.py",
        description="Scripted-expert MetaWorld demonstrations (CLAR / Lift3D protocol).",
    )
    p.add_argument("--out", required=True, help="output directory (resumable)")
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["clar"],
        help="task names or groups (clar, all, easy, medium, hard, multitask, ablation); "
        "comma or space separated (default: clar = the 15 CLAR tasks)",
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=30,
        help="episodes per task (train + val); 0 with --pretrain N: only the pretraining split",
    )
    p.add_argument("--val", type=int, default=5, help="of which validation episodes")
    p.add_argument(
        "--pretrain",
        type=int,
        default=0,
        help="also write N episodes per task from the reserved pretraining seed range "
        f"[{S.PRETRAIN_SEEDS.start}, {S.PRETRAIN_SEEDS.stop})",
    )
    p.add_argument(
        "--cameras", nargs="+", default=["corner"], help="NAME[:SIZE|:HxW] (default corner:224)"
    )
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--stock-experts", action="store_true", help="MetaWorld's policies unchanged")
    add_generation_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tasks = T.expand_tasks(args.tasks)
    n_train = args.episodes - args.val
    if args.val < 0 or n_train < 0 or (args.episodes < 1 and args.pretrain < 1):
        raise SystemExit(
            f"--episodes ({args.episodes}) must be >= --val ({args.val}) and >= 1 "
            f"(or 0 with --pretrain N to write only the pretraining split)"
        )
    splits = {"train": (n_train, S.TRAIN_SEEDS), "val": (args.val, S.VAL_SEEDS)}
    if args.pretrain:
        splits["pretrain"] = (args.pretrain, S.PRETRAIN_SEEDS)
    splits = {k: v for k, v in splits.items() if v[0] > 0}
    cfg = GenConfig(
        suite="metaworld",
        tasks=tasks,
        splits=splits,
        out=args.out,
        cameras=parse_cameras(args.cameras),
        num_points=args.num_points,
        max_steps=args.max_steps,
        max_failures=args.max_failures,
        workers=args.workers,
        stock_experts=args.stock_experts,
        rgb=not args.no_rgb,
        compression=None if args.compression == "none" else args.compression,
        depth_dtype=args.depth_dtype,
    )
    return report(generate(cfg, progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
