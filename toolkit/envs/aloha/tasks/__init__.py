"""ALOHA tasks: :class:`~toolkit.envs.aloha.tasks.base.Task` subclasses registered in
:data:`TASKS` (importing this package registers them). Add a task: a module in this package
(or its ``pretrain`` sub-package) with a ``@register_task`` class; every module is imported
here, so nothing else needs editing (docs/suites/aloha.md, "Adding a task")."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from toolkit.envs.aloha.tasks.base import (
    TASKS,
    ExpertContext,
    Placement,
    Task,
    grid_slots,
    register_task,
)

__all__ = [
    "CLAMP_FINETUNE",
    "TASKS",
    "ExpertContext",
    "Placement",
    "Task",
    "expand_tasks",
    "grid_slots",
    "make_task",
    "register_task",
    "task_groups",
]


def _import_task_modules() -> None:
    """Import every task module below this package (registration is the import's side effect)."""
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        if info.name.rsplit(".", 1)[-1] not in ("base",):
            importlib.import_module(info.name)


_import_task_modules()

#: CLAMP's six simulated fine-tuning tasks (Appendix C), by their names in this suite.
CLAMP_FINETUNE = (
    "can_opener_in_caddy",
    "screwdriver_in_caddy",
    "pen_in_container",
    "mug_on_plate",
    "plate_on_rack",
    "drawer_open",
)


def make_task(name: str) -> Task:
    """A new instance of the registered task ``name`` (unknown names list the valid ones)."""
    from toolkit.envs.base import check_task

    return TASKS[check_task(name, sorted(TASKS), "aloha")]()


def task_groups() -> dict[str, tuple[str, ...]]:
    """Task groups accepted by :func:`expand_tasks`: ``finetune`` (the CLAMP fine-tuning tasks
    implemented so far), ``pretrain`` (every task whose ``family`` is ``"pretrain"``: disjoint
    from the fine-tuning tasks) and ``all``."""
    return {
        "finetune": tuple(t for t in CLAMP_FINETUNE if t in TASKS),
        "pretrain": tuple(sorted(n for n, c in TASKS.items() if c.family == "pretrain")),
        "all": tuple(sorted(TASKS)),
    }


def expand_tasks(items: Iterable[str]) -> list[str]:
    """Task names from names and groups, comma or space separated, in order, without repeats.

    Unknown names raise :class:`~toolkit.envs.base.UnknownTaskError` listing the valid ones.
    """
    from toolkit.envs.base import check_task

    groups = task_groups()
    out: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            for task in groups.get(name, (name,)):
                task = check_task(task, sorted(TASKS), "aloha")
                if task not in out:
                    out.append(task)
    return out
