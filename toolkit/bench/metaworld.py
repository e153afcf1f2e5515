"""``toolkit bench metaworld``: encoder x task x seed success-rate table (CLAR Table I layout).

Each run trains one policy (``toolkit train`` in a subprocess, so runs are isolated and a
killed run resumes from its last checkpoint) and writes one result file,
``<out>/runs/<encoder>/<task>/seed<k>/result.json``. A rerun skips finished results, so the table
can be filled in parts; ``--collect-only`` just builds the table from what exists, and says which
cells are missing. Outputs: ``<out>/table.md``, ``<out>/table.csv``, ``<out>/sr_curves.png``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from statistics import mean, pstdev
from typing import Any

HELP = "MetaWorld success-rate table over encoders x tasks x seeds (resumable, CLAR layout)"

#: Short encoder names -> recipe files (any config path is accepted as well).
ENCODERS: dict[str, str] = {
    "pointnet": "baselines/bc_pointnet_1xb16_150e_metaworld.py",
    "pointnet2": "baselines/bc_pointnet2_1xb16_150e_metaworld.py",
    "dp3": "baselines/bc_dp3enc_1xb16_150e_metaworld.py",
    "pointmae": "recipes/clar/bc_pointmae-scratch_1xb16_150e_metaworld.py",
    # CLAR-pretrained Point-MAE (paper size; pretrain first, see docs/clar.md)
    "clar": "recipes/clar/bc_clar-pointmae_1xb16_150e_metaworld.py",
    # CPU-sized variants (same protocol, narrower encoders)
    "clar-tiny": "recipes/clar/bc_clar-pointmae-tiny_1xb16_150e_metaworld.py",
    "pointnet-256": "baselines/bc_pointnet-256_1xb16_150e_metaworld.py",
    "pointnet2-tiny": "baselines/bc_pointnet2-tiny_1xb16_150e_metaworld.py",
    "pointmae-tiny": "recipes/clar/bc_pointmae-tiny-scratch_1xb16_150e_metaworld.py",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoders",
        nargs="+",
        default=["pointnet", "pointmae"],
        help=f"names ({', '.join(ENCODERS)}) or config paths; NAME=CONFIG also works",
    )
    p.add_argument("--tasks", nargs="+", default=["clar"], help="tasks or groups (clar, easy, ...)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--data", default="data/metaworld_clar", help="dataset from `toolkit gen`")
    p.add_argument("--out", default="work_dirs/bench_metaworld")
    p.add_argument("--epochs", type=int, default=None, help="override max_epochs")
    p.add_argument("--eval-interval", type=int, default=None)
    p.add_argument("--episodes", type=int, default=None, help="rollouts per evaluation")
    p.add_argument(
        "--rollout-workers",
        type=int,
        default=None,
        help="processes per evaluation (RolloutEvalHook.rollout_workers; for idle cores)",
    )
    p.add_argument(
        "--videos",
        type=int,
        default=None,
        help="MP4s of the first K rollouts per task at each run's last evaluation",
    )
    p.add_argument("--train-episodes", type=int, default=None, help="demos per task to train on")
    p.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="extra overrides for every run",
    )
    p.add_argument("--collect-only", action="store_true", help="only build the table")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per training run (default: torch's, or cores // --jobs with --jobs)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at the same time (each a process; on a 2-core machine, --jobs 2 "
        "keeps both cores busy while one run evaluates in closed loop)",
    )
    p.add_argument(
        "--tune-malloc",
        action="store_true",
        help="pass --tune-malloc to every training run (faster CPU steps, see docs/performance.md)",
    )
    p.add_argument(
        "--multitask",
        action="store_true",
        help="one policy per encoder x seed over all --tasks (CLAR Table III; use multi-task "
        "recipes with language), evaluated per task",
    )
    p.add_argument("--title", default="MetaWorld success rate (%), best over evaluations")


def resolve_configs(items: Sequence[str], known: dict[str, str], kind: str) -> dict[str, str]:
    """``{name: config path}`` from short names of ``known``, config paths or NAME=CONFIG."""
    from toolkit.utils.errors import ConfigError

    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            path = known.get(item, item)
            name = item if item in known else os.path.splitext(os.path.basename(item))[0]
        if not os.path.isfile(path):
            raise ConfigError(
                f"unknown {kind} '{item}': not one of {sorted(known)} and no config file '{path}'"
            )
        out[name] = path
    return out


def _resolve_encoders(items: Sequence[str]) -> dict[str, str]:
    return resolve_configs(items, ENCODERS, "encoder")


def _eval_hook(cfg: Any) -> dict:
    for h in cfg.get("custom_hooks", []):
        if str(h.get("type", "")).split(".")[-1] == "RolloutEvalHook":
            return dict(h)
    return {}


def _hooks_literal(hooks: list[dict]) -> str:
    return (
        "["
        + ",".join("dict(" + ",".join(f"{k}={v!r}" for k, v in h.items()) + ")" for h in hooks)
        + "]"
    )


def run_one(
    config: str, task: str | Sequence[str], seed: int, run_dir: str, args: argparse.Namespace
) -> dict:
    """Train (or resume) one policy and return its result record.

    ``task`` is one task, or a list for one multi-task policy (``--multitask``): then the record
    has ``best_sr`` per task at the evaluation with the best mean (the paper's protocol).
    """
    tasks = [task] if isinstance(task, str) else list(task)
    from toolkit.engine.runner import load_config

    cfg = load_config(config)
    hooks = [dict(h) for h in cfg.get("custom_hooks", [])]
    for h in hooks:
        if str(h.get("type", "")).split(".")[-1] == "RolloutEvalHook":
            h["tasks"] = tasks
            if args.eval_interval:
                h["interval"] = args.eval_interval
            if args.episodes:
                h["episodes"] = args.episodes
            if getattr(args, "rollout_workers", None):
                h["rollout_workers"] = args.rollout_workers
            if getattr(args, "videos", None):
                h["video_last"] = args.videos
    overrides = [
        f"train_dataloader.dataset.tasks={tasks!r}",
        f"train_dataloader.dataset.data_root={args.data}",
        f"custom_hooks={_hooks_literal(hooks)}",
    ]
    if args.epochs:
        overrides.append(f"train_cfg.max_epochs={args.epochs}")
    if args.train_episodes:
        overrides.append(f"train_dataloader.dataset.max_episodes_per_task={args.train_episodes}")
    overrides += list(args.cfg_options)
    resume = ["--resume"] if os.path.isfile(os.path.join(run_dir, "last_checkpoint")) else []
    cmd = [
        sys.executable,
        "-m",
        "toolkit",
        "train",
        config,
        "--work-dir",
        run_dir,
        "--seed",
        str(seed),
        *resume,
        *(["--threads", str(args.threads)] if getattr(args, "threads", None) else []),
        *(["--tune-malloc"] if getattr(args, "tune_malloc", False) else []),
        "--cfg-options",
        *overrides,
    ]
    os.makedirs(run_dir, exist_ok=True)
    start = time.time()
    with open(os.path.join(run_dir, "train.log"), "a") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        with open(os.path.join(run_dir, "train.log")) as log:
            tail = "".join(log.readlines()[-3:]).strip()
        raise RuntimeError(
            f"training failed (exit {proc.returncode}); see {run_dir}/train.log. Last lines:\n{tail}"
        )
    with open(os.path.join(run_dir, "eval", "history.json")) as f:
        history = json.load(f)
    best = max(history, key=lambda h: h["sr_mean"])
    timing = run_time(run_dir, history)
    if not isinstance(task, str):
        return {
            "config": config,
            "tasks": tasks,
            "seed": seed,
            "best_sr": {t: best["sr"][t] for t in tasks},
            "best_epoch": best["epoch"],
            "final_sr": {t: history[-1]["sr"][t] for t in tasks},
            "history": history,
            "wall_time_s": round(time.time() - start, 1),
            **timing,
        }
    return {
        "config": config,
        "task": task,
        "seed": seed,
        "best_sr": best["sr"][task],
        "best_epoch": best["epoch"],
        "final_sr": history[-1]["sr"][task],
        "history": history,
        "wall_time_s": round(time.time() - start, 1),
        **timing,
    }


def run_time(run_dir: str, history: Sequence[dict]) -> dict[str, Any]:
    """The protocol's cost of a run, also when it was interrupted and resumed.

    ``wall_time_s`` only covers the last invocation. This sums, over every Runner log under
    ``run_dir`` (one ``<timestamp>/vis_data/scalars.json`` per start), the logged step time
    times the iterations it covers (an iteration redone after a resume counts once), plus the
    evaluations' own timings from ``history``. Checkpoint saving and start-up are not counted.

    Returns:
        ``{"train_time_s", "eval_time_s", "protocol_time_s", "segments"}``.
    """
    per_iter: dict[int, float] = {}
    logs = sorted(glob.glob(os.path.join(run_dir, "*", "vis_data", "scalars.json")))
    for path in logs:  # later starts overwrite the iterations they redid
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut off by a kill
                    continue
                if "time" in rec and "iter" in rec and "lr" in rec:  # training records only
                    per_iter[int(rec["iter"])] = float(rec["time"])
    train, prev = 0.0, 0
    for it in sorted(per_iter):
        train += per_iter[it] * (it - prev)  # the logged time is a mean over the interval
        prev = it
    evals = float(sum(h.get("seconds", 0.0) for h in history))
    return {
        "train_time_s": round(train, 1),
        "eval_time_s": round(evals, 1),
        "protocol_time_s": round(train + evals, 1),
        "segments": len(logs),
    }


def collect(
    out: str,
    encoders: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
    multitask: bool = False,
) -> dict:
    results: dict[tuple[str, str, int], dict] = {}
    for enc in encoders:
        if multitask:  # one run per seed; its record holds every task's SR
            for seed in seeds:
                path = os.path.join(out, "runs", enc, "multitask", f"seed{seed}", "result.json")
                if os.path.isfile(path):
                    with open(path) as f:
                        rec = json.load(f)
                    for t in tasks:
                        if t in rec["best_sr"]:
                            results[(enc, t, seed)] = {
                                **rec, "task": t, "best_sr": rec["best_sr"][t],
                                "final_sr": rec["final_sr"][t],
                            }  # fmt: skip
            continue
        for task in tasks:
            for seed in seeds:
                path = os.path.join(out, "runs", enc, task, f"seed{seed}", "result.json")
                if os.path.isfile(path):
                    with open(path) as f:
                        results[(enc, task, seed)] = json.load(f)
    return results


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    pct = [100 * v for v in values]
    return f"{mean(pct):.1f}" + (f" ± {pstdev(pct):.1f}" if len(pct) > 1 else "")


def build_table(
    results: dict, encoders: Sequence[str], tasks: Sequence[str], seeds: Sequence[int], title: str
) -> tuple[str, str]:
    """Markdown and CSV in CLAR's layout: tasks as columns grouped by difficulty, then means."""
    from toolkit.envs.metaworld.tasks import DIFFICULTY

    groups = [g for g in ("easy", "medium", "hard") if any(DIFFICULTY.get(t) == g for t in tasks)]
    cols = list(tasks) + [f"{g} mean" for g in groups] + ["mean"]
    md = [
        f"**{title}** (mean ± std over seeds {list(seeds)})",
        "",
        "| encoder | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    csv = ["encoder,seed," + ",".join(cols)]
    missing = []
    for enc in encoders:
        cells = []
        per_task = {
            t: [results[(enc, t, s)]["best_sr"] for s in seeds if (enc, t, s) in results]
            for t in tasks
        }
        missing += [
            f"{enc}/{t}/seed{s}" for t in tasks for s in seeds if (enc, t, s) not in results
        ]
        for t in tasks:
            cells.append(_fmt(per_task[t]))
        for g in groups + [None]:
            sel = [t for t in tasks if g is None or DIFFICULTY.get(t) == g]
            # a group mean per seed, over that seed's finished tasks only when all are there
            vals = []
            for s in seeds:
                if all((enc, t, s) in results for t in sel):
                    vals.append(mean(results[(enc, t, s)]["best_sr"] for t in sel))
            cells.append(_fmt(vals))
        md.append(f"| {enc} | " + " | ".join(cells) + " |")
        for s in seeds:
            row = [
                f"{100 * results[(enc, t, s)]['best_sr']:.1f}" if (enc, t, s) in results else ""
                for t in tasks
            ]
            csv.append(f"{enc},{s}," + ",".join(row) + "," * (len(cols) - len(tasks)))
    if missing:
        md += [
            "",
            f"PARTIAL: {len(missing)} run(s) missing: {', '.join(missing[:20])}"
            + (" ..." if len(missing) > 20 else ""),
        ]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n"


def _run_jobs(jobs: list[tuple], args: argparse.Namespace, multitask: bool) -> None:
    """Train every unfinished run, ``args.jobs`` at a time; one result file per finished run.

    Runs are subprocesses, so threads are enough to drive them (one thread: in order). A
    failed run does not stop the others; all failures are raised together at the end. With
    ``--jobs N`` and no ``--threads``, each run gets ``cores // N`` torch threads: N runs with
    all cores' threads each would contend for the cores at every parallel region.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from toolkit.utils.io import atomic_write_text

    n_jobs = getattr(args, "jobs", None)
    n_jobs = 1 if n_jobs is None else int(n_jobs)
    if n_jobs < 1:
        from toolkit.utils.errors import ConfigError

        raise ConfigError(f"toolkit bench metaworld: --jobs must be >= 1, got {n_jobs}")
    if n_jobs > 1 and not getattr(args, "threads", None):
        args = argparse.Namespace(
            **{**vars(args), "threads": max(1, (os.cpu_count() or 1) // n_jobs)}
        )
    total = len(jobs)
    todo = []
    for done, (enc, config, task, seed) in enumerate(jobs, 1):
        label = "multitask" if multitask else task
        run_dir = os.path.join(args.out, "runs", enc, label, f"seed{seed}")
        if os.path.isfile(os.path.join(run_dir, "result.json")):
            print(f"[{done}/{total}] {enc} / {label} / seed {seed}: done, skipped")
        else:
            todo.append(
                (f"[{done}/{total}] {enc} / {label} / seed {seed}", config, task, seed, run_dir)
            )

    def report(name: str, res: dict) -> None:
        best = res["best_sr"]
        shown = (
            f"{100 * best:.0f}%"
            if not isinstance(best, dict)
            else ", ".join(f"{t} {100 * v:.0f}%" for t, v in best.items())
        )
        print(
            f"{name}: best SR {shown} (epoch {res['best_epoch']}), {res['wall_time_s']:.0f}s wall"
            f" (protocol {res['protocol_time_s']:.0f}s over {res['segments']} start(s))",
            flush=True,
        )

    def one(name: str, config: str, task: Any, seed: int, run_dir: str) -> dict:
        print(f"{name}: training ...", flush=True)
        res = run_one(config, task, seed, run_dir, args)
        # written as soon as the run ends, so a later failure elsewhere loses nothing
        atomic_write_text(os.path.join(run_dir, "result.json"), json.dumps(res, indent=1))
        return res

    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        pending = {pool.submit(one, *item): item[0] for item in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                name = pending.pop(fut)
                try:
                    report(name, fut.result())
                except Exception as exc:  # the other runs go on; all failures are raised below
                    print(f"{name}: FAILED: {exc}", flush=True)
                    errors.append(f"{name}: {exc}")
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(todo)} run(s) failed:\n" + "\n".join(errors))


def run(args: argparse.Namespace) -> int:
    from toolkit.engine.plots import plot_sr_curves
    from toolkit.envs.metaworld.tasks import expand_tasks
    from toolkit.utils.io import atomic_write_text

    encoders = _resolve_encoders(args.encoders)
    tasks = expand_tasks(args.tasks)
    multitask = bool(getattr(args, "multitask", False))
    jobs = [
        (enc, config, tasks if multitask else task, seed)
        for enc, config in encoders.items()
        for task in (["multitask"] if multitask else tasks)
        for seed in args.seeds
    ]
    if not args.collect_only:
        _run_jobs(jobs, args, multitask)
    results = collect(args.out, list(encoders), tasks, args.seeds, multitask)
    md, csv = build_table(results, list(encoders), tasks, args.seeds, args.title)
    atomic_write_text(os.path.join(args.out, "table.md"), md)
    atomic_write_text(os.path.join(args.out, "table.csv"), csv)
    curves: dict[str, list[dict]] = {}
    for enc in encoders:
        # mean SR over this encoder's finished runs, per evaluation epoch
        by_epoch: dict[int, list[float]] = {}
        for (e, _t, _s), r in results.items():
            if e == enc:
                for h in r["history"]:
                    by_epoch.setdefault(h["epoch"], []).append(h["sr_mean"])
        curves[enc] = [
            {"epoch": ep, "sr": {"mean": mean(v)}, "sr_mean": mean(v)}
            for ep, v in sorted(by_epoch.items())
        ]
    if any(curves.values()):
        plot_sr_curves(curves, os.path.join(args.out, "sr_curves.png"), title="mean SR over tasks")
    print()
    print(md)
    print(f"table: {args.out}/table.md, {args.out}/table.csv; curves: {args.out}/sr_curves.png")
    return 0
