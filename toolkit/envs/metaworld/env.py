"""One MetaWorld task as a toolkit :class:`~toolkit.envs.base.Env`.

Observation (see :mod:`toolkit.envs.base` for the common layout):

- ``points`` ``(N, 3)`` float32: world-frame cloud from the depth of ``point_cameras``,
  cropped to :data:`~toolkit.envs.metaworld.cameras.WORKSPACE_BOUNDS` and resampled to
  ``num_points`` (default 1024) with :func:`toolkit.ops.pointcloud.process_cloud`;
  ``points_mask`` ``(N,)`` marks real points (False only if fewer than N survive the crop).
- ``proprio`` ``(4,)`` float32: end-effector xyz (metres, world) + gripper opening in [0, 1]
  (finger distance / 0.1 m), i.e. the first 4 entries of MetaWorld's state (Lift3D's robot
  state).
- ``state`` ``(39,)`` float64: MetaWorld's goal-observable state (what its scripted experts
  read): hand xyz, gripper, object pos + quat (x2, padded), the previous frame's 18 values,
  goal xyz.
- ``rgb`` / ``depth`` / ``intrinsics`` / ``extrinsics``: dicts by camera name (only the
  cameras asked for; ``rgb=False`` / ``depth=False`` leave those dicts out).
- ``qpos`` (MuJoCo ``qpos``), ``ee_pose`` ``(1, 4, 4)`` hand pose in the world, ``t``.

Actions are ``(4,)`` in [-1, 1]: end-effector xyz delta (x 1 cm per step) and gripper effort
(+1 closes). Out-of-range actions are clipped, as MetaWorld itself does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from toolkit.envs.base import CameraSpec, Env, MissingSuiteDependencyError, normalize_cameras
from toolkit.envs.metaworld import tasks as T
from toolkit.envs.metaworld.cameras import (
    CAMERA_RIG,
    DEFAULT_CAMERA,
    MAX_DEPTH,
    WORKSPACE_BOUNDS,
    MujocoRig,
)
from toolkit.envs.rig_env import RigObservations
from toolkit.utils.errors import ToolkitError

_INSTALL_HINT = (
    "MetaWorld is not installed: install the suite's extra with `pip install -e .[metaworld]` "
    "(metaworld>=3.0, gymnasium>=1.0) and render offscreen with MUJOCO_GL=egl"
)


def import_metaworld():
    """``(env_dict, policies)`` modules of MetaWorld, or an actionable error."""
    import os
    import sys
    import warnings

    if "MUJOCO_GL" not in os.environ:
        if "mujoco" in sys.modules:
            warnings.warn(
                "mujoco was imported before MUJOCO_GL was set: offscreen rendering will likely "
                "fail without a display; set MUJOCO_GL=egl before importing mujoco",
                RuntimeWarning,
                stacklevel=3,
            )
        os.environ["MUJOCO_GL"] = "egl"
    try:
        import metaworld.env_dict as env_dict
        import metaworld.policies as policies
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingSuiteDependencyError(f"{_INSTALL_HINT} ({exc})") from exc
    return env_dict, policies


class MetaWorldEnv(RigObservations, Env):
    """A MetaWorld v3 single-task env with reproducible per-seed layouts and a camera rig.

    Args:
        task: a task name of :data:`toolkit.envs.metaworld.tasks.TASKS` (checked by the suite).
        seed: default seed of the first ``reset()`` without a seed.
        cameras: cameras to render (names, ``{name: (H, W)}`` or :class:`CameraSpec`);
            default ``corner`` at 224x224.
        point_cameras: cameras whose depth builds the point cloud (default: all ``cameras``).
        num_points: points per observation (``N``).
        bounds: ``(2, 3)`` world crop; voxel_size: optional voxel-grid size before sampling;
        sample_method: ``"bucket_fps"`` (default), ``"fps"`` or ``"random"``.
        rgb, depth, points: which observation parts to compute (rendering is the main cost).
        max_steps: episode horizon (CLAR / Lift3D: 200).
        upright: rotate the upside-down corner cameras' images by 180 degrees (pose adjusted).
        shadows: render shadows (about 3x slower on CPU; off by default).
        msaa_samples: multisample anti-aliasing of the renders (MetaWorld's default is 4; 0,
            our default, renders RGB about 3x faster on CPU and keeps depth edges sharp).
        terminate_on_success: ``done`` also becomes True at the first success.
    """

    suite_name = "metaworld"
    action_dim = 4
    proprio_dim = 4

    max_depth = MAX_DEPTH  # depth >= this is background (RigObservations.point_cloud)

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        cameras=None,
        point_cameras: Sequence[str] | None = None,
        num_points: int = 1024,
        bounds=WORKSPACE_BOUNDS,
        voxel_size: float | None = None,
        sample_method: str = "bucket_fps",
        rgb: bool = True,
        depth: bool = True,
        points: bool = True,
        max_steps: int = 200,
        upright: bool = True,
        shadows: bool = False,
        msaa_samples: int = 0,
        terminate_on_success: bool = False,
    ) -> None:
        env_dict, _ = import_metaworld()
        key = T.env_id(task)
        if key not in env_dict.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE:
            raise ToolkitError(f"MetaWorld has no environment {key!r} (task {task!r})")
        self.task = task
        self.cameras: tuple[CameraSpec, ...] = normalize_cameras(
            cameras, default=(CAMERA_RIG[DEFAULT_CAMERA],)
        )
        names = [c.name for c in self.cameras]
        self.point_cameras = tuple(point_cameras) if point_cameras is not None else tuple(names)
        missing = [c for c in self.point_cameras if c not in names]
        if missing:
            raise ToolkitError(f"point_cameras {missing} must be among the cameras {names}")
        if int(num_points) <= 0:
            raise ToolkitError(f"num_points must be positive, got {num_points}")
        if not 0 < int(max_steps):
            raise ToolkitError(f"max_steps must be positive, got {max_steps}")
        self.num_points = int(num_points)
        self.bounds = np.asarray(bounds, dtype=np.float64).reshape(2, 3)
        self.voxel_size = voxel_size
        self.sample_method = sample_method
        self.want_rgb, self.want_depth, self.want_points = bool(rgb), bool(depth), bool(points)
        self.max_steps = int(max_steps)
        self.terminate_on_success = bool(terminate_on_success)

        # seed=0 only makes construction deterministic; every reset re-seeds the layout.
        self.raw = env_dict.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[key](seed=0)
        self.raw.max_path_length = max(int(self.raw.max_path_length), self.max_steps + 1)
        self.raw._freeze_rand_vec = False
        self.raw.seeded_rand_vec = True
        self.rig = MujocoRig(
            self.raw.model,
            self.cameras,
            upright=upright,
            shadows=shadows,
            msaa_samples=msaa_samples,
        )

        self._next_seed = 0 if seed is None else int(seed)
        self.seed: int | None = None
        self.t = 0
        self._state: np.ndarray | None = None
        self._closed = False

    # ------------------------------------------------------------------ properties
    @property
    def model(self):
        return self.raw.model

    @property
    def data(self):
        return self.raw.data

    @property
    def description(self) -> str:
        return T.DESCRIPTIONS.get(self.task, self.task.replace("-", " "))

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Reset to the layout of ``seed`` (default: the constructor's seed, then +1 each time)."""
        if self._closed:
            raise ToolkitError("MetaWorldEnv.reset() after close()")
        if seed is None:
            seed = self._next_seed
        self.seed = int(seed)
        self._next_seed = self.seed + 1
        self.raw._freeze_rand_vec = False
        self.raw.seeded_rand_vec = True
        self.raw.seed(self.seed)
        state, _ = self.raw.reset()
        self.t = 0
        self._state = np.asarray(state, dtype=np.float64)
        return self._observe()

    def step(self, action) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        if self._state is None:
            raise ToolkitError("MetaWorldEnv.step() before reset()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ToolkitError(
                f"MetaWorld actions are ({self.action_dim},) [dx, dy, dz, gripper], "
                f"got shape {np.shape(action)}"
            )
        if not np.all(np.isfinite(a)):
            raise ToolkitError(f"non-finite action {a.tolist()} at step {self.t}")
        a = np.clip(a, -1.0, 1.0).astype(np.float32)
        state, reward, _terminated, _truncated, raw_info = self.raw.step(a)
        self.t += 1
        self._state = np.asarray(state, dtype=np.float64)
        success = bool(raw_info.get("success", False))
        done = self.t >= self.max_steps or (self.terminate_on_success and success)
        info = {k: _to_py(v) for k, v in raw_info.items()}
        info["success"] = success
        info["t"] = self.t
        info["timeout"] = self.t >= self.max_steps
        return self._observe(), float(reward), bool(done), info

    # ------------------------------------------------------------------ observation
    def proprio(self) -> np.ndarray:
        """End-effector xyz + gripper opening, ``(4,)`` float32."""
        return np.asarray(self._state[:4], dtype=np.float32).copy()

    def ee_pose(self) -> np.ndarray:
        """``(1, 4, 4)`` world pose of the hand body."""
        body = self.data.body("hand")
        pose = np.eye(4)
        pose[:3, :3] = np.asarray(body.xmat).reshape(3, 3)
        pose[:3, 3] = body.xpos
        return pose[None]

    def sim_state(self) -> dict[str, Any]:
        """JSON-able privileged state: instruction, object positions, goal, step."""
        s = self._state
        objects = {}
        for i, name in enumerate(T.OBJECTS.get(self.task, ("object",))):
            pos = s[4 + 7 * i : 7 + 7 * i]
            objects[name] = [round(float(v), 5) for v in pos]
        return {
            "description": self.description,
            "objects": objects,
            "goal": [round(float(v), 5) for v in s[-3:]],
            "hand": [round(float(v), 5) for v in s[:3]],
            "gripper": round(float(s[3]), 5),
            "t": self.t,
        }

    def _observe(self) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "state": self._state.copy(),
            "proprio": self.proprio(),
            "qpos": np.asarray(self.data.qpos, dtype=np.float64).copy(),
            "ee_pose": self.ee_pose(),
            "t": self.t,
        }
        names = [c.name for c in self.cameras]
        depth: dict[str, np.ndarray] = {}
        if self.want_depth or self.want_points:
            need = names if self.want_depth else list(self.point_cameras)
            depth = {cam: self.render_depth(cam) for cam in need}
        if self.want_rgb:
            obs["rgb"] = {cam: self.render_rgb(cam) for cam in names}
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
        self.rig.close()
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - best-effort teardown
            pass


def _to_py(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.ndim == 0:
        return v.item()
    return v
