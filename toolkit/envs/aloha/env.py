"""One ALOHA task as a toolkit :class:`~toolkit.envs.base.Env` (gymnasium-style ``step``).

Observation (see :mod:`toolkit.envs.base` for the common layout):

- ``qpos`` ``(14,)`` float64: gym-aloha's joint state: per arm (left, then right) 6 joint
  angles (rad) + the normalized gripper opening (0 closed .. 1 open). ``qvel`` likewise.
- ``proprio`` ``(14,)`` float32: ``qpos`` (ALOHA policies' robot state).
- ``ee_pose`` ``(2, 4, 4)`` float64: world pose of each arm's tool centre point (left, right).
- ``rgb`` / ``depth`` / ``intrinsics`` / ``extrinsics``: dicts by camera; depth is metric
  z-depth, extrinsics camera-to-world in OpenCV axes, recomputed every step (wrist cameras
  move).
- ``points`` ``(N, 3)`` float32 + ``points_mask`` ``(N,)``: the depth of ``point_cameras``
  (default: every rendered camera) unprojected to the world, merged, cropped to
  :data:`~toolkit.envs.aloha.cameras.WORKSPACE_BOUNDS` and resampled to ``num_points``
  (:func:`toolkit.ops.pointcloud.process_cloud`).
- ``state``: the JSON-able text metadata of CLAMP (``task``, ``description``, ``objects`` =
  ``{name: [x, y, z]}`` positions already normalized to the workspace box, moving parts of
  articulated objects included as ``"<object> <part>"`` (``"drawer bottom"``), ``stage`` = the
  integer task progress from the simulator state);
  :func:`toolkit.data.clamp_dataset.state_text` (with ``bounds=None``) writes it as CLAMP's text.
- ``object_poses`` ``{name: (7,)}`` (position + wxyz quaternion) and ``object_joints``
  ``{joint: float}``: privileged simulator state that the scripted experts read.
- ``t``: steps since reset.

Actions ``(14,)``: gym-aloha's absolute joint targets + normalized gripper openings (see
:mod:`toolkit.envs.aloha.sim`); wrong shapes and non-finite values raise. ``info``:
``success`` (bool), ``stage``, ``t``, ``timeout``; ``reward`` is 1.0 on success steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from toolkit.envs.aloha.cameras import (
    CAMERA_NAMES,
    CAMERA_RIG,
    DEFAULT_CAMERAS,
    MAX_DEPTH,
    WORKSPACE_BOUNDS,
)
from toolkit.envs.aloha.scene import ARMS, SceneBuilder
from toolkit.envs.aloha.sim import AlohaSim
from toolkit.envs.aloha.tasks import make_task
from toolkit.envs.base import CameraSpec, Env, normalize_cameras
from toolkit.envs.rig_env import RigObservations
from toolkit.utils.errors import ToolkitError

__all__ = ["AlohaEnv", "UnknownCameraError", "check_cameras", "normalize_position"]


class UnknownCameraError(ToolkitError, KeyError):
    """A camera name the ALOHA rig does not have; the message lists the valid ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def check_cameras(cameras: Sequence[CameraSpec]) -> None:
    bad = [c.name for c in cameras if c.name not in CAMERA_NAMES]
    if bad:
        raise UnknownCameraError(
            f"unknown aloha camera(s) {', '.join(map(repr, bad))}. "
            f"Valid cameras: {', '.join(CAMERA_NAMES)}."
        )


def normalize_position(p, bounds=WORKSPACE_BOUNDS) -> list[float]:
    """World position -> ``[0, 1]^3`` in the workspace box (3 decimals; may leave [0, 1])."""
    lo, hi = np.asarray(bounds[0]), np.asarray(bounds[1])
    return [round(float(v), 3) for v in (np.asarray(p, dtype=np.float64) - lo) / (hi - lo)]


class AlohaEnv(RigObservations, Env):
    """An ALOHA bimanual task with the CLAMP camera rig and reproducible per-seed layouts.

    Args:
        task: a task name of :data:`toolkit.envs.aloha.tasks.TASKS`.
        seed: default seed of the first ``reset()`` without a seed (then +1 each reset).
        cameras: cameras to render (names, ``{name: (H, W)}`` or :class:`CameraSpec`); default
            front_left, back_right, left_wrist, right_wrist at 224x224.
        point_cameras: cameras whose depth builds the point cloud (default: all ``cameras``).
        num_points: points per observation (``N``); bounds: ``(2, 3)`` world crop;
        voxel_size: optional voxel-grid size before sampling; sample_method: see
            :func:`toolkit.ops.pointcloud.process_cloud`.
        rgb, depth, points: which observation parts to compute (rendering is the main cost).
        max_steps: episode horizon (default: the task's).
        shadows: render shadows (about 3x slower on CPU; off by default).
        terminate_on_success: ``done`` also becomes True at the first success.
        camera_options: forwarded to :func:`toolkit.envs.aloha.cameras.add_camera_rig`
            (``wrist_fovy``, ``fixed_fovy``).
    """

    suite_name = "aloha"
    action_dim = 14
    proprio_dim = 14

    max_depth = MAX_DEPTH  # depth >= this is background (RigObservations.point_cloud)

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        cameras=None,
        point_cameras: Sequence[str] | None = None,
        num_points: int = 4096,
        bounds=WORKSPACE_BOUNDS,
        voxel_size: float | None = None,
        sample_method: str = "bucket_fps",
        rgb: bool = True,
        depth: bool = True,
        points: bool = True,
        max_steps: int | None = None,
        shadows: bool = False,
        terminate_on_success: bool = False,
        camera_options: dict[str, Any] | None = None,
    ) -> None:
        self.task_spec = make_task(task)
        self.task = self.task_spec.name
        self.cameras: tuple[CameraSpec, ...] = normalize_cameras(
            cameras, default=tuple(CAMERA_RIG[c] for c in DEFAULT_CAMERAS)
        )
        check_cameras(self.cameras)
        names = [c.name for c in self.cameras]
        self.point_cameras = tuple(point_cameras) if point_cameras is not None else tuple(names)
        missing = [c for c in self.point_cameras if c not in names]
        if missing:
            raise ToolkitError(f"point_cameras {missing} must be among the cameras {names}")
        if int(num_points) <= 0:
            raise ToolkitError(f"num_points must be positive, got {num_points}")
        self.max_steps = int(max_steps if max_steps is not None else self.task_spec.max_steps)
        if self.max_steps <= 0:
            raise ToolkitError(f"max_steps must be positive, got {max_steps}")
        self.num_points = int(num_points)
        self.bounds = np.asarray(bounds, dtype=np.float64).reshape(2, 3)
        self.voxel_size = voxel_size
        self.sample_method = sample_method
        self.want_rgb, self.want_depth, self.want_points = bool(rgb), bool(depth), bool(points)
        self.terminate_on_success = bool(terminate_on_success)

        builder = SceneBuilder(**(camera_options or {}))
        self.task_spec.build(builder)
        self.sim = AlohaSim(builder)
        self._shadows = bool(shadows)
        self._rig = None
        self._next_seed = 0 if seed is None else int(seed)
        self.seed: int | None = None
        self.t = 0
        self.layout: dict[str, Any] = {}
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ properties
    @property
    def model(self):
        return self.sim.model

    @property
    def data(self):
        return self.sim.data

    @property
    def rig(self):
        """The renderer (built on first use: state-only envs never create a GL context)."""
        if self._rig is None:
            from toolkit.envs.metaworld.cameras import MujocoRig

            self._rig = MujocoRig(
                self.sim.model, self.cameras, upright=False, shadows=self._shadows
            )
        return self._rig

    @property
    def description(self) -> str:
        return self.task_spec.description

    @property
    def stages(self) -> tuple[str, ...]:
        return self.task_spec.stages

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Reset to the layout of ``seed`` (default: the constructor's seed, then +1 each time)."""
        if self._closed:
            raise ToolkitError("AlohaEnv.reset() after close()")
        if seed is None:
            seed = self._next_seed
        self.seed = int(seed)
        self._next_seed = self.seed + 1
        self.layout = self.task_spec.reset(self.sim, self.seed)
        self.t = 0
        self._started = True
        return self._observe()

    def step(self, action) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        if not self._started:
            raise ToolkitError("AlohaEnv.step() before reset()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ToolkitError(
                "ALOHA actions are (14,) [left 6 joints, left gripper, right 6 joints, right "
                f"gripper], got shape {np.shape(action)}"
            )
        if not np.all(np.isfinite(a)):
            raise ToolkitError(f"non-finite action {a.tolist()} at step {self.t}")
        self.sim.step(a)
        self.t += 1
        success = bool(self.task_spec.success(self.sim))
        stage = int(self.task_spec.progress(self.sim))
        done = self.t >= self.max_steps or (self.terminate_on_success and success)
        info = {
            "success": success,
            "stage": stage,
            "stage_name": self.stages[stage],
            "t": self.t,
            "timeout": self.t >= self.max_steps,
        }
        return self._observe(stage), float(success), bool(done), info

    # ------------------------------------------------------------------ observation
    def text_state(self, stage: int | None = None) -> dict[str, Any]:
        """CLAMP's text metadata now (JSON-able): description, objects, stage."""
        if stage is None:
            stage = int(self.task_spec.progress(self.sim))
        objects = {}
        for name, info in self.sim.objects.items():
            objects[name] = normalize_position(self.sim.body_pose(name)[:3], self.bounds)
            for role, joint in info.joints.items():  # moving parts: "drawer bottom"
                body = self.sim.model.body(int(self.sim.model.joint(joint).bodyid[0])).name
                objects[f"{name} {role}"] = normalize_position(
                    self.sim.body_pose(body)[:3], self.bounds
                )
        return {
            "task": self.task,
            "description": self.description,
            "objects": objects,
            "stage": int(stage),
        }

    def sim_state(self) -> dict[str, Any]:
        """JSON-able privileged state: :meth:`text_state` plus the step."""
        return {**self.text_state(), "t": self.t}

    def _observe(self, stage: int | None = None) -> dict[str, Any]:
        sim = self.sim
        qpos = sim.qpos14()
        obs: dict[str, Any] = {
            "qpos": qpos,
            "qvel": sim.qvel14(),
            "proprio": qpos.astype(np.float32),
            "ee_pose": np.stack([sim.tcp_pose(arm) for arm in ARMS]),
            "state": self.text_state(stage),
            "object_poses": sim.object_poses(),
            "object_joints": sim.object_joints(),
            "t": self.t,
        }
        names = [c.name for c in self.cameras]
        need: list[str] = []
        if self.want_depth or self.want_points:
            need = names if self.want_depth else list(self.point_cameras)
        # A camera that gives both RGB and depth is rendered once (RigObservations.render_images).
        rgb, depth = self.render_images(names if self.want_rgb else [], need)
        if self.want_rgb:
            obs["rgb"] = rgb
        if self.want_depth:
            obs["depth"] = depth
        if self.want_rgb or self.want_depth or self.want_points:
            obs["intrinsics"] = {cam: self.rig.intrinsics(cam) for cam in names}
            obs["extrinsics"] = {cam: self.rig.extrinsics(self.data, cam) for cam in names}
        if self.want_points:
            pts, mask, _ = self.point_cloud(depth)
            obs["points"], obs["points_mask"] = pts, mask
        return obs

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._rig is not None:
            self._rig.close()
