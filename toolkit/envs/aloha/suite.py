"""The ALOHA suite, registered as ``AlohaSuite`` in :data:`toolkit.registry.SUITES`."""

from __future__ import annotations

from typing import Any

from toolkit.envs.aloha.cameras import CAMERA_RIG, DEFAULT_CAMERAS
from toolkit.envs.aloha.seeds import EVAL_SEED_OFFSET
from toolkit.envs.base import CameraSpec, Suite, normalize_cameras
from toolkit.registry import SUITES


@SUITES.register_module()
class AlohaSuite(Suite):
    """Bimanual ALOHA (two ViperX 300 arms, gym-aloha's model) with CLAMP's tasks and rig.

    14-d absolute joint-position actions at 50 Hz, 14-d proprioception (``qpos``), RGB-D from
    front_left / back_right / left_wrist / right_wrist (+ optional overhead) at 224x224, a
    merged world point cloud and CLAMP's text state. Tasks: :data:`toolkit.envs.aloha.tasks.TASKS`.
    Needs ``pip install -e .[aloha]``; see docs/suites/aloha.md.

    Args:
        cameras: default cameras of the envs this suite builds (``make_env`` can override).
        max_steps: episode horizon (default: each task's own).
        **env_defaults: default keyword arguments of :class:`AlohaEnv` (``num_points``,
            ``rgb``, ``depth``, ``points``, ``bounds``...).
    """

    name = "aloha"
    action_dim = 14
    proprio_dim = 14
    eval_seed_offset = EVAL_SEED_OFFSET
    demo_seeds = range(0, EVAL_SEED_OFFSET)

    def __init__(self, cameras=None, max_steps: int | None = None, **env_defaults: Any) -> None:
        self._max_steps = None if max_steps is None else int(max_steps)
        self._cameras = cameras
        self.env_defaults = env_defaults

    @property
    def max_steps(self) -> int:  # type: ignore[override]
        """Suite-wide horizon: the override, else the longest task horizon."""
        if self._max_steps is not None:
            return self._max_steps
        from toolkit.envs.aloha.tasks import TASKS

        return max(cls.max_steps for cls in TASKS.values())

    @property
    def tasks(self) -> list[str]:
        from toolkit.envs.aloha.tasks import TASKS

        return sorted(TASKS)

    @property
    def camera_rig(self) -> dict[str, CameraSpec]:
        return dict(CAMERA_RIG)

    @property
    def default_cameras(self) -> tuple[CameraSpec, ...]:
        return normalize_cameras(
            self._cameras, default=tuple(CAMERA_RIG[c] for c in DEFAULT_CAMERAS)
        )

    def task_max_steps(self, task: str) -> int:
        from toolkit.envs.aloha.tasks import TASKS

        return self._max_steps or TASKS[self.check_task(task)].max_steps

    def make_env(self, task: str, seed: int | None = None, cameras=None, **kwargs: Any):
        """An :class:`~toolkit.envs.aloha.env.AlohaEnv` (see its docstring for kwargs)."""
        from toolkit.envs.aloha.env import AlohaEnv

        self.check_task(task)
        opts = {"max_steps": self.task_max_steps(task), **self.env_defaults, **kwargs}
        return AlohaEnv(
            task,
            seed=seed,
            cameras=cameras if cameras is not None else self.default_cameras,
            **opts,
        )

    def expert(self, task: str, env=None, **_: Any):
        """The scripted expert (:class:`~toolkit.envs.aloha.expert.AlohaExpert`); reads obs only."""
        from toolkit.envs.aloha.expert import AlohaExpert

        return AlohaExpert(self.check_task(task))

    def description(self, task: str) -> str:
        from toolkit.envs.aloha.tasks import TASKS

        return TASKS[self.check_task(task)].description

    def __repr__(self) -> str:
        return f"AlohaSuite(tasks={self.tasks}, cameras={[c.name for c in self.default_cameras]})"
