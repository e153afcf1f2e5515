"""One RLBench task as a toolkit :class:`~toolkit.envs.base.Env` (needs CoppeliaSim + PyRep).

Observation (the common layout of :mod:`toolkit.envs.base`; built by the same functions as the
converter, :mod:`toolkit.data.rlbench.observations`, so closed-loop inputs match the converted
training data):

- ``points`` ``(N, 3)`` float32 + ``points_mask``: world cloud from the depth of
  ``point_cameras`` (camera parameters from RLBench's ``misc``, OpenCV-converted), cropped to
  ``bounds`` (Lift3D's RLBench box by default), resampled to ``num_points``;
- ``proprio``: ``pose`` (8: gripper xyz + quaternion xyzw + open) or ``lift3d`` (15);
- ``rgb`` / ``depth`` (metres) / ``intrinsics`` / ``extrinsics`` per camera; ``state``: the
  task's low-dimensional state; ``description``: the episode's instruction; ``t``.

Actions are ``(8,)``: gripper xyz + quaternion (xyzw; normalized here) + gripper open (> 0.5
opens), executed by RLBench's ``MoveArmThenGripper(EndEffectorPoseViaPlanning(absolute_mode),
Discrete())``: one step = one planned motion to a waypoint. A motion the planner cannot do
(``InvalidActionError``, ``IKError``, ``ConfigurationPathError``) ends the rollout as a failure,
as PerAct / Lift3D count it; ``info["error"]`` says why.

Seeds: ``reset(seed)`` seeds numpy's and Python's global RNGs (RLBench samples object placement
from them) and picks variation ``seed % variation_count`` unless ``variation`` is fixed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from toolkit.data.rlbench.cameras import to_opencv
from toolkit.data.rlbench.observations import (
    LIFT3D_BOUNDS,
    PROPRIO_KINDS,
    canonical_quaternion,
    cloud_from_depths,
    parse_bounds,
    proprio_vector,
)
from toolkit.envs.base import CameraSpec, Env, normalize_cameras
from toolkit.envs.rlbench.backend import RLBenchBackend, import_rlbench
from toolkit.envs.rlbench.cameras import CAMERA_RIG, DEFAULT_CAMERA
from toolkit.envs.rlbench.tasks import DESCRIPTIONS, canonical_task
from toolkit.utils.errors import ToolkitError

__all__ = ["RLBenchEnv"]


class RLBenchEnv(Env):
    """An RLBench task with CLAR's RLBench protocol (front camera, waypoint actions).

    Args:
        task: RLBench task name (``close_box``; ``close-box`` works too).
        seed: default seed of the first ``reset()`` without one.
        cameras: cameras to render (names / ``{name: (H, W)}`` / :class:`CameraSpec`); default
            ``front`` at 128x128 (RLBench's dataset size; pass 224 for Lift3D's).
        point_cameras: cameras whose depth makes the cloud (default: all ``cameras``).
        num_points / bounds / voxel_size / sample_method: cloud processing (as the converter).
        rgb / depth / points: observation parts to return.
        max_steps: waypoints per rollout (PerAct / RVT: 25).
        variation: fixed task variation, or None for ``seed % variation_count``.
        proprio: ``pose`` | ``lift3d`` (as the converter's ``--proprio``).
        absolute_mode: absolute world poses (default) or RLBench's delta poses.
        collision_checking: RLBench's planner collision checking.
        headless / arm_max_velocity / arm_max_acceleration: RLBench ``Environment`` options.
        backend: injected RLBench stack (tests); default :func:`import_rlbench`.
    """

    suite_name = "rlbench"
    action_dim = 8

    def __init__(
        self,
        task: str,
        seed: int | None = None,
        cameras=None,
        point_cameras: Sequence[str] | None = None,
        num_points: int = 1024,
        bounds=LIFT3D_BOUNDS,
        voxel_size: float | None = None,
        sample_method: str = "bucket_fps",
        rgb: bool = True,
        depth: bool = True,
        points: bool = True,
        max_steps: int = 25,
        variation: int | None = None,
        proprio: str = "pose",
        absolute_mode: bool = True,
        collision_checking: bool = False,
        headless: bool = True,
        arm_max_velocity: float = 1.0,
        arm_max_acceleration: float = 4.0,
        backend: RLBenchBackend | None = None,
    ) -> None:
        if proprio not in PROPRIO_KINDS:
            raise ToolkitError(f"proprio: expected one of {sorted(PROPRIO_KINDS)}, got {proprio!r}")
        if int(max_steps) <= 0 or int(num_points) <= 0:
            raise ToolkitError(
                f"max_steps and num_points must be positive, got {max_steps}, {num_points}"
            )
        self.task = canonical_task(task)
        self.cameras: tuple[CameraSpec, ...] = normalize_cameras(
            cameras, default=(CAMERA_RIG[DEFAULT_CAMERA],), default_size=(128, 128)
        )
        names = [c.name for c in self.cameras]
        unknown = [n for n in names if n not in CAMERA_RIG]
        if unknown:
            raise ToolkitError(f"RLBench has no camera {unknown}; cameras: {list(CAMERA_RIG)}")
        self.point_cameras = tuple(point_cameras) if point_cameras is not None else tuple(names)
        if any(c not in names for c in self.point_cameras):
            raise ToolkitError(f"point_cameras {list(self.point_cameras)} must be among {names}")
        self.num_points = int(num_points)
        self.bounds = parse_bounds(bounds)
        self.voxel_size, self.sample_method = voxel_size, sample_method
        self.want_rgb, self.want_depth, self.want_points = bool(rgb), bool(depth), bool(points)
        self.max_steps = int(max_steps)
        self.variation = variation
        self.proprio_kind = proprio
        self.proprio_dim = PROPRIO_KINDS[proprio]

        b = backend if backend is not None else import_rlbench()
        self._backend = b
        obs_config = b.ObservationConfig()
        obs_config.set_all_high_dim(False)
        obs_config.set_all_low_dim(True)
        for cam in self.cameras:
            cc = getattr(obs_config, f"{cam.name}_camera")
            cc.rgb = cc.depth = True
            cc.point_cloud = cc.mask = False  # clouds are rebuilt from depth as for the data
            cc.depth_in_meters = True
            cc.image_size = (cam.width, cam.height)  # CoppeliaSim resolution is (x, y)
        action_mode = b.MoveArmThenGripper(
            arm_action_mode=b.EndEffectorPoseViaPlanning(
                absolute_mode=absolute_mode, collision_checking=collision_checking
            ),
            gripper_action_mode=b.Discrete(),
        )
        self._env = b.Environment(
            action_mode=action_mode,
            obs_config=obs_config,
            headless=headless,
            arm_max_velocity=arm_max_velocity,
            arm_max_acceleration=arm_max_acceleration,
        )
        self._env.launch()
        self._task_env = self._env.get_task(b.name_to_task_class(self.task))
        self._next_seed = 0 if seed is None else int(seed)
        self.seed: int | None = None
        self.t = 0
        self._obs: Any = None
        self._description = DESCRIPTIONS.get(self.task, self.task.replace("_", " "))
        self._closed = False

    # ------------------------------------------------------------------ episode
    @property
    def description(self) -> str:
        return self._description

    def variation_count(self) -> int:
        return int(self._task_env.variation_count())

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        if self._closed:
            raise ToolkitError("RLBenchEnv.reset() after close()")
        seed = self._next_seed if seed is None else int(seed)
        self.seed, self._next_seed = seed, seed + 1
        np.random.seed(seed % 2**32)  # noqa: NPY002 - RLBench places objects with numpy's global RNG
        random.seed(seed)
        variation = self.variation if self.variation is not None else seed % self.variation_count()
        self._task_env.set_variation(int(variation))
        descriptions, obs = self._task_env.reset()
        if descriptions:
            self._description = str(descriptions[0])
        self.t = 0
        self._obs = obs
        return self._observe(obs)

    def step(self, action) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        if self._obs is None:
            raise ToolkitError("RLBenchEnv.step() before reset()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (8,):
            raise ToolkitError(
                f"RLBench actions are (8,) [x, y, z, qx, qy, qz, qw, gripper_open], got "
                f"shape {np.shape(action)}"
            )
        if not np.isfinite(a).all():
            raise ToolkitError(f"non-finite action {a.tolist()} at step {self.t}")
        quat = canonical_quaternion(a[3:7])  # the planner asserts a unit quaternion
        gripper = 1.0 if a[7] > 0.5 else 0.0  # Discrete(): 1 open, 0 close
        rl_action = np.concatenate([a[:3], quat, [gripper]])
        self.t += 1
        info: dict[str, Any] = {"t": self.t, "error": None}
        try:
            obs, reward, terminate = self._task_env.step(rl_action)
        except self._backend.action_errors as exc:
            # an unreachable waypoint ends the rollout as a failure (PerAct / Lift3D count it so)
            info.update(success=False, error=f"{type(exc).__name__}: {exc}", timeout=False)
            return self._observe(self._obs), 0.0, True, info
        self._obs = obs
        success = float(reward) > 0.0  # RLBench: reward 1 and terminate on success
        info["success"] = success
        info["timeout"] = self.t >= self.max_steps
        done = bool(terminate) or success or self.t >= self.max_steps
        return self._observe(obs), float(reward), done, info

    def render_rgb(self, camera: str | None = None) -> np.ndarray:
        cam = camera or self.cameras[0].name
        if self._obs is None:
            raise ToolkitError("RLBenchEnv.render_rgb() before reset()")
        rgb = getattr(self._obs, f"{cam}_rgb", None)
        if rgb is None:
            raise ToolkitError(
                f"camera {cam!r} is not rendered; cameras: {[c.name for c in self.cameras]}"
            )
        return np.asarray(rgb, dtype=np.uint8)

    # ------------------------------------------------------------------ observation
    def _observe(self, obs: Any) -> dict[str, Any]:
        names = [c.name for c in self.cameras]
        K, E, depth, rgb = {}, {}, {}, {}
        misc = obs.misc or {}
        for cam in names:
            keys = (f"{cam}_camera_intrinsics", f"{cam}_camera_extrinsics")
            if any(k not in misc for k in keys):
                raise ToolkitError(
                    f"RLBench observation misc lacks {list(keys)} (RLBench >= 1.0 records them)"
                )
            K[cam], E[cam] = to_opencv(misc[keys[0]], misc[keys[1]], f"live {cam}")
            depth[cam] = np.asarray(getattr(obs, f"{cam}_depth"), dtype=np.float32)
            if self.want_rgb:
                rgb[cam] = np.asarray(getattr(obs, f"{cam}_rgb"), dtype=np.uint8)
        out: dict[str, Any] = {
            "proprio": proprio_vector(
                obs.gripper_pose, obs.gripper_open, obs.joint_positions, self.proprio_kind
            ),
            "qpos": np.asarray(
                obs.joint_positions if obs.joint_positions is not None else obs.gripper_pose,
                dtype=np.float64,
            ),
            "state": None
            if obs.task_low_dim_state is None
            else np.asarray(obs.task_low_dim_state, dtype=np.float64),
            "description": self._description,
            "intrinsics": K,
            "extrinsics": E,
            "t": self.t,
        }
        if self.want_rgb:
            out["rgb"] = rgb
        if self.want_depth:
            out["depth"] = depth
        if self.want_points:
            out["points"], out["points_mask"] = cloud_from_depths(
                depth,
                K,
                E,
                self.point_cameras,
                self.bounds,
                self.num_points,
                self.voxel_size,
                self.sample_method,
            )
        return out

    def sim_state(self) -> dict[str, Any]:
        obs = self._obs
        state = {"description": self._description, "t": self.t}
        if obs is not None and obs.gripper_pose is not None:
            state["gripper_pose"] = [round(float(v), 5) for v in obs.gripper_pose]
        return state

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._env.shutdown()
        except Exception:  # noqa: BLE001 - best-effort teardown of CoppeliaSim
            pass
