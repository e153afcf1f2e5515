"""``toolkit bench aloha``: CLAMP's pretrain-then-fine-tune comparison on held-out ALOHA tasks
(CLAMP Table I layout, Fig. 4-style success-rate curves), from one command.

Stages, each a ``toolkit train`` subprocess in its own work dir (a killed run resumes from its
last checkpoint; a finished one is skipped):

1. prerequisites the variants name: CLAMP encoder pretraining and policy pretraining
   (``work_dirs/<recipe name>``, the paths the fine-tuning recipes load);
2. one fine-tuning run per variant x task x seed, evaluated in closed loop every N steps;
   its record goes to ``<out>/runs/<variant>/<task>/seed<k>/result.json``.

Outputs: ``<out>/table.md`` / ``table.csv`` (max SR over evaluations, mean ± std over seeds) and
``<out>/sr_curves.png`` (SR against fine-tuning steps, one line per variant). ``--collect-only``
rebuilds them from what exists and lists the missing cells.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from statistics import mean, pstdev

HELP = "ALOHA pretrain -> fine-tune comparison (CLAMP Table I / Fig. 4), resumable"

#: Table I variants at CPU size: recipe and the pretraining runs it needs.
VARIANTS: dict[str, str] = {
    "dp-scratch": "recipes/clamp/dp_scratch_aloha-cpu.py",
    "dp-pretrained": "recipes/clamp/dp_pretrained_aloha-cpu.py",
    "dp-clamp": "recipes/clamp/dp_clamp_aloha-cpu.py",
    "dp-pretrained-clamp": "recipes/clamp/dp_pretrained-clamp_aloha-cpu.py",
    "act-scratch": "recipes/clamp/act_scratch_aloha-cpu.py",
    "act-pretrained": "recipes/clamp/act_pretrained_aloha-cpu.py",
    "act-clamp": "recipes/clamp/act_clamp_aloha-cpu.py",
    # Table III policy-side ablations
    "dp-pretrained-clamp-unfrozen": "recipes/clamp/dp_pretrained-clamp-unfrozen_aloha-cpu.py",
    "dp-pretrained-clamp-pooled": "recipes/clamp/dp_pretrained-clamp-pooled_aloha-cpu.py",
    "dp-pretrained-decoder-clamp": "recipes/clamp/dp_pretrained-decoder-clamp_aloha-cpu.py",
}
DEFAULT_VARIANTS = ("dp-scratch", "dp-pretrained", "dp-pretrained-clamp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        help=f"names ({', '.join(VARIANTS)}) or NAME=CONFIG",
    )
    p.add_argument("--tasks", nargs="+", default=["drawer_open"], help="held-out tasks")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--data", default=None, help="fine-tuning data (default: the recipe's)")
    p.add_argument("--pretrain-data", default=None, help="pretraining data (default: recipe's)")
    p.add_argument("--out", default="work_dirs/bench_aloha")
    p.add_argument("--iters", type=int, default=None, help="fine-tuning steps (max_iters)")
    p.add_argument("--pretrain-iters", type=int, default=None, help="policy pretraining steps")
    p.add_argument("--eval-interval", type=int, default=None, help="steps between evaluations")
    p.add_argument("--episodes", type=int, default=None, help="rollouts per evaluation")
    p.add_argument("--train-episodes", type=int, default=None, help="demos per task (few-shot)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads per training run (1 when sharing)"
    )
    p.add_argument(
        "--tune-malloc",
        action="store_true",
        help="pass --tune-malloc to every training run (faster CPU steps, see docs/performance.md)",
    )
    p.add_argument(
        "--skip-prerequisites",
        action="store_true",
        help="do not train missing pretraining runs (fail instead)",
    )
    p.add_argument("--collect-only", action="store_true", help="only build the table and plot")


def _variants(items: Sequence[str]) -> dict[str, str]:
    from toolkit.bench.metaworld import resolve_configs

    return resolve_configs(items, VARIANTS, "variant")


def _train(
    config: str,
    work_dir: str,
    overrides: Sequence[str],
    seed: int = 0,
    threads: int | None = None,
    tune_malloc: bool = False,
) -> None:
    resume = ["--resume"] if os.path.isfile(os.path.join(work_dir, "last_checkpoint")) else []
    cmd = [sys.executable, "-m", "toolkit", "train", config, "--work-dir", work_dir]
    cmd += ["--seed", str(seed), *resume]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if tune_malloc:
        cmd.append("--tune-malloc")
    if overrides:
        cmd += ["--cfg-options", *overrides]
    os.makedirs(work_dir, exist_ok=True)
    print(f"[bench aloha] train {config} -> {work_dir}", flush=True)
    with open(os.path.join(work_dir, "train.log"), "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(os.path.join(work_dir, "train.log")) as log:
            tail = "".join(log.readlines()[-4:]).strip()
        raise RuntimeError(f"training failed ({work_dir}/train.log):\n{tail}")


def _done(work_dir: str, max_iters: int) -> bool:
    """A run is complete when its last checkpoint is at ``max_iters``."""
    path = os.path.join(work_dir, "last_checkpoint")
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        name = os.path.basename(f.read().strip())
    return name == f"iter_{max_iters}.pth"


def prerequisites(config: str) -> list[tuple[str, str]]:
    """``(recipe, work_dir)`` of the pretraining runs a fine-tuning recipe loads."""
    from toolkit.engine.runner import load_config

    cfg = load_config(config)
    model = cfg.model
    needs = []
    init = model.get("init_weights")
    if init:
        needs.append(init)
    clamp = model.get("clamp") or {}
    if clamp.get("weights"):
        needs.append(clamp["weights"])
    out = []
    for work_dir in needs:
        name = os.path.basename(os.path.normpath(work_dir))
        recipe = next(
            (
                os.path.join(d, f"{name}.py")
                for d in ("recipes/clamp", "recipes/clar", "baselines")
                if os.path.isfile(os.path.join(d, f"{name}.py"))
            ),
            None,
        )
        if recipe is None:
            from toolkit.utils.errors import ConfigError

            raise ConfigError(f"{config}: no recipe found that produces {work_dir}")
        out.append((recipe, work_dir))
    return out


def run_prerequisite(recipe: str, work_dir: str, args: argparse.Namespace) -> None:
    from toolkit.engine.runner import load_config

    cfg = load_config(recipe)
    overrides: list[str] = []
    iter_based = cfg.train_cfg.get("type") == "IterBasedTrainLoop"
    if iter_based and args.pretrain_iters:
        overrides.append(f"train_cfg.max_iters={args.pretrain_iters}")
    if args.pretrain_data:
        overrides.append(f"train_dataloader.dataset.data_root={args.pretrain_data}")
        if "val_dataloader" in cfg:
            overrides.append(f"val_dataloader.dataset.data_root={args.pretrain_data}")
    max_iters = args.pretrain_iters or cfg.train_cfg.get("max_iters")

    def finished() -> bool:
        if iter_based:
            return _done(work_dir, int(max_iters))
        path = os.path.join(work_dir, "last_checkpoint")
        if not os.path.isfile(path):
            return False
        with open(path) as f:
            return os.path.basename(f.read().strip()) == f"epoch_{cfg.train_cfg.max_epochs}.pth"

    if finished():
        return
    if args.skip_prerequisites:
        raise RuntimeError(f"{work_dir} is missing or unfinished (--skip-prerequisites)")
    # Several `bench aloha` processes (one per variant, to use every core) share the
    # pretraining runs: the first takes the lock and trains, the others wait and then find it done.
    with _work_dir_lock(work_dir):
        if finished():
            return
        _train(
            recipe,
            work_dir,
            overrides,
            threads=getattr(args, "threads", None),
            tune_malloc=getattr(args, "tune_malloc", False),
        )


@contextlib.contextmanager
def _work_dir_lock(work_dir: str) -> Iterator[None]:
    """Exclusive ``flock`` on ``<work_dir>.lock`` (released when the holder exits, even killed)."""
    import fcntl

    os.makedirs(os.path.dirname(os.path.abspath(work_dir)), exist_ok=True)
    with open(os.path.abspath(work_dir).rstrip("/") + ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[bench aloha] waiting for another process training {work_dir}", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_variant(
    name: str, config: str, task: str, seed: int, run_dir: str, args: argparse.Namespace
) -> dict:
    from toolkit.engine.runner import load_config

    cfg = load_config(config)
    hooks = [dict(h) for h in cfg.get("custom_hooks", [])]
    for h in hooks:
        if str(h.get("type", "")).endswith("RolloutEvalHook"):
            h["tasks"] = [task]
            if args.eval_interval:
                h["interval"] = args.eval_interval
            if args.episodes:
                h["episodes"] = args.episodes
    from toolkit.bench.metaworld import _hooks_literal

    overrides = [
        f"train_dataloader.dataset.tasks={[task]!r}",
        f"custom_hooks={_hooks_literal(hooks)}",
    ]
    if args.data:
        overrides.append(f"train_dataloader.dataset.data_root={args.data}")
    if cfg.get("val_dataloader"):  # offline chunk error on the held-out demos, same interval
        overrides.append(f"val_dataloader.dataset.tasks={[task]!r}")
        if args.data:
            overrides.append(f"val_dataloader.dataset.data_root={args.data}")
        if args.eval_interval:
            overrides.append(f"train_cfg.val_interval={args.eval_interval}")
    if args.iters:
        overrides.append(f"train_cfg.max_iters={args.iters}")
    if args.eval_interval:
        overrides.append(f"default_hooks.checkpoint.interval={args.eval_interval}")
    if args.train_episodes:
        overrides.append(f"train_dataloader.dataset.episodes=(0, {args.train_episodes})")
    overrides += list(args.cfg_options)
    start = time.time()
    _train(
        config,
        run_dir,
        overrides,
        seed,
        threads=getattr(args, "threads", None),
        tune_malloc=getattr(args, "tune_malloc", False),
    )
    with open(os.path.join(run_dir, "eval", "history.json")) as f:
        history = json.load(f)
    best = max(history, key=lambda h: h["sr_mean"])
    val = val_history(run_dir)
    return {
        "variant": name,
        "config": config,
        "task": task,
        "seed": seed,
        "best_sr": best["sr"][task],
        "best_step": best["epoch"],
        "final_sr": history[-1]["sr"][task],
        "history": history,
        "val_history": val,
        "final_val_mae": val[-1]["mae"] if val else None,
        "hold_val_mae": val[-1].get("hold_mae") if val else None,
        "wall_time_s": round(time.time() - start, 1),
    }


def val_history(run_dir: str) -> list[dict]:
    """``ChunkErrorMetric`` values per validation step, from every (resumed) run's
    ``<timestamp>/vis_data/scalars.json`` in ``run_dir`` (a later run wins at equal steps)."""
    by_step: dict[int, dict] = {}
    for stamp in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
        path = os.path.join(run_dir, stamp, "vis_data", "scalars.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if "chunk/mae" in rec:
                    by_step[int(rec["step"])] = {
                        "iter": int(rec["step"]),
                        **{k.split("/", 1)[1]: v for k, v in rec.items() if k.startswith("chunk/")},
                    }
    return [by_step[k] for k in sorted(by_step)]


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    pct = [100 * v for v in values]
    return f"{mean(pct):.1f}" + (f" ± {pstdev(pct):.1f}" if len(pct) > 1 else "")


def _opt(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def collect(out: str, variants: Sequence[str], tasks: Sequence[str], seeds: Sequence[int]):
    results = {}
    for v in variants:
        for t in tasks:
            for s in seeds:
                path = os.path.join(out, "runs", v, t, f"seed{s}", "result.json")
                if os.path.isfile(path):
                    with open(path) as f:
                        results[(v, t, s)] = json.load(f)
    return results


def build_table(results, variants, tasks, seeds) -> tuple[str, str, list[str]]:
    cols = list(tasks) + ["mean"]
    md = [
        f"**ALOHA success rate (%)**, max over evaluations, mean ± std over seeds {list(seeds)}",
        "",
        "| variant | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    has_val = any(r.get("final_val_mae") is not None for r in results.values())
    if has_val:
        md[2] = md[2][:-1] + "| val chunk MAE (rad), last | hold-state baseline |"
        md[3] = md[3] + "---|---|"
    csv = ["variant,task,seed,best_sr,best_step,final_sr,final_val_mae,hold_val_mae"]
    missing = []
    for v in variants:
        cells = []
        for t in tasks:
            vals = [results[(v, t, s)]["best_sr"] for s in seeds if (v, t, s) in results]
            missing += [f"{v}/{t}/seed{s}" for s in seeds if (v, t, s) not in results]
            cells.append(_fmt(vals))
        per_seed = [
            mean(results[(v, t, s)]["best_sr"] for t in tasks)
            for s in seeds
            if all((v, t, s) in results for t in tasks)
        ]
        cells.append(_fmt(per_seed))
        if has_val:
            for key in ("final_val_mae", "hold_val_mae"):
                vals = [
                    r[key]
                    for r in (results.get((v, t, s)) for t in tasks for s in seeds)
                    if r and r.get(key) is not None
                ]
                cells.append(f"{mean(vals):.4f}" if vals else "–")
        md.append(f"| {v} | " + " | ".join(cells) + " |")
        for t in tasks:
            for s in seeds:
                r = results.get((v, t, s))
                if r:
                    csv.append(
                        f"{v},{t},{s},{r['best_sr']},{r['best_step']},{r['final_sr']},"
                        f"{_opt(r.get('final_val_mae'))},{_opt(r.get('hold_val_mae'))}"
                    )
    if missing:
        md += ["", f"Missing (partial table): {', '.join(missing)}"]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n", missing


def _mean_curve(
    runs: Sequence[dict], key: str, point: Callable[[dict, str], tuple[int, float]]
) -> tuple[list[int], list[float]]:
    """Mean over runs of ``point(entry, task) -> (step, value)`` for the entries of
    ``run[key]``, by step."""
    by_step: dict[int, list[float]] = {}
    for r in runs:
        for h in r.get(key, []):
            step, value = point(h, r["task"])
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    return steps, [mean(by_step[k]) for k in steps]


def plot_curves(results, variants, tasks, seeds, path: str) -> None:
    """SR (and, when recorded, the held-out chunk error) against fine-tuning steps, one line
    per variant (mean over tasks and seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolkit.utils.io import atomic_write

    has_val = any(r.get("val_history") for r in results.values())
    fig, axes = plt.subplots(1, 2 if has_val else 1, figsize=(11 if has_val else 6.4, 4.0),
                             dpi=120, squeeze=False)  # fmt: skip
    panels = [("history", lambda h, t: (int(h["epoch"]), 100 * h["sr"][t]))]
    if has_val:
        panels.append(("val_history", lambda h, t: (int(h["iter"]), h["mae"])))
    for ax, (key, point) in zip(axes[0], panels, strict=True):
        for v in variants:
            runs = [results[(v, t, s)] for t in tasks for s in seeds if (v, t, s) in results]
            steps, values = _mean_curve(runs, key, point)
            if steps:
                ax.plot(steps, values, marker="o", label=v)
        ax.set_xlabel("fine-tuning step")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("success rate (%)")
    axes[0, 0].set_ylim(-3, 103)
    axes[0, 0].set_title(f"ALOHA held-out: {', '.join(tasks)}")
    if has_val:
        hold = [h["hold_mae"] for r in results.values() for h in r.get("val_history", [])
                if "hold_mae" in h]  # fmt: skip
        if hold:
            axes[0, 1].axhline(mean(hold), color="grey", ls="--", lw=1, label="hold current state")
        axes[0, 1].set_ylabel("held-out chunk MAE (rad)")
        axes[0, 1].set_title("offline action error on validation demos")
    for ax in axes[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    from toolkit.utils.io import atomic_write_text

    variants = _variants(args.variants)
    if not args.collect_only:
        seen: set[str] = set()
        for config in variants.values():
            for recipe, work_dir in prerequisites(config):
                if work_dir not in seen:
                    seen.add(work_dir)
                    run_prerequisite(recipe, work_dir, args)
        for name, config in variants.items():
            for task in args.tasks:
                for seed in args.seeds:
                    run_dir = os.path.join(args.out, "runs", name, task, f"seed{seed}")
                    result_path = os.path.join(run_dir, "result.json")
                    if os.path.isfile(result_path):
                        print(f"[bench aloha] done: {name}/{task}/seed{seed}")
                        continue
                    rec = run_variant(name, config, task, seed, run_dir, args)
                    atomic_write_text(result_path, json.dumps(rec, indent=1))
                    print(
                        f"[bench aloha] {name}/{task}/seed{seed}: best {100 * rec['best_sr']:.0f}%"
                        f" @ step {rec['best_step']}",
                        flush=True,
                    )
    results = collect(args.out, list(variants), args.tasks, args.seeds)
    md, csv, missing = build_table(results, list(variants), args.tasks, args.seeds)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "table.md"), md)
    atomic_write_text(os.path.join(args.out, "table.csv"), csv)
    if results:
        plot_curves(
            results, list(variants), args.tasks, args.seeds, os.path.join(args.out, "sr_curves.png")
        )
    print(md)
    return 0
