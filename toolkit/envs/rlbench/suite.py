"""The RLBench suite, registered as ``RLBenchSuite`` in :data:`toolkit.registry.SUITES`."""

from __future__ import annotations

from typing import Any

from toolkit.envs.base import CameraSpec, Suite, check_task, normalize_cameras
from toolkit.envs.rlbench.cameras import CAMERA_RIG, DEFAULT_CAMERA
from toolkit.envs.rlbench.tasks import DESCRIPTIONS, TASKS, canonical_task
from toolkit.registry import SUITES
from toolkit.utils.errors import ToolkitError

__all__ = ["RLBenchSuite"]


@SUITES.register_module()
class RLBenchSuite(Suite):
    """RLBench (Franka Panda in CoppeliaSim) under CLAR's protocol: front camera, 8-d waypoint
    actions (gripper pose xyz + quaternion + open) through RLBench's motion planner.

    Tasks: CLAR's four evaluation tasks (close_box, close_laptop_lid, water_plants,
    toilet_seat_down) and nine pretraining tasks (:mod:`toolkit.envs.rlbench.tasks`); hyphenated
    names work too. Closed-loop use needs CoppeliaSim 4.1 + PyRep + RLBench
    (:data:`~toolkit.envs.rlbench.backend.INSTALL_HINT`, docs/suites/rlbench.md); reading and
    converting stored demos does not (:mod:`toolkit.data.rlbench`).

    Args:
        cameras: default cameras of the envs this suite builds.
        max_steps: waypoints per rollout (PerAct / RVT: 25).
        **env_defaults: default keyword arguments of :class:`~toolkit.envs.rlbench.env.RLBenchEnv`.
    """

    name = "rlbench"
    action_dim = 8
    proprio_dim = 8
    eval_seed_offset = 1_000_000
    #: stored demos come from RLBench's own generator, not from our seeds
    demo_seeds = range(0, 0)

    def __init__(self, cameras=None, max_steps: int = 25, **env_defaults: Any) -> None:
        self.max_steps = int(max_steps)
        self._cameras = cameras
        self.env_defaults = env_defaults

    @property
    def tasks(self) -> list[str]:
        return list(TASKS)

    @property
    def camera_rig(self) -> dict[str, CameraSpec]:
        return dict(CAMERA_RIG)

    @property
    def default_cameras(self) -> tuple[CameraSpec, ...]:
        return normalize_cameras(
            self._cameras, default=(CAMERA_RIG[DEFAULT_CAMERA],), default_size=(128, 128)
        )

    def check_task(self, task: str) -> str:
        return check_task(canonical_task(task), self.tasks, self.name)

    def make_env(self, task: str, seed: int | None = None, cameras=None, **kwargs: Any):
        """An :class:`~toolkit.envs.rlbench.env.RLBenchEnv` (needs CoppeliaSim + PyRep + RLBench)."""
        from toolkit.envs.rlbench.env import RLBenchEnv

        task = self.check_task(task)
        opts = {"max_steps": self.max_steps, **self.env_defaults, **kwargs}
        return RLBenchEnv(
            task,
            seed=seed,
            cameras=cameras if cameras is not None else self.default_cameras,
            **opts,
        )

    def expert(self, task: str, env=None, **_: Any):
        """RLBench's experts are its own waypoint planners, run by its dataset generator."""
        self.check_task(task)
        raise ToolkitError(
            "RLBench demonstrations come from RLBench's own generator (rlbench/dataset_generator.py, "
            "needs CoppeliaSim) or shared pre-generated datasets; convert them with "
            "`toolkit convert rlbench SRC --out DIR` (docs/suites/rlbench.md)"
        )

    def description(self, task: str) -> str:
        return DESCRIPTIONS[self.check_task(task)]

    def __repr__(self) -> str:
        return f"RLBenchSuite(max_steps={self.max_steps}, cameras={[c.name for c in self.default_cameras]})"
