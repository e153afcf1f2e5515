"""``toolkit convert FORMAT SRC --out DIR``: other datasets -> toolkit episode files.

Formats:

- ``rlbench``: stored RLBench demos (stepjam/RLBench 1.2 ``dataset_generator.py`` layout, or
  PerAct's pre-generated ``all_variations`` one); needs neither RLBench nor CoppeliaSim. See
  :mod:`toolkit.data.rlbench.converter` and docs/suites/rlbench.md.

Examples::

    toolkit convert rlbench data/rlbench_raw/train --out data/rlbench_clar \\
        --tasks close_box close_laptop_lid water_plants toilet_seat_down --keyframes --val 20
    toolkit convert rlbench data/rlbench_raw/train --out data/rlbench_pretrain --split pretrain \\
        --tasks close_jar stack_blocks --cameras front left_shoulder right_shoulder
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "convert other datasets (RLBench demos) into toolkit episode files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = sub.add_parser(
        "rlbench",
        help="stored RLBench demos (no RLBench / CoppeliaSim needed)",
        description="Convert stored RLBench demos (task/variationN/episodes/episodeK) into "
        "toolkit episode files: camera RGB / depth / K / extrinsics, a cropped world point "
        "cloud, proprio and 8-d pose + gripper actions. Resumable: a rerun skips done episodes.",
    )
    p.add_argument("src", help="RLBench dataset directory (task folders) or one task folder")
    p.add_argument(
        "--out", default=None, help="output directory (resumable; required unless --dry-run)"
    )
    p.add_argument("--tasks", nargs="+", default=None, help="tasks to convert (default: all)")
    p.add_argument(
        "--cameras", nargs="+", default=["front"], help="cameras to store (default front)"
    )
    p.add_argument(
        "--point-cameras",
        nargs="+",
        default=None,
        help="cameras whose depth makes the cloud (default: --cameras)",
    )
    p.add_argument("--num-points", type=int, default=1024)
    p.add_argument(
        "--bounds",
        default="lift3d",
        help="world crop: lift3d (default; Lift3D / CLAR), peract, none, or xmin,ymin,zmin,xmax,ymax,zmax",
    )
    p.add_argument("--voxel-size", type=float, default=None)
    p.add_argument(
        "--keyframes",
        action="store_true",
        help="keep only keyframe observations (PerAct / CLAR waypoints)",
    )
    p.add_argument(
        "--target",
        choices=("next_step", "next_keyframe"),
        default=None,
        help="action target of dense conversion (default next_step; --keyframes: next keyframe)",
    )
    p.add_argument(
        "--action", dest="action_mode", choices=("absolute", "delta"), default="absolute"
    )
    p.add_argument("--proprio", choices=("pose", "lift3d"), default="pose")
    p.add_argument("--split", default="train", help="output sub-folder (default train)")
    p.add_argument("--val", type=int, default=0, help="the last N episodes of each task go to val/")
    p.add_argument("--max-episodes", type=int, default=None, help="first N episodes of each task")
    p.add_argument("--masks", action="store_true", help="also store the object-handle masks")
    p.add_argument("--no-rgb", action="store_true")
    p.add_argument("--no-depth", action="store_true", help="store no depth (the cloud is kept)")
    p.add_argument(
        "--stopping-delta", type=float, default=0.1, help="keyframe joint-velocity threshold"
    )
    p.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (1: in-process)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad source episode")
    p.add_argument("--dry-run", action="store_true", help="list what would be converted and exit")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(_convert_run=_rlbench)


def main(args: argparse.Namespace) -> int:
    return int(args._convert_run(args) or 0)


def _rlbench(args: argparse.Namespace) -> int:
    from toolkit.data.rlbench.converter import ConvertConfig, convert
    from toolkit.data.rlbench.reader import find_episodes
    from toolkit.utils.errors import ToolkitError

    if args.dry_run:
        refs = find_episodes(args.src, args.tasks)
        counts: dict[str, dict[str, int]] = {}
        for r in refs:
            v = "all_variations" if r.variation is None else f"variation{r.variation}"
            counts.setdefault(r.task, {}).setdefault(v, 0)
            counts[r.task][v] += 1
        for task, per in counts.items():
            total = sum(per.values())
            print(f"{task}: {total} episodes ({', '.join(f'{k}: {n}' for k, n in per.items())})")
        return 0
    if args.out is None:
        raise ToolkitError("toolkit convert rlbench: --out DIR is required (unless --dry-run)")
    cfg = ConvertConfig(
        src=args.src,
        out=args.out,
        tasks=args.tasks,
        cameras=args.cameras,
        point_cameras=args.point_cameras,
        num_points=args.num_points,
        bounds=args.bounds,
        voxel_size=args.voxel_size,
        keyframes=args.keyframes,
        target=args.target,
        action_mode=args.action_mode,
        proprio=args.proprio,
        split=args.split,
        val=args.val,
        max_episodes=args.max_episodes,
        rgb=not args.no_rgb,
        depth=not args.no_depth,
        masks=args.masks,
        stopping_delta=args.stopping_delta,
        compression=None if args.compression == "none" else args.compression,
        workers=args.workers,
    )
    summary = convert(
        cfg, progress=not args.no_progress, on_error="raise" if args.strict else "skip"
    )
    print(
        f"{summary['episodes_written']} episodes written ({summary['steps_written']} steps), "
        f"{summary['episodes_skipped']} already done, {len(summary['errors'])} failed in "
        f"{summary['seconds']} s -> {summary['out']}/summary.json"
    )
    print(f"  per task and split: {json.dumps(summary['tasks'])}")
    for source, message in summary["errors"].items():
        print(f"  failed: {source}: {message}", file=sys.stderr)
    return 1 if summary["errors"] else 0
