"""``toolkit data check DIR`` and ``toolkit data info FILE|DIR``: episode files.

``check`` reports every corrupt, truncated or inconsistent episode file (and every temporary
file a killed writer left) with the reason, and exits 1 if there is any; ``info`` summarizes one
episode file (attributes, datasets) or a directory (episodes, steps, tasks, success rates).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from toolkit.utils.errors import ToolkitError

HELP = "check or summarize episode files (HDF5, one per episode)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = sub.add_parser("check", help="report every bad episode file under DIR (exit 1 if any)")
    p.add_argument("paths", nargs="+", metavar="DIR", help="directories or episode files")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument(
        "--quick",
        action="store_true",
        help="check attributes and shapes only (skip reading the data)",
    )
    p.add_argument("-j", "--workers", type=int, default=1, help="parallel processes (default 1)")
    p.set_defaults(_data_run=_check)
    p = sub.add_parser("info", help="summarize an episode file or a directory of episodes")
    p.add_argument("path", metavar="FILE|DIR")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-cache", action="store_true", help="ignore the cached directory manifest")
    p.set_defaults(_data_run=_info)


def main(args: argparse.Namespace) -> int:
    return int(args._data_run(args) or 0)


def _targets(paths: list[str]) -> list[str]:
    """Episode files and writers' leftover temporary files under ``paths``."""
    from toolkit.data.episodes_index import find_episode_files
    from toolkit.data.episodes_schema import TEMP_SUFFIX

    files: list[str] = []
    for path in paths:
        if os.path.isfile(path):
            files.append(path)
        elif os.path.isdir(path):
            files += [os.path.join(path, rel) for rel in find_episode_files(path)]
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files += [os.path.join(folder, n) for n in sorted(names) if n.endswith(TEMP_SUFFIX)]
        else:
            raise ToolkitError(f"{path}: expected an episode file or a directory, found nothing")
    return files


def _check(args: argparse.Namespace) -> int:
    from toolkit.data.episodes_check import check_episode

    start = time.perf_counter()
    files = _targets(args.paths)
    if not files:
        raise ToolkitError(f"no episode files (*.hdf5, *.h5, *.hdf) under {', '.join(args.paths)}")
    deep = [not args.quick] * len(files)
    if args.workers > 1 and len(files) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(_check_one, files, deep, chunksize=8))
    else:
        results = [check_episode(f, deep=d) for f, d in zip(files, deep)]
    bad = {f: r for f, r in zip(files, results) if r}
    seconds = time.perf_counter() - start
    if args.json:
        print(
            json.dumps(
                {
                    "checked": len(files),
                    "ok": len(files) - len(bad),
                    "bad": len(bad),
                    "seconds": round(seconds, 3),
                    "problems": bad,
                },
                indent=1,
            )
        )
    else:
        for problems in bad.values():
            for line in problems:
                print(line)
        print(
            f"checked {len(files)} file(s) in {seconds:.1f} s: {len(files) - len(bad)} ok, "
            f"{len(bad)} with problems",
            file=sys.stderr if bad else sys.stdout,
        )
    return 1 if bad else 0


def _check_one(path: str, deep: bool) -> list[str]:
    from toolkit.data.episodes_check import check_episode

    return check_episode(path, deep=deep)


def _file_info(path: str) -> dict[str, Any]:
    import h5py

    from toolkit.data.episodes_check import open_episode_file

    f, layout = open_episode_file(path)
    datasets: dict[str, Any] = {}
    with f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                datasets[name] = {
                    "shape": list(obj.shape),
                    "dtype": str(obj.dtype),
                    "chunks": list(obj.chunks) if obj.chunks else None,
                    "compression": obj.compression,
                    "bytes": int(obj.id.get_storage_size()),
                }

        f.visititems(visit)
    return {
        "path": path,
        "bytes": os.path.getsize(path),
        "attrs": layout.attrs,
        "datasets": datasets,
    }


def _info(args: argparse.Namespace) -> int:
    if os.path.isfile(args.path):
        info = _file_info(args.path)
        if args.json:
            print(json.dumps(info, indent=1, default=str))
            return 0
        print(f"{info['path']}  ({info['bytes'] / 1e6:.2f} MB)")
        for key, value in info["attrs"].items():
            print(f"  {key}: {json.dumps(value, default=str)}")
        print("  datasets:")
        for name, d in info["datasets"].items():
            shape = "x".join(str(s) for s in d["shape"])
            comp = d["compression"] or "-"
            print(
                f"    /{name:<34} {shape:<16} {d['dtype']:<8} {comp:<5} {d['bytes'] / 1e6:8.2f} MB"
            )
        return 0
    if not os.path.isdir(args.path):
        raise ToolkitError(f"{args.path}: expected an episode file or a directory, found nothing")
    from toolkit.data.episodes_index import EpisodeIndex

    start = time.perf_counter()
    idx = EpisodeIndex(args.path, cache=not args.no_cache, on_error="skip")
    summary = idx.summary()
    summary["index_seconds"] = round(time.perf_counter() - start, 3)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(
        f"{summary['directory']}: {summary['episodes']} episodes, {summary['steps']} steps "
        f"(indexed in {summary['index_seconds']:.2f} s)"
    )
    print(
        f"  suites: {', '.join(summary['suites']) or '-'}; cameras: "
        f"{', '.join(summary['cameras']) or '-'}"
    )
    for task, t in summary["tasks"].items():
        print(
            f"  {task:<28} {t['episodes']:>7} episodes {t['steps']:>9} steps  "
            f"success {100 * t['success_rate']:.1f}%"
        )
    if summary["unreadable"]:
        print(f"  {summary['unreadable']} unreadable file(s): run `toolkit data check {args.path}`")
    return 0
