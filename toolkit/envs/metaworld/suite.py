"""The MetaWorld suite, registered as ``MetaWorldSuite`` in :data:`toolkit.registry.SUITES`."""

from __future__ import annotations

from typing import Any

from toolkit.envs.base import CameraSpec, Suite
from toolkit.envs.metaworld import seeds as S
from toolkit.envs.metaworld import tasks as T
from toolkit.envs.metaworld.cameras import CAMERA_RIG, DEFAULT_CAMERA
from toolkit.registry import SUITES


@SUITES.register_module()
class MetaWorldSuite(Suite):
    """MetaWorld v3 (Sawyer arm, 4-d end-effector delta + gripper actions), CLAR protocol.

    Tasks: the 15 CLAR tasks (easy / medium / hard) and button-press (multi-task set); see
    :mod:`toolkit.envs.metaworld.tasks`. Default camera ``corner`` at 224x224, episodes of 200
    steps, point clouds of 1024 points. Needs ``pip install -e .[metaworld]``.

    Args:
        cameras: default cameras of the envs this suite builds (``make_env`` can override).
        max_steps: episode horizon.
        **env_defaults: default keyword arguments of :class:`MetaWorldEnv` (``num_points``,
            ``rgb``, ``depth``, ``points``, ``bounds``, ``shadows``...).
    """

    name = "metaworld"
    action_dim = 4
    proprio_dim = 4
    eval_seed_offset = S.EVAL_SEED_OFFSET
    demo_seeds = range(0, S.EVAL_SEED_OFFSET)

    def __init__(self, cameras=None, max_steps: int = 200, **env_defaults: Any) -> None:
        self.max_steps = int(max_steps)
        self._cameras = cameras
        self.env_defaults = env_defaults

    @property
    def tasks(self) -> list[str]:
        return list(T.TASKS)

    @property
    def camera_rig(self) -> dict[str, CameraSpec]:
        return dict(CAMERA_RIG)

    @property
    def default_cameras(self) -> tuple[CameraSpec, ...]:
        from toolkit.envs.base import normalize_cameras

        return normalize_cameras(self._cameras, default=(CAMERA_RIG[DEFAULT_CAMERA],))

    def make_env(self, task: str, seed: int | None = None, cameras=None, **kwargs: Any):
        """A :class:`~toolkit.envs.metaworld.env.MetaWorldEnv` (see its docstring for kwargs)."""
        from toolkit.envs.metaworld.env import MetaWorldEnv

        self.check_task(task)
        opts = {"max_steps": self.max_steps, **self.env_defaults, **kwargs}
        return MetaWorldEnv(
            task,
            seed=seed,
            cameras=cameras if cameras is not None else self.default_cameras,
            **opts,
        )

    def expert(self, task: str, env=None, stock: bool = False):
        """The scripted expert (:class:`~toolkit.envs.metaworld.expert.MetaWorldExpert`)."""
        from toolkit.envs.metaworld.expert import MetaWorldExpert

        return MetaWorldExpert(self.check_task(task), stock=stock)

    def description(self, task: str) -> str:
        return T.DESCRIPTIONS[self.check_task(task)]

    def __repr__(self) -> str:
        return f"MetaWorldSuite(max_steps={self.max_steps}, cameras={[c.name for c in self.default_cameras]})"
