"""``toolkit bench NAME``: speed / memory benchmarks that print figures and ratios.

Each benchmark is a module in :mod:`toolkit.bench` defining ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Benchmarks measure and print; nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import toolkit.bench as _bench_pkg

HELP = "run a benchmark (ops, ...) and print its figures and ratios"


def _benchmarks() -> dict[str, object]:
    mods = {}
    for info in pkgutil.iter_modules(_bench_pkg.__path__):
        if not info.name.startswith("_"):
            mods[info.name] = importlib.import_module(f"{_bench_pkg.__name__}.{info.name}")
    return mods


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, mod in sorted(_benchmarks().items()):
        p = sub.add_parser(name, help=getattr(mod, "HELP", ""))
        mod.add_arguments(p)
        p.set_defaults(_bench_run=mod.run)


def main(args: argparse.Namespace) -> int:
    return int(args._bench_run(args) or 0)
