"""``toolkit eval CONFIG CKPT``: closed-loop evaluation of a trained policy, offline."""

from __future__ import annotations

import argparse

HELP = "roll a trained policy out in its suite: success rates, per-episode JSON, optional MP4s"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="the config the policy was trained with")
    p.add_argument("checkpoint", help="checkpoint file (e.g. work_dirs/X/best_sr.pth)")
    p.add_argument(
        "--episodes", type=int, default=None, help="rollouts per task (default: config's)"
    )
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--tasks", nargs="+", default=None, help="default: the config's training tasks")
    p.add_argument("--video", action="store_true", help="write an MP4 per rollout")
    p.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--env",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="extra make_env arguments, e.g. cameras=['corner2']",
    )


def _eval_hook_cfg(cfg) -> dict:
    for h in cfg.get("custom_hooks", []):
        if str(h.get("type", "")).split(".")[-1] == "RolloutEvalHook":
            return dict(h)
    return {}


def main(args: argparse.Namespace) -> int:
    import json
    import os

    from mmengine.registry import DefaultScope

    from toolkit.engine.checkpoint import load_checkpoint_file
    from toolkit.engine.rollout import evaluate
    from toolkit.engine.runner import load_config, parse_cfg_options
    from toolkit.registry import MODELS, SUITES
    from toolkit.utils.errors import ConfigError
    from toolkit.utils.io import atomic_write_text

    cfg = load_config(args.config, args.cfg_options)
    hook = _eval_hook_cfg(cfg)
    if not hook:
        raise ConfigError(
            f"{args.config}: no RolloutEvalHook in custom_hooks to take the suite from"
        )
    tasks = args.tasks or hook.get("tasks") or list(cfg.train_dataloader.dataset.tasks)
    episodes = args.episodes or hook.get("episodes", 25)
    max_steps = args.max_steps or hook.get("max_steps", 200)
    env_kwargs = dict(hook.get("env_kwargs") or {})
    env_kwargs.update(parse_cfg_options(args.env))

    with DefaultScope.overwrite_default_scope("toolkit"):
        model = MODELS.build(cfg.model)
        suite = SUITES.build(hook["suite"])
    ckpt = load_checkpoint_file(args.checkpoint)
    state = ckpt.get("state_dict", ckpt)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()[1:2] or [str(exc)]
        raise ConfigError(
            f"{args.checkpoint} does not match the model of {args.config}: {first[0].strip()}"
        ) from None
    if missing or unexpected:
        raise ConfigError(
            f"{args.checkpoint} does not match the model of {args.config}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.eval()
    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(args.checkpoint)), "eval_offline"
    )
    summary = {"config": args.config, "checkpoint": args.checkpoint, "episodes": episodes, "sr": {}}
    for task in tasks:
        res = evaluate(
            suite,
            task,
            model,
            num_episodes=episodes,
            max_steps=max_steps,
            out_dir=os.path.join(out, task),
            video=args.video,
            progress=True,
            **env_kwargs,
        )
        summary["sr"][task] = float(res["success_rate"])
        print(f"{task:>20s}: {100 * res['success_rate']:5.1f}% ({episodes} episodes)")
    summary["sr_mean"] = sum(summary["sr"].values()) / len(summary["sr"])
    print(f"{'mean':>20s}: {100 * summary['sr_mean']:5.1f}%   results in {out}")
    atomic_write_text(os.path.join(out, "summary.json"), json.dumps(summary, indent=1))
    return 0
