"""The ALOHA task contract: objects, seeded layouts, progress stages, success, expert script.

A task is a small class registered in :data:`TASKS` with :func:`register_task`::

    @register_task
    class MugOnPlate(Task):
        name = "mug_on_plate"
        description = "put the mug on the plate"
        objects = {"plate": "plate", "bowl": "bowl", ..., "mug": "mug"}   # name -> builder kind
        stages = ("start", "grasped", "lifted", "above_plate", "placed")

        def sample_layout(self, rng) -> dict[str, Placement]: ...   # where each object goes
        def progress(self, sim) -> int: ...                          # stage index from sim state
        def script(self, ctx) -> Iterator[np.ndarray]: ...           # the scripted expert

Progress is computed from the simulator state alone (so it is defined for any policy, learned
or scripted); the last stage is success. The expert script is a generator of 14-d actions
that reads the latest observation from ``ctx.obs``, moves with ``ctx.motion``
(:class:`~toolkit.envs.aloha.ik.Motion`) and reports the stage it is working on in
``ctx.stage`` (same numbering as ``stages``; the integer task progress of CLAMP's text).

Layouts (CLAMP Appendix C): objects sit in the slots of a 2x3 grid (:func:`grid_slots`), or at
random poses for single-object tasks; yaw is drawn per object. :meth:`Task.reset` draws a
layout from a seeded generator and re-draws (same generator, so still reproducible) when
objects would intersect.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from toolkit.envs.aloha.scene import ObjectInfo, SceneBuilder
from toolkit.utils.errors import ToolkitError

__all__ = ["TASKS", "ExpertContext", "Placement", "Task", "grid_slots", "register_task"]

#: Every registered task class by name.
TASKS: dict[str, type[Task]] = {}

#: Centre of the 2x3 slot grid and its pitch (metres). Every slot is within top-down reach of
#: both arms (the ViperX's reach with a vertical gripper ends about 0.11 m past the centre).
GRID_CENTER = (0.0, 0.53)
GRID_PITCH = (0.13, 0.18)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task to :data:`TASKS` (names must be unique)."""
    if not cls.name:
        raise ToolkitError(f"task class {cls.__name__} has no name")
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ToolkitError(f"ALOHA task {cls.name!r} is registered twice")
    TASKS[cls.name] = cls
    return cls


def grid_slots(
    center=GRID_CENTER, pitch=GRID_PITCH, cols: int = 3
) -> dict[str, list[tuple[float, float]]]:
    """The 2x3 grid: ``{"top": [(x, y) x3], "bottom": [...]}``, left to right.

    "Top" is the back row (larger y, the top of the front cameras' images), as in CLAMP's
    description of the tasks ("may appear in any of the three top positions").
    """
    cx, cy = center
    px, py = pitch
    xs = [cx + (i - (cols - 1) / 2) * px for i in range(cols)]
    return {"top": [(x, cy + py / 2) for x in xs], "bottom": [(x, cy - py / 2) for x in xs]}


@dataclass
class Placement:
    """Where an object starts: table position, yaw (radians) and joint positions."""

    xy: tuple[float, float]
    yaw: float = 0.0
    joints: dict[str, float] = field(default_factory=dict)


class ExpertContext:
    """What an expert script sees: the latest observation, the motion helper, its stage."""

    def __init__(self, task: Task, obs: dict[str, Any]) -> None:
        from toolkit.envs.aloha.ik import Motion

        self.task = task
        self.obs = obs
        self.motion = Motion(obs["qpos"])
        #: The stage the script says it has reached (set by the script).
        self.stage = 0
        #: The furthest task progress observed so far (``obs["state"]["stage"]``).
        self.seen_stage = 0

    def observe(self, obs: dict[str, Any]) -> None:
        """Take the latest observation (called by the expert before every step)."""
        self.obs = obs
        state = obs.get("state")
        if isinstance(state, dict) and "stage" in state:
            self.seen_stage = max(self.seen_stage, int(state["stage"]))

    @property
    def progress(self) -> int:
        """The expert's integer task progress: the furthest of the script's stage and the
        progress observed in the simulator (a drawer counts as open as soon as it is)."""
        return max(int(self.stage), self.seen_stage)

    def pose(self, name: str) -> np.ndarray:
        """``(7,)`` world position + quaternion of object ``name`` now."""
        return np.asarray(self.obs["object_poses"][name], dtype=np.float64)

    def pos(self, name: str) -> np.ndarray:
        return self.pose(name)[:3].copy()

    def rot(self, name: str) -> np.ndarray:
        from toolkit.envs.aloha.frames import quat_to_mat

        return quat_to_mat(self.pose(name)[3:])

    def yaw(self, name: str) -> float:
        """Heading of the object's local +x axis in the world (radians)."""
        R = self.rot(name)
        return math.atan2(R[1, 0], R[0, 0])

    def joint(self, name: str) -> float:
        return float(self.obs["object_joints"][name])

    def tcp(self, arm: str) -> np.ndarray:
        """Measured ``(4, 4)`` TCP pose of ``arm`` (from the observation)."""
        return np.asarray(self.obs["ee_pose"][0 if arm == "left" else 1], dtype=np.float64)

    def info(self, name: str) -> ObjectInfo:
        return self.task.object_infos()[name]


class Task:
    """Base class of ALOHA tasks (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: ``"finetune"`` (CLAMP's held-out evaluation tasks) or ``"pretrain"`` (the pretraining
    #: family; its tasks must not overlap the fine-tuning ones).
    family: ClassVar[str] = "finetune"
    #: Object name -> builder kind (:data:`toolkit.envs.aloha.objects.BUILDERS`).
    objects: ClassVar[dict[str, str]] = {}
    #: Progress stage names; index 0 is the start, the last one is success.
    stages: ClassVar[tuple[str, ...]] = ("start", "success")
    #: Episode horizon (steps at 50 Hz).
    max_steps: ClassVar[int] = 400
    #: Layout re-draws allowed when objects intersect.
    max_layout_tries: ClassVar[int] = 50

    def __init__(self) -> None:
        self._infos: dict[str, ObjectInfo] | None = None

    # ------------------------------------------------------------------ scene
    def build(self, sb: SceneBuilder) -> None:
        """Add the task's objects to the scene (default: one builder per ``objects`` entry)."""
        for name, kind in self.objects.items():
            sb.add(kind, name)
        self._infos = dict(sb.objects)

    def object_infos(self) -> dict[str, ObjectInfo]:
        """The objects' :class:`ObjectInfo` (builds a throw-away scene spec the first time)."""
        if self._infos is None:
            self.build(SceneBuilder())
        return self._infos

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        raise NotImplementedError

    def reset(self, sim, seed: int) -> dict[str, Placement]:
        """Robot at its start pose, objects at the layout of ``seed``; returns the layout."""
        rng = np.random.default_rng([int(seed), _name_key(self.name)])
        for _ in range(self.max_layout_tries):
            layout = self.sample_layout(rng)
            sim.reset_robot()
            for name, p in layout.items():
                sim.place(name, p.xy, p.yaw)
                for joint, value in p.joints.items():
                    sim.set_joint(joint, value)
            sim.forward()
            if not sim.overlapping_objects():
                break
        else:
            raise ToolkitError(
                f"{self.name}: no layout without intersecting objects in {self.max_layout_tries} "
                f"draws for seed {seed}"
            )
        sim.settle(5)
        return layout

    # ------------------------------------------------------------------ progress
    def progress(self, sim) -> int:
        """Index into ``stages`` of the task's progress now (from the simulator state)."""
        return len(self.stages) - 1 if self.success(sim) else 0

    def success(self, sim) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------------ expert
    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        raise NotImplementedError(f"task {self.name!r} has no scripted expert")


def _name_key(name: str) -> int:
    """A stable integer from a task name (seeds differ between tasks; no hash randomization)."""
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") % (2**31)
