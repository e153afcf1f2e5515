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
    p.add_argument("--threads", type=int, default=1, help="torch threads for inference")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="roll out in N processes at once (same per-episode results; one per free core)",
    )
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


def _language_table(config: str, cfg, hook: dict, meta: dict, tasks, lang_dim: int):
    """Instruction features for a language-conditioned policy (None for one without language).

    The language config comes from the eval hook (else the training dataset); the feature
    space recorded in the checkpoint (``meta.language``) wins over the config's backend, and no
    silent fallback is allowed here: a policy trained on MiniLM features is never evaluated
    with hash features.
    """
    import os

    from toolkit.data.language import build_language_table, check_language_cfg
    from toolkit.utils.errors import ConfigError

    dataset = dict(cfg.get("train_dataloader", {}).get("dataset", {}) or {})
    lang = check_language_cfg(hook.get("language"), f"{config}: RolloutEvalHook.language")
    if lang is None:
        lang = check_language_cfg(dataset.get("language"), f"{config}: dataset.language")
    if lang is None or lang_dim <= 0:
        if lang_dim > 0:
            raise ConfigError(
                f"{config}: the policy takes language (model.lang_dim={lang_dim}) but neither "
                "RolloutEvalHook.language nor train_dataloader.dataset.language is set"
            )
        return None
    trained = (meta or {}).get("language")
    if trained:
        if trained["backend"] != lang.get("backend", "minilm"):
            print(
                f"language: the checkpoint was trained with '{trained['backend']}' features "
                f"({trained['featurizer']}); using them instead of the config's "
                f"'{lang.get('backend', 'minilm')}'"
            )
        lang.update(backend=trained["backend"], fallback=False)
        if trained["backend"] == "hash":
            lang.setdefault("dim", int(trained["dim"]))
    root = dataset.get("data_root")
    table = build_language_table(
        tasks, cache_dir=root if root and os.path.isdir(root) else None, **lang
    )
    if trained and table.featurizer_key != trained["featurizer"]:
        raise ConfigError(
            f"{config}: language features {table.featurizer_key} differ from the checkpoint's "
            f"{trained['featurizer']}"
        )
    if table.dim != lang_dim:
        raise ConfigError(
            f"{config}: language features are {table.dim}-d ({table.featurizer_key}), "
            f"the policy expects model.lang_dim={lang_dim}"
        )
    return table


def main(args: argparse.Namespace) -> int:
    import json
    import os

    import torch
    from mmengine.registry import DefaultScope

    from toolkit.engine.checkpoint import load_checkpoint_file
    from toolkit.engine.policy_hooks import write_instructions
    from toolkit.engine.rollout import RolloutPool, evaluate
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

    if cfg.model.get("init_weights"):
        cfg.model.init_weights = None  # the checkpoint below holds every weight
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
    need = getattr(model, "rollout_env_kwargs", None)
    env_kwargs = {**env_kwargs, **(need() if callable(need) else {})}
    if args.workers < 1:
        raise ConfigError(f"toolkit eval: --workers must be >= 1, got {args.workers}")
    torch.set_num_threads(args.threads)  # batch-1 inference: extra threads only contend
    table = _language_table(
        args.config, cfg, hook, ckpt.get("meta") or {}, tasks, int(getattr(model, "lang_dim", 0))
    )
    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(args.checkpoint)), "eval_offline"
    )
    summary = {"config": args.config, "checkpoint": args.checkpoint, "episodes": episodes, "sr": {}}
    if table is not None:
        summary["language"] = table.meta
    # one pool for every task: its workers start once (and keep their envs)
    pool = RolloutPool(args.workers, args.threads) if args.workers > 1 else None
    try:
        for task in tasks:
            transform = table.obs_transform(task, suite.eval_seed_offset) if table else None
            res = evaluate(
                suite,
                task,
                model,
                num_episodes=episodes,
                max_steps=max_steps,
                out_dir=os.path.join(out, task),
                video=args.video,
                progress=True,
                obs_transform=transform,
                pool=pool if transform is None else None,
                **env_kwargs,
            )
            if transform is not None:
                write_instructions(os.path.join(out, task, "instructions.json"), transform.used)
            summary["sr"][task] = float(res["success_rate"])
            print(f"{task:>20s}: {100 * res['success_rate']:5.1f}% ({episodes} episodes)")
    finally:
        if pool is not None:
            pool.close()
    summary["sr_mean"] = sum(summary["sr"].values()) / len(summary["sr"])
    print(f"{'mean':>20s}: {100 * summary['sr_mean']:5.1f}%   results in {out}")
    atomic_write_text(os.path.join(out, "summary.json"), json.dumps(summary, indent=1))
    return 0
