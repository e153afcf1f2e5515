"""The suite contract: what every simulated benchmark (MetaWorld, ALOHA, RLBench) provides.

A **suite** is a family of tasks sharing one robot, one camera rig and one scripted-expert
family. It is registered in :data:`toolkit.registry.SUITES` and built by name::

    suite = SUITES.build(dict(type="MetaWorldSuite"))      # or get_suite("metaworld")
    env = suite.make_env("hammer", seed=3)                  # an :class:`Env`
    expert = suite.expert("hammer", env)                    # a :class:`Policy`
    obs = env.reset(seed=3)
    obs, reward, done, info = env.step(expert.select_action(obs))
    info["success"]                                         # bool

Observations are plain dicts of numpy arrays (no torch), the same layout for every suite:

=================  ===========================  ============================================
key                shape / type                 meaning
=================  ===========================  ============================================
``points``         ``(N, 3)`` float32           world-frame point cloud, cropped to the
                                                workspace and resampled to ``N`` points
``points_mask``    ``(N,)`` bool                False for padding (fewer valid points than N)
``proprio``        ``(P,)`` float32             proprioception (suite-specific, documented)
``rgb``            ``{camera: (H, W, 3) uint8}``  optional, per camera
``depth``          ``{camera: (H, W) float32}``   optional, metric z-depth in metres
``intrinsics``     ``{camera: (3, 3) float64}``   pinhole K of each rendered camera
``extrinsics``     ``{camera: (4, 4) float64}``   camera-to-world, OpenCV convention
``state``          suite-specific               whatever the scripted expert needs
``t``              int                          steps taken since reset
=================  ===========================  ============================================

Policies consumed by :func:`toolkit.engine.rollout.evaluate` only need ``reset()`` and
``select_action(obs) -> np.ndarray``; see :class:`Policy`.
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from toolkit.utils.errors import ToolkitError

__all__ = [
    "CameraSpec",
    "Env",
    "MissingSuiteDependencyError",
    "Policy",
    "Suite",
    "UnknownTaskError",
    "check_task",
    "normalize_cameras",
]


class UnknownTaskError(ToolkitError, KeyError):
    """A task name the suite does not know; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it plain.
        return str(self.args[0]) if self.args else ""


class MissingSuiteDependencyError(ToolkitError, ImportError):
    """A suite's optional dependency is not installed; the message names the pip extra."""


def check_task(task: str, tasks: Sequence[str], suite: str) -> str:
    """Return ``task`` if ``suite`` knows it, else raise :class:`UnknownTaskError`.

    The message names the suite, the closest matches and every valid task.
    """
    if task in tasks:
        return task
    close = difflib.get_close_matches(str(task), list(tasks), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownTaskError(f"unknown {suite} task {task!r}.{hint} Valid tasks: {', '.join(tasks)}.")


@dataclass(frozen=True)
class CameraSpec:
    """One rendered camera: its name in the scene and the image size."""

    name: str
    height: int = 224
    width: int = 224

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)


def normalize_cameras(
    cameras: str | Sequence[str | CameraSpec] | Mapping[str, Sequence[int]] | None,
    default: Sequence[CameraSpec],
    default_size: tuple[int, int] = (224, 224),
) -> tuple[CameraSpec, ...]:
    """Accept ``"corner"``, ``["corner", "corner2"]``, ``{"corner": (224, 224)}`` or specs.

    ``None`` gives ``default``. Names without a size get ``default_size`` (H, W).
    """
    if cameras is None:
        return tuple(default)
    if isinstance(cameras, (str, CameraSpec)):
        cameras = [cameras]
    out: list[CameraSpec] = []
    if isinstance(cameras, Mapping):
        for name, size in cameras.items():
            h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
            out.append(CameraSpec(str(name), h, w))
    else:
        for cam in cameras:
            out.append(cam if isinstance(cam, CameraSpec) else CameraSpec(str(cam), *default_size))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ToolkitError(f"camera names must be unique, got {names}")
    for c in out:
        if c.height <= 0 or c.width <= 0:
            raise ToolkitError(f"camera {c.name!r}: image size must be positive, got {c.size}")
    return tuple(out)


@runtime_checkable
class Policy(Protocol):
    """What the evaluation harness drives: a closed-loop controller for one episode at a time.

    ``reset()`` is called before every episode; ``select_action(obs)`` gets the observation
    dict of :class:`Env` and returns one action ``(A,)`` (float). A policy that predicts action
    chunks keeps its own queue and returns one action per call.
    """

    def reset(self) -> None: ...

    def select_action(self, obs: dict[str, Any]) -> np.ndarray: ...


class Env(abc.ABC):
    """One task of a suite, with a fixed camera rig. Not thread-safe; one per process.

    Episodes are reproducible: ``reset(seed)`` with the same seed gives the same initial
    layout (object positions, goals) and, with a deterministic policy, the same episode.
    """

    #: Suite name (``"metaworld"``) and task name (``"hammer"``).
    suite_name: str = ""
    task: str = ""
    #: Action and proprioception sizes.
    action_dim: int = 0
    proprio_dim: int = 0
    #: Episode horizon: ``step`` returns ``done=True`` once this many steps were taken.
    max_steps: int = 0
    #: Rendered cameras, in order (the first one is the default for ``render_rgb``).
    cameras: tuple[CameraSpec, ...] = ()

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Start an episode whose layout is drawn from ``seed``; return the first observation."""

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        """Apply one action; return ``(obs, reward, done, info)``; ``info["success"]`` is bool."""

    @abc.abstractmethod
    def render_rgb(self, camera: str | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 image of ``camera`` (default: the first camera) now."""

    @property
    def description(self) -> str:
        """One-sentence natural-language instruction for the current task."""
        return self.task.replace("-", " ")

    def sim_state(self) -> dict[str, Any]:
        """JSON-able privileged simulator state now (object names / positions, goal...).

        Stored per step in generated episodes (text for language-aligned pretraining).
        """
        return {"description": self.description}

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release renderers and simulator resources (idempotent)."""

    def __enter__(self) -> Env:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Suite(abc.ABC):
    """A benchmark suite: its tasks, camera rig, episode horizon and scripted experts.

    Subclasses are registered with ``@SUITES.register_module()`` and must import their heavy
    simulator packages lazily (inside methods), raising :class:`MissingSuiteDependencyError`
    with the pip extra to install when they are missing, so ``import toolkit.envs`` always works.
    """

    #: Short name used in file attrs, CLIs and dataset paths.
    name: str = ""
    #: Episode horizon used by data generation and evaluation.
    max_steps: int = 0
    #: Action / proprioception sizes.
    action_dim: int = 0
    proprio_dim: int = 0
    #: Evaluation rollout ``i`` uses layout seed ``eval_seed_offset + i``.
    eval_seed_offset: int = 1_000_000
    #: Seeds reserved for demonstrations and pretraining data; evaluations warn on overlap.
    demo_seeds: range = range(0, 0)

    @property
    @abc.abstractmethod
    def tasks(self) -> list[str]:
        """Every task name this suite can build."""

    @property
    @abc.abstractmethod
    def camera_rig(self) -> dict[str, CameraSpec]:
        """Every camera this suite can render, by name, at its default size."""

    @property
    def default_cameras(self) -> tuple[CameraSpec, ...]:
        """The cameras used when ``make_env(cameras=None)``."""
        return tuple(self.camera_rig.values())[:1]

    def check_task(self, task: str) -> str:
        return check_task(task, self.tasks, self.name)

    @abc.abstractmethod
    def make_env(self, task: str, seed: int | None = None, cameras=None, **kwargs: Any) -> Env:
        """Build one :class:`Env` for ``task`` (see the suite's docs for ``kwargs``)."""

    @abc.abstractmethod
    def expert(self, task: str, env: Env | None = None) -> Policy:
        """The scripted expert of ``task`` as a :class:`Policy` (reads ``obs["state"]``)."""

    def description(self, task: str) -> str:
        """One-sentence instruction for ``task``."""
        return self.check_task(task).replace("-", " ")


def seed_split(seed: int, splits: Mapping[str, range], eval_offset: int) -> str:
    """Which of a suite's disjoint seed ranges ``seed`` is in (``eval`` from ``eval_offset``)."""
    for name, rng in splits.items():
        if seed in rng:
            return name
    if seed >= eval_offset:
        return "eval"
    raise ValueError(f"negative seed {seed}")
