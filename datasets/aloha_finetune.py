"""ALOHA expert demonstrations for CLAMP's fine-tuning tasks (dataset card: aloha_finetune.md).

Run it with ``toolkit gen``::

    toolkit gen datasets/aloha_finetune.py --out data/aloha_finetune               # 100 / task
    toolkit gen datasets/aloha_finetune.py --tasks mug_on_plate --episodes 500 --workers 2 --out DIR
    toolkit gen datasets/aloha_finetune.py --cameras front_left back_right overhead:480x640 --out DIR

Defaults: the CLAMP fine-tuning tasks implemented so far (``finetune``: mug_on_plate,
drawer_open), 100 episodes per task (90 train + 10 val), each task's horizon (400 steps) at 50 Hz, the four RGB-D
cameras of CLAMP's rig (front_left, back_right, left_wrist, right_wrist) at 224x224 with
shadows off, 4096-point merged world clouds, CLAMP's sim-state text and the expert's integer
progress stage per step. Re-running the same command completes an interrupted run.
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
from toolkit.envs.aloha import seeds as S
from toolkit.envs.aloha.cameras import DEFAULT_CAMERAS
from toolkit.envs.aloha.tasks import expand_tasks


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="toolkit gen datasets/aloha_finetune.py",
        description="Scripted-expert ALOHA demonstrations (CLAMP fine-tuning tasks).",
    )
    p.add_argument("--out", required=True, help="output directory (resumable)")
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["finetune"],
        help="task names or groups (finetune, all); comma or space separated",
    )
    p.add_argument("--episodes", type=int, default=100, help="episodes per task (train + val)")
    p.add_argument("--val", type=int, default=10, help="of which validation episodes")
    p.add_argument(
        "--cameras",
        nargs="+",
        default=list(DEFAULT_CAMERAS),
        help="NAME[:SIZE|:HxW] among front_left, back_right, left_wrist, right_wrist, overhead "
        "(default: the first four at 224)",
    )
    p.add_argument("--num-points", type=int, default=4096)
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="steps recorded per episode at 50 Hz (default: each task's horizon, 400 for most)",
    )
    add_generation_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tasks = expand_tasks(args.tasks)
    n_train = args.episodes - args.val
    if args.val < 0 or n_train < 0 or args.episodes < 1:
        raise SystemExit(f"--episodes ({args.episodes}) must be >= 1 and >= --val ({args.val})")
    splits = {"train": (n_train, S.TRAIN_SEEDS), "val": (args.val, S.VAL_SEEDS)}
    splits = {k: v for k, v in splits.items() if v[0] > 0}
    cfg = GenConfig(
        suite="aloha",
        tasks=tasks,
        splits=splits,
        out=args.out,
        cameras=parse_cameras(args.cameras),
        num_points=args.num_points,
        max_steps=args.max_steps,
        max_failures=args.max_failures,
        workers=args.workers,
        rgb=not args.no_rgb,
        compression=None if args.compression == "none" else args.compression,
        depth_dtype=args.depth_dtype,
        expert_name="toolkit IK (toolkit.envs.aloha)",
    )
    return report(generate(cfg, progress=not args.no_progress))


if __name__ == "__main__":
    sys.exit(main())
