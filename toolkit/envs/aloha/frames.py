"""Rotations and gripper frames for the ALOHA experts (numpy, MuJoCo's quaternion helpers).

Gripper frame convention (the TCP site ``vx300s_{arm}/tcp``): x along the fingers (the
approach direction), y along the finger travel (the closing axis), z = x cross y (the
gripper's top when level).
"""

from __future__ import annotations

import math

import numpy as np

from toolkit.envs.aloha.scene import import_mujoco
from toolkit.utils.errors import ToolkitError

__all__ = [
    "flipped",
    "gripper_frame",
    "horizontal_frame",
    "nearest_grasp",
    "pick_frame",
    "quat_to_mat",
    "rotation_error",
    "slerp",
    "top_down_frame",
    "wrap_angle",
    "yaw_rotation",
]


def _mat_to_quat(R: np.ndarray) -> np.ndarray:
    mujoco = import_mujoco()
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    mujoco = import_mujoco()
    R = np.zeros(9)
    mujoco.mju_quat2Mat(R, np.asarray(q, dtype=np.float64))
    return R.reshape(3, 3)


def rotation_error(R_target: np.ndarray, R: np.ndarray) -> np.ndarray:
    """World-frame rotation vector ``(3,)`` taking ``R`` to ``R_target`` (axis * angle)."""
    q = _mat_to_quat(R_target @ R.T)
    if q[0] < 0:
        q = -q
    s = float(np.linalg.norm(q[1:]))
    if s < 1e-12:
        return np.zeros(3)
    return 2.0 * math.atan2(s, q[0]) * q[1:] / s


def slerp(R0: np.ndarray, R1: np.ndarray, s: float) -> np.ndarray:
    """Rotation a fraction ``s`` of the way from ``R0`` to ``R1`` (shortest arc)."""
    w = rotation_error(R1, R0) * float(s)
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return R0.copy()
    axis = w / angle
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    dR = np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K
    return dR @ R0


def gripper_frame(approach, closing) -> np.ndarray:
    """Gripper orientation ``(3, 3)`` (columns x, y, z) from the approach (x) direction and
    the finger closing axis (y, made orthogonal to x)."""
    x = np.asarray(approach, dtype=np.float64)
    x = x / np.linalg.norm(x)
    y = np.asarray(closing, dtype=np.float64)
    y = y - x * float(x @ y)
    n = float(np.linalg.norm(y))
    if n < 1e-9:
        raise ToolkitError("gripper_frame: the closing axis is parallel to the approach")
    y /= n
    return np.stack([x, y, np.cross(x, y)], axis=1)


def top_down_frame(finger_yaw: float) -> np.ndarray:
    """Gripper pointing straight down, fingers closing along world yaw ``finger_yaw``."""
    return gripper_frame((0.0, 0.0, -1.0), (math.cos(finger_yaw), math.sin(finger_yaw), 0.0))


def horizontal_frame(approach_yaw: float, pitch: float = 0.0) -> np.ndarray:
    """Gripper pointing horizontally along world yaw ``approach_yaw`` (tilted down by
    ``pitch`` radians), fingers closing horizontally, gripper top (z) up."""
    c = math.cos(pitch)
    x = (c * math.cos(approach_yaw), c * math.sin(approach_yaw), -math.sin(pitch))
    y = (-math.sin(approach_yaw), math.cos(approach_yaw), 0.0)
    return gripper_frame(x, y)


def wrap_angle(a: float) -> float:
    """``a`` wrapped to [-pi, pi)."""
    return (float(a) + math.pi) % (2.0 * math.pi) - math.pi


def pick_frame(
    base_xy, point, finger_yaw: float, tilt: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """Gripper frame for a top-down pick by the arm whose base is at ``base_xy``.

    The fingers close horizontally along world yaw ``finger_yaw``; the approach points down,
    leaning ``tilt`` radians about the finger axis, toward the side facing away from the base
    (a 20 degree lean extends the ViperX's reach with a near-vertical gripper from ~0.11 m to
    ~0.18 m past the table centre). Leaning about the finger axis keeps both finger pads
    vertical, so an upright object is pinched level and stays upright when carried.

    Returns ``(R (3, 3), lean (3,))``: the frame and the horizontal unit lean direction (turn
    the frame about the vertical to aim the lean elsewhere, e.g. outward at the place point).
    """
    f = np.array([math.cos(finger_yaw), math.sin(finger_yaw), 0.0])
    u = np.array([-f[1], f[0], 0.0])
    r = np.array([point[0] - base_xy[0], point[1] - base_xy[1], 0.0])
    if float(u @ r) < 0:
        u = -u
    a = math.sin(tilt) * u + math.cos(tilt) * np.array([0.0, 0.0, -1.0])
    return gripper_frame(a, f), u


def flipped(R: np.ndarray) -> np.ndarray:
    """The same grasp with the fingers swapped: turned 180 degrees about the approach axis."""
    return R @ np.diag([1.0, -1.0, -1.0])


def nearest_grasp(R_target: np.ndarray, R_now: np.ndarray) -> np.ndarray:
    """``R_target`` or its finger-swapped twin, whichever is the smaller rotation from ``R_now``
    (the two fingers are identical, so both are the same grasp)."""
    alt = flipped(R_target)
    a0 = float(np.linalg.norm(rotation_error(R_target, R_now)))
    a1 = float(np.linalg.norm(rotation_error(alt, R_now)))
    return alt if a1 < a0 else R_target


def yaw_rotation(angle: float) -> np.ndarray:
    """``(3, 3)`` rotation about world +z."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
