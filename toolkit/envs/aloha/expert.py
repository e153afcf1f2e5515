"""Scripted ALOHA experts as toolkit policies (``reset`` / ``select_action``).

:class:`AlohaExpert` runs a task's expert script (:meth:`Task.script`, a generator of 14-d
actions built from :mod:`toolkit.envs.aloha.ik` motion primitives). It reads only the
observation: ``qpos`` (where the arms are), ``object_poses`` / ``object_joints`` (privileged
object state) and ``ee_pose``; IK runs on its own robot-only model, so one expert can drive
any env of its task (e.g. a state-only dry run, then a rendering replay). Deterministic:
the same observations give the same actions.

``stage`` is the integer task progress (the task's ``stages`` numbering): the furthest of
the stage the script reports and the progress observed in ``obs["state"]["stage"]``, the value
CLAMP's text metadata carries. After the script ends the expert holds its last command.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from toolkit.envs.aloha.tasks import ExpertContext, Task, make_task
from toolkit.utils.errors import ToolkitError

__all__ = ["AlohaExpert"]


class AlohaExpert:
    """The scripted expert of one ALOHA task (a :class:`~toolkit.envs.base.Policy`)."""

    def __init__(self, task: str | Task) -> None:
        self.task = make_task(task) if isinstance(task, str) else task
        self.task.object_infos()  # build the object table once, not on the first step
        self._ctx: ExpertContext | None = None
        self._gen: Iterator[np.ndarray] | None = None
        self._last: np.ndarray | None = None
        self.done = False

    @property
    def stage(self) -> int:
        """Integer task progress: the furthest of the script's stage and the observed one."""
        return 0 if self._ctx is None else self._ctx.progress

    @property
    def ik_failures(self) -> int:
        return 0 if self._ctx is None else self._ctx.motion.ik_failures

    def reset(self) -> None:
        self._ctx, self._gen, self._last, self.done = None, None, None, False

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """The next 14-d action (float32) for observation ``obs``."""
        for key in ("qpos", "object_poses"):
            if key not in obs:
                raise ToolkitError(
                    f"AlohaExpert needs obs[{key!r}] (an AlohaEnv observation); got keys "
                    f"{sorted(obs)}"
                )
        if self._gen is None:
            self._ctx = ExpertContext(self.task, obs)
            self._gen = self.task.script(self._ctx)
        self._ctx.observe(obs)
        if not self.done:
            try:
                self._last = np.asarray(next(self._gen), dtype=np.float64)
            except StopIteration:
                self.done = True
        if self._last is None:
            self._last = self._ctx.motion.action()
        return self._last.astype(np.float32)

    def __repr__(self) -> str:
        return f"AlohaExpert({self.task.name!r}, scripted IK)"
