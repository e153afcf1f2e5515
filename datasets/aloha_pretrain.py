"""ALOHA expert demonstrations for CLAMP-style pretraining (dataset card: aloha_pretrain.md).

Run it with ``toolkit gen``::

    toolkit gen datasets/aloha_pretrain.py --out data/aloha_pretrain                # 100 / task
    toolkit gen datasets/aloha_pretrain.py --tasks handover_bar,peg_insertion --episodes 500 --workers 2 --out DIR
    toolkit gen datasets/aloha_pretrain.py --tasks all --cameras front_left back_right overhead --out DIR

Defaults: every pretraining task (``pretrain``: the ``family = "pretrain"`` tasks of
``toolkit/envs/aloha/tasks/pretrain/``, disjoint from CLAMP's six fine-tuning tasks), 100
episodes per task, all in one split named ``pretrain`` whose seeds come from the reserved
pretraining range [20000, 1000000) of ``toolkit/envs/aloha/seeds.py`` (disjoint from the
fine-tuning train / val demonstrations and from evaluation), each task's horizon at 50 Hz,
and the same observations as ``datasets/aloha_finetune.py``: the four RGB-D cameras of
CLAMP's rig (front_left, back_right, left_wrist, right_wrist) at 224x224 with shadows off,
4096-point merged world clouds, CLAMP's sim-state text and the expert's integer progress
stage per step. Re-running the same command completes an interrupted run.
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

#: The one split of this dataset (``DIR/<task>/pretrain/ep_<seed>.hdf5``).
SPLIT = "pretrain"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="toolkit gen datasets/aloha_pretrain.py",
        description="Scripted-expert ALOHA demonstrations (CLAMP-style pretraining tasks).",
    )
    p.add_argument("--out", required=True, help="output directory (resumable)")
    p.add_argument(
        "--tasks",
        nargs="+",
        default=["pretrain"],
        help="task names or groups (pretrain, finetune, all); comma or space separated "
        "(default: pretrain = every pretraining task)",
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=100,
        help="episodes per task, all in the 'pretrain' split, seeds from the reserved "
        f"pretraining range [{S.PRETRAIN_SEEDS.start}, {S.PRETRAIN_SEEDS.stop})",
    )
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
        help="steps recorded per episode at 50 Hz (default: each task's horizon)",
    )
    add_generation_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tasks = expand_tasks(args.tasks)
    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {args.episodes}")
    cfg = GenConfig(
        suite="aloha",
        tasks=tasks,
        splits={SPLIT: (args.episodes, S.PRETRAIN_SEEDS)},
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
