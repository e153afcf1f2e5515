"""``toolkit gen DATASET_SCRIPT [script args...]``: run a dataset recipe script.

A dataset recipe (``datasets/<name>.py``) is a plain script, not an importable package (the
``datasets/`` folder must not shadow Hugging Face ``datasets``). It defines
``main(argv: list[str]) -> int``; this command loads it from its path and calls ``main`` with
the remaining arguments, so ``toolkit gen datasets/metaworld_clar.py --help`` shows the
recipe's own options.
"""

from __future__ import annotations

import argparse
import glob
import os
import runpy

from toolkit.utils.errors import ToolkitError

HELP = "generate a dataset with a recipe script (datasets/<name>.py)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", help="dataset recipe script, e.g. datasets/metaworld_clar.py")
    parser.add_argument(
        "script_args", nargs=argparse.REMAINDER, help="arguments passed to the script's main()"
    )


def _available(script: str) -> str:
    folder = os.path.dirname(script) or "datasets"
    found = sorted(glob.glob(os.path.join(folder, "*.py")))
    return ", ".join(found) if found else f"no *.py in {folder}/"


def load_recipe(script: str):
    """The ``main`` function of the recipe at ``script``."""
    if not os.path.isfile(script):
        raise ToolkitError(f"dataset script not found: {script} (available: {_available(script)})")
    namespace = runpy.run_path(script, run_name="__toolkit_gen__")
    main = namespace.get("main")
    if not callable(main):
        raise ToolkitError(f"{script}: a dataset script must define main(argv) -> int")
    return main


def main(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    recipe = load_recipe(args.script)
    try:
        return int(recipe(list(args.script_args)) or 0)
    except SystemExit as exc:  # argparse inside the recipe (--help, bad options)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
