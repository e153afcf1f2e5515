"""The ``toolkit`` command line.

Each sub-command is one module in :mod:`toolkit.commands` that defines

- ``HELP: str``: a one-line description,
- ``add_arguments(parser: argparse.ArgumentParser) -> None``,
- ``main(args: argparse.Namespace) -> int``.

Modules are discovered, so a new command is a new file and nothing else. Heavy imports
(torch, mujoco...) belong inside ``main`` so that ``toolkit --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

# OpenMP threads that finish a parallel region spin (GNU OpenMP's default ACTIVE policy) until
# the next one. With one core taken by anything else (a second run, a rollout worker, the
# simulator), every region then waits for a descheduled thread: measured here, a 2-thread CLAR
# pretraining step went from 0.6 s to 6.7 s with one core busy, and back to 0.6-0.7 s with
# PASSIVE (docs/performance.md). Must be set before torch (libgomp) is first loaded; spawned
# rollout workers and `python -m toolkit` subprocesses inherit it. OMP_WAIT_POLICY=ACTIVE
# restores spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import toolkit.commands as _commands_pkg
from toolkit.utils.errors import ToolkitError


def _discover() -> dict[str, object]:
    mods = {}
    for info in pkgutil.iter_modules(_commands_pkg.__path__):
        if info.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"{_commands_pkg.__name__}.{info.name}")
        except Exception as exc:  # one broken command must not take the whole CLI down
            mods[info.name] = _broken_command(info.name, exc)
            continue
        if hasattr(mod, "main") and hasattr(mod, "add_arguments"):
            mods[getattr(mod, "NAME", info.name)] = mod
    return dict(sorted(mods.items()))


def _broken_command(name: str, exc: Exception) -> object:
    class _Broken:
        HELP = f"(unavailable: {type(exc).__name__}: {exc})"

        @staticmethod
        def add_arguments(p: argparse.ArgumentParser) -> None:
            p.add_argument("rest", nargs=argparse.REMAINDER)

        @staticmethod
        def main(args: argparse.Namespace) -> int:
            raise ToolkitError(f"command '{name}' failed to import: {type(exc).__name__}: {exc}")

    return _Broken


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolkit",
        description="3D representation pretraining for robot manipulation (CLAMP, CLAR).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _discover().items():
        help_ = getattr(mod, "HELP", "")
        p = sub.add_parser(name, help=help_, description=help_)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except ToolkitError as exc:
        print(f"toolkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"toolkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
