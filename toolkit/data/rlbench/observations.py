"""What a policy sees and does in RLBench, shared by the converter (stored demos) and the env
adapter (live CoppeliaSim), so training data and closed-loop observations are built alike.

- **Point cloud**: per camera, metric depth unprojected with the OpenCV-converted intrinsics /
  extrinsics (:mod:`.cameras`; equal to RLBench's own ``pointcloud_from_depth_and_camera_params``
  clouds), merged, cropped to a world box, optionally voxelized, resampled to ``N`` points
  (:func:`toolkit.ops.pointcloud.process_cloud`).
- **Proprioception** ``pose`` (8): gripper xyz + quaternion (xyzw, w >= 0) + gripper open;
  ``lift3d`` (15): the 7 arm joint positions first (Lift3D's RLBench robot state).
- **Action** (8): a gripper pose xyz + quaternion (xyzw, w >= 0) + gripper open (1 open, 0
  closed), what RLBench's ``MoveArmThenGripper(EndEffectorPoseViaPlanning(), Discrete())``
  takes. ``absolute``: the target pose in the world; ``delta``: RLBench's relative form
  (``absolute_mode=False``: translation offset, rotation ``q_delta`` with
  ``q_target = q_delta * q_current``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from toolkit.utils.errors import ToolkitError

__all__ = [
    "LIFT3D_BOUNDS",
    "PERACT_BOUNDS",
    "PROPRIO_KINDS",
    "canonical_quaternion",
    "cloud_from_depths",
    "parse_bounds",
    "pose_action",
    "proprio_vector",
    "quat_multiply",
]

#: Lift3D's RLBench crop (``RLBenchEnv.POINT_CLOUD_BOUNDS["default"]``), the harness CLAR's
#: RLBench protocol follows: everything above the table top (z 0.76 m) within 1.5 m.
LIFT3D_BOUNDS = ((-1.5, -1.5, 0.76), (1.5, 1.5, 3.0))
#: PerAct / RVT ``SCENE_BOUNDS``: the 1 m cube the tasks happen in.
PERACT_BOUNDS = ((-0.3, -0.5, 0.6), (0.7, 0.5, 1.6))
_NAMED_BOUNDS = {"lift3d": LIFT3D_BOUNDS, "peract": PERACT_BOUNDS}

PROPRIO_KINDS = {"pose": 8, "lift3d": 15}
ACTION_MODES = ("absolute", "delta")


def parse_bounds(value) -> np.ndarray | None:
    """``"lift3d"`` | ``"peract"`` | ``"none"`` | ``"x0,y0,z0,x1,y1,z1"`` | (2, 3) -> (2, 3) or None."""
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().lower()
        if key == "none":
            return None
        if key in _NAMED_BOUNDS:
            return np.asarray(_NAMED_BOUNDS[key], dtype=np.float64)
        try:
            value = [float(x) for x in key.split(",")]
        except ValueError:
            raise ToolkitError(
                f"bounds {value!r}: expected lift3d, peract, none or xmin,ymin,zmin,xmax,ymax,zmax"
            ) from None
    b = np.asarray(value, dtype=np.float64).reshape(-1)
    if b.size != 6 or not np.isfinite(b).all() or np.any(b[:3] > b[3:]):
        raise ToolkitError(
            f"bounds: expected xmin,ymin,zmin,xmax,ymax,zmax with min <= max, got {value}"
        )
    return b.reshape(2, 3)


def canonical_quaternion(q) -> np.ndarray:
    """Unit quaternion(s) ``(..., 4)`` xyzw with ``w >= 0`` (q and -q are the same rotation)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n < 1e-8):
        raise ToolkitError(f"quaternion of (near) zero norm: {q.tolist()}")
    q = q / n
    return np.where(q[..., 3:4] < 0, -q, q)


def quat_multiply(a, b) -> np.ndarray:
    """Hamilton product ``a * b`` of xyzw quaternions ``(..., 4)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def _conjugate(q: np.ndarray) -> np.ndarray:
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def pose_action(
    target_pose, target_open: float, current_pose=None, mode: str = "absolute"
) -> np.ndarray:
    """``(8,)`` float32 action: pose ``xyz + quat (xyzw, w >= 0)`` + gripper open.

    Args:
        target_pose: ``(7,)`` RLBench ``gripper_pose`` (xyz + xyzw) to reach.
        target_open: gripper open state at the target (1.0 open, 0.0 closed).
        current_pose: ``(7,)`` the pose now (needed for ``mode="delta"``).
        mode: ``absolute`` (world pose) or ``delta`` (RLBench's ``absolute_mode=False``:
            ``xyz_target - xyz_now`` and ``q_delta = q_target * q_now^-1``).
    """
    target = np.asarray(target_pose, dtype=np.float64).reshape(-1)
    if target.shape != (7,):
        raise ToolkitError(f"gripper pose: expected 7 values (xyz + xyzw), got {target.shape}")
    pos, quat = target[:3], canonical_quaternion(target[3:])
    if mode == "delta":
        if current_pose is None:
            raise ToolkitError("pose_action(mode='delta') needs current_pose")
        cur = np.asarray(current_pose, dtype=np.float64).reshape(-1)
        pos = pos - cur[:3]
        quat = canonical_quaternion(quat_multiply(quat, _conjugate(canonical_quaternion(cur[3:]))))
    elif mode != "absolute":
        raise ToolkitError(f"action mode: expected one of {ACTION_MODES}, got {mode!r}")
    return np.concatenate([pos, quat, [float(target_open)]]).astype(np.float32)


def proprio_vector(
    gripper_pose, gripper_open: float, joint_positions=None, kind: str = "pose"
) -> np.ndarray:
    """Proprioception ``(8,)`` (``pose``) or ``(15,)`` (``lift3d``), float32; see the module doc."""
    pose = np.asarray(gripper_pose, dtype=np.float64).reshape(-1)
    if pose.shape != (7,):
        raise ToolkitError(f"gripper pose: expected 7 values (xyz + xyzw), got {pose.shape}")
    parts = [pose[:3], canonical_quaternion(pose[3:]), [float(gripper_open)]]
    if kind == "lift3d":
        if joint_positions is None:
            raise ToolkitError("proprio 'lift3d' needs the joint positions (not recorded)")
        parts.insert(0, np.asarray(joint_positions, dtype=np.float64).reshape(-1))
    elif kind != "pose":
        raise ToolkitError(f"proprio: expected one of {sorted(PROPRIO_KINDS)}, got {kind!r}")
    return np.concatenate(parts).astype(np.float32)


def cloud_from_depths(
    depth: Mapping[str, np.ndarray],
    intrinsics: Mapping[str, np.ndarray],
    extrinsics: Mapping[str, np.ndarray],
    cameras: Sequence[str],
    bounds: np.ndarray | None,
    num_points: int,
    voxel_size: float | None = None,
    method: str = "bucket_fps",
) -> tuple[np.ndarray, np.ndarray]:
    """Merged, cropped, resampled world cloud of ``cameras``.

    Args:
        depth: ``{cam: (H, W)}`` metric z-depth. intrinsics / extrinsics: ``{cam: (3, 3) /
            (4, 4)}`` in the OpenCV convention (:func:`.cameras.to_opencv`).
        cameras: the cameras whose depth makes the cloud.
        bounds: ``(2, 3)`` world crop, or None. num_points: ``N``.

    Returns:
        ``points (N, 3) float32``, ``mask (N,) bool`` (False on padding).
    """
    import torch

    from toolkit.ops.cameras import unproject_depth
    from toolkit.ops.pointcloud import process_cloud

    parts = []
    for cam in cameras:
        d = torch.as_tensor(np.asarray(depth[cam], dtype=np.float64))
        pts = unproject_depth(d, torch.as_tensor(intrinsics[cam]), torch.as_tensor(extrinsics[cam]))
        valid = torch.isfinite(d) & (d > 0)
        parts.append(pts[valid])
    cloud = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
    pts, mask, _ = process_cloud(
        cloud.float(), bounds=bounds, voxel_size=voxel_size, n=int(num_points), method=method
    )
    return pts.numpy().astype(np.float32, copy=False), mask.numpy().astype(bool, copy=False)
