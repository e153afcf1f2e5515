"""``toolkit train CONFIG``: train any recipe with mmengine's Runner."""

from __future__ import annotations

import argparse

HELP = "train a recipe (pretrainer or policy) with mmengine's Runner"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="mmengine config file (e.g. recipes/clar/...py)")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CKPT",
        help="resume from CKPT, or from the latest checkpoint in the work dir when no CKPT is given",
    )
    p.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config fields, e.g. model.backbone.type=PointNet train_cfg.max_epochs=3",
    )
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument(
        "--seed", type=int, default=None, help="global seed (identical losses on re-runs)"
    )
    p.add_argument("--amp", action="store_true", help="mixed precision (bf16 autocast on CPU)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's, one per core). The toolkit sets "
        "OMP_WAIT_POLICY=PASSIVE, so threads sleep instead of spinning when a core is busy "
        "(with spinning, one busy core made 2-thread steps 10x slower); several runs on "
        "the same cores still do best with cores // runs threads each",
    )
    p.add_argument(
        "--tune-malloc",
        action="store_true",
        help="keep freed memory in the process (glibc mallopt) instead of re-faulting big "
        "activations in on every step: 15-35%% faster CPU policy steps (docs/performance.md)",
    )
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    from toolkit.engine.runner import configure, load_config, train

    if args.threads is not None:
        import torch

        from toolkit.utils.errors import ConfigError

        if args.threads < 1:
            raise ConfigError(f"toolkit train: --threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if getattr(args, "tune_malloc", False):
        from toolkit.utils.memory import tune_glibc_malloc

        tune_glibc_malloc()  # before the first big tensor
    cfg = load_config(args.config, args.cfg_options)
    configure(
        cfg,
        config_path=args.config,
        work_dir=args.work_dir,
        resume=args.resume,
        launcher=args.launcher,
        seed=args.seed,
        amp=args.amp,
    )
    train(cfg)
    return 0
