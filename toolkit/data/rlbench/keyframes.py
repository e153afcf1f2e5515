"""Keyframe (waypoint) discovery in RLBench demonstrations.

The heuristic of ARM / PerAct / RVT (``keypoint_discovery`` in stepjam/ARM
``arm/demo_loading_utils.py``, copied by PerAct ``helpers/demo_loading_utils.py`` and RVT):
step ``i > 0`` is a keyframe when the gripper open state changes there, when it is the last
step, or when the arm has stopped (every joint velocity within ``stopping_delta`` of 0, the
gripper state steady around it, at least 4 steps after the previous stop); a keyframe right
before the final one is dropped. Reproduced exactly, including the reference's
``demo[i - 1]`` / ``demo[i - 2]`` reads, which wrap to the episode's end for ``i < 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["keypoint_discovery"]


def _is_stopped(
    gripper_open: Sequence[float],
    joint_velocities: np.ndarray,
    i: int,
    stopped_buffer: int,
    delta: float,
) -> bool:
    n = len(gripper_open)
    next_is_not_final = i == n - 2
    g = gripper_open
    gripper_state_no_change = i < n - 2 and (
        g[i] == g[i + 1] and g[i] == g[i - 1] and g[i - 2] == g[i - 1]
    )
    small_delta = bool(np.allclose(joint_velocities[i], 0, atol=delta))
    return stopped_buffer <= 0 and small_delta and not next_is_not_final and gripper_state_no_change


def keypoint_discovery(
    gripper_open: Sequence[float], joint_velocities, stopping_delta: float = 0.1
) -> list[int]:
    """Keyframe step indices of one demonstration (ascending; the last step is always one).

    Args:
        gripper_open: ``(T,)`` RLBench's ``obs.gripper_open`` per step (1.0 open, 0.0 closed).
        joint_velocities: ``(T, J)`` ``obs.joint_velocities`` per step (rad/s).
        stopping_delta: joint velocities within this of 0 count as stopped (PerAct: 0.1).

    Returns:
        Indices ``i`` in ``[1, T)``; empty only for ``T <= 1``.
    """
    g = [float(x) for x in np.asarray(gripper_open, dtype=np.float64).reshape(-1)]
    vel = np.asarray(joint_velocities, dtype=np.float64)
    if vel.ndim != 2 or vel.shape[0] != len(g):
        raise ValueError(
            f"keypoint_discovery: joint_velocities must be (T, J) with T = {len(g)}, "
            f"got {vel.shape}"
        )
    keypoints: list[int] = []
    prev = g[0] if g else 0.0
    stopped_buffer = 0
    for i in range(len(g)):
        stopped = _is_stopped(g, vel, i, stopped_buffer, stopping_delta)
        stopped_buffer = 4 if stopped else stopped_buffer - 1
        last = i == len(g) - 1
        if i != 0 and (g[i] != prev or last or stopped):
            keypoints.append(i)
        prev = g[i]
    if len(keypoints) > 1 and keypoints[-1] - 1 == keypoints[-2]:
        keypoints.pop(-2)
    return keypoints
