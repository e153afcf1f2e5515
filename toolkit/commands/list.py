"""``toolkit list [REGISTRY]``: every registered component with its one-line docstring."""

from __future__ import annotations

import argparse
import inspect

HELP = "list registered components, grouped by registry"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("registry", nargs="?", help="only this registry (e.g. backbones, models)")
    p.add_argument("--all", action="store_true", help="include mmengine's own components")


def _summary(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(args: argparse.Namespace) -> int:
    from toolkit.registry import REGISTRIES
    from toolkit.utils.errors import ConfigError

    names = list(REGISTRIES)
    if args.registry:
        key = args.registry.lower()
        match = [n for n in names if n == key or n.rstrip("s") == key.rstrip("s")]
        if not match:
            raise ConfigError(f"unknown registry '{args.registry}'; known: {', '.join(names)}")
        names = match
    for name in names:
        reg = REGISTRIES[name]
        reg.import_from_location()
        entries = dict(reg._module_dict)
        if args.all and reg.parent is not None:
            entries.update(reg.parent._module_dict)
        if not entries and not args.registry:
            continue
        print(f"{name} ({reg.scope}::{reg.name}, {len(entries)})")
        width = max((len(k) for k in entries), default=0)
        for key in sorted(entries):
            print(f"  {key:<{width}}  {_summary(entries[key])}")
    return 0
