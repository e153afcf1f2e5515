"""Damped-least-squares IK for the two ViperX arms and motion primitives at 50 Hz.

gym-aloha's end-effector (mocap) models do not work on MuJoCo 3.x, so the scripted experts
solve inverse kinematics themselves and command joints, like a teleoperator's leader arm:

- :class:`ArmIK` solves, for one 6-DoF arm, the joint angles that put the arm's tool centre
  point (site ``vx300s_{arm}/tcp``, between the finger pads) at a world position and the
  gripper frame at a world orientation. Damped least squares on MuJoCo's site Jacobian
  (:func:`mujoco.mj_jacSite`), pure numpy, warm-started from the previous solution, joint
  limits enforced by clipping. Gripper frame: x along the fingers (approach direction),
  y along the finger travel (the closing axis), z = x cross y.
- :class:`Motion` keeps the commanded joint targets of both arms and yields 14-d actions:
  ``move`` (Cartesian interpolation of position and orientation over N steps, one IK solve
  per step), ``move_joints_to`` (joint-space interpolation to the best of several IK
  solutions, for long moves), ``move_joints``, ``home``, ``gripper``, ``hold``. Each is a
  generator; experts chain them with ``yield from``.
- Gripper frames and rotation helpers live in :mod:`toolkit.envs.aloha.frames` (re-exported
  here).

Actions follow gym-aloha (``gym_aloha/tasks/sim.py``): ``[left waist, shoulder, elbow,
forearm_roll, wrist_angle, wrist_rotate, left gripper, right ... x7]``: absolute joint targets
in radians and a normalized gripper opening (0 closed .. 1 open) that the env maps linearly
onto the finger joints (0 -> 0.01844 m, 1 -> 0.058 m per finger, clipped by the actuators to
[0.021, 0.057]). One action per 0.02 s control step (50 Hz).

Kinematics use a robot-only copy of the scene (:func:`robot_kinematics`), so an expert needs
only the observation (``qpos``), not the simulator it acts in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from toolkit.envs.aloha.frames import (
    flipped,
    gripper_frame,
    horizontal_frame,
    nearest_grasp,
    pick_frame,
    rotation_error,
    slerp,
    top_down_frame,
    wrap_angle,
    yaw_rotation,
)
from toolkit.envs.aloha.scene import ARM_JOINTS, ARMS, HOME_QPOS, import_mujoco
from toolkit.utils.errors import ToolkitError

__all__ = [
    "ArmIK",
    "IKResult",
    "Motion",
    "gripper_frame",
    "horizontal_frame",
    "flipped",
    "nearest_grasp",
    "pick_frame",
    "robot_kinematics",
    "rotation_error",
    "slerp",
    "top_down_frame",
    "wrap_angle",
    "yaw_rotation",
]

#: 14-d action slices of each arm: 6 joints, then the gripper.
ARM_SLICE = {"left": slice(0, 6), "right": slice(7, 13)}
GRIPPER_INDEX = {"left": 6, "right": 13}
GRIPPER_OPEN = 1.0
GRIPPER_CLOSED = 0.0


# --------------------------------------------------------------------------------------------
# IK
# --------------------------------------------------------------------------------------------


@dataclass
class IKResult:
    """``q`` (6,) joint angles; residual position error (m) and rotation error (rad)."""

    q: np.ndarray
    pos_err: float
    rot_err: float
    iterations: int

    @property
    def ok(self) -> bool:
        return self.pos_err < 2e-3 and self.rot_err < 2e-2


class ArmIK:
    """DLS IK of one arm's TCP site on a MuJoCo model (its own scratch ``MjData``).

    Args:
        model: a compiled model holding the robot (any scene; only the arm's chain is used).
        arm: ``"left"`` or ``"right"``.
        damping: DLS damping (lambda) in metres-equivalent units.
        rot_weight: metres per radian in the stacked error (orientation vs position).
        max_step: largest joint update per iteration (rad).
        posture_gain: with ``solve(posture=True)``, pull toward ``rest`` in the (damped)
            null space of the task. The
            forearm roll and the wrist rotation are nearly collinear whenever the wrist is
            straight, so the task alone does not say which one should turn; without this
            prior the solver may wind the forearm roll to its limit (a flipped wrist) while
            following a long rotation, then fail further along the path.
        rest / rest_weight: the preferred joint angles (default: the start pose) and the
            prior's per-joint weights (default: the forearm roll only).
    """

    def __init__(
        self,
        model,
        arm: str,
        damping: float = 0.02,
        rot_weight: float = 0.15,
        max_step: float = 0.2,
        posture_gain: float = 0.5,
        rest=HOME_QPOS,
        rest_weight=(0.0, 0.0, 0.0, 1.0, 0.0, 0.0),
    ) -> None:
        if arm not in ARMS:
            raise ToolkitError(f"unknown ALOHA arm {arm!r}; arms: {', '.join(ARMS)}")
        mujoco = import_mujoco()
        self._mj = mujoco
        self.model = model
        self.data = mujoco.MjData(model)
        self.arm = arm
        jids = [model.joint(f"vx300s_{arm}/{j}").id for j in ARM_JOINTS]
        self.qadr = np.array([model.jnt_qposadr[j] for j in jids])
        self.dadr = np.array([model.jnt_dofadr[j] for j in jids])
        self.lo = model.jnt_range[jids, 0].copy()
        self.hi = model.jnt_range[jids, 1].copy()
        self.site = model.site(f"vx300s_{arm}/tcp").id
        self.base = np.array(model.body(f"vx300s_{arm}").pos, dtype=np.float64)
        self.damping = float(damping)
        self.rot_weight = float(rot_weight)
        self.max_step = float(max_step)
        self.posture_gain = float(posture_gain)
        self.rest = np.asarray(rest, dtype=np.float64)
        self.rest_weight = np.asarray(rest_weight, dtype=np.float64)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """``(position (3,), rotation (3, 3))`` of the TCP for joint angles ``q`` (6,)."""
        self.data.qpos[self.qadr] = q
        self._mj.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(
            3, 3
        ).copy()

    def solve(
        self,
        pos,
        rot: np.ndarray | None,
        q0,
        iters: int = 60,
        tol: float = 1e-4,
        posture: bool = False,
    ) -> IKResult:
        """Joint angles reaching ``pos`` (and ``rot`` unless None) from the warm start ``q0``.

        ``posture``: apply the posture prior (for solves from far away; a warm start a small
        step from the target needs none and converges in a few iterations without it).
        """
        mj = self._mj
        q = np.clip(np.asarray(q0, dtype=np.float64).copy(), self.lo, self.hi)
        pos = np.asarray(pos, dtype=np.float64)
        w = self.rot_weight
        lam2 = self.damping**2
        ep, er = np.inf, np.inf
        for it in range(1, iters + 1):
            self.data.qpos[self.qadr] = q
            mj.mj_kinematics(self.model, self.data)
            mj.mj_comPos(self.model, self.data)
            p = self.data.site_xpos[self.site]
            e_pos = pos - p
            ep = float(np.linalg.norm(e_pos))
            if rot is not None:
                e_rot = rotation_error(rot, self.data.site_xmat[self.site].reshape(3, 3))
                er = float(np.linalg.norm(e_rot))
            else:
                e_rot, er = np.zeros(3), 0.0
            if ep < tol and er < tol * 10:
                return IKResult(q, ep, er, it)
            mj.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            Jp = self._jacp[:, self.dadr]
            if rot is not None:
                J = np.vstack([Jp, w * self._jacr[:, self.dadr]])
                e = np.concatenate([e_pos, w * e_rot])
            else:
                J, e = Jp, e_pos
            J_pinv = J.T @ np.linalg.inv(J @ J.T + lam2 * np.eye(J.shape[0]))
            dq = J_pinv @ e
            # The damped null space is not exact, so the prior biases the solution a little:
            # it only acts in the first half of the iterations; the rest converges on the
            # task alone.
            if posture and it <= iters // 2:
                null = np.eye(6) - J_pinv @ J
                dq += null @ (self.posture_gain * self.rest_weight * (self.rest - q))
            n = float(np.abs(dq).max())
            if n > self.max_step:
                dq *= self.max_step / n
            q = np.clip(q + dq, self.lo, self.hi)
        p, R = self.fk(q)
        ep = float(np.linalg.norm(pos - p))
        er = float(np.linalg.norm(rotation_error(rot, R))) if rot is not None else 0.0
        return IKResult(q, ep, er, iters)

    def wrist_twin(self, q) -> np.ndarray | None:
        """The other wrist configuration with the same TCP pose, or None if out of limits.

        The ViperX wrist is spherical (forearm roll, wrist angle and wrist rotation axes meet
        in one point), so ``Rx(a) Ry(b) Rx(c) = Rx(a + pi) Ry(-b) Rx(c + pi)``.
        """
        t = np.asarray(q, dtype=np.float64).copy()
        t[3] = t[3] - math.pi if t[3] > 0 else t[3] + math.pi
        t[4] = -t[4]
        t[5] = t[5] - math.pi if t[5] > 0 else t[5] + math.pi
        if np.any(t < self.lo) or np.any(t > self.hi):
            return None
        return t


class RobotKinematics:
    """IK of both arms on a robot-only model (no objects): ``kin["left"].solve(...)``."""

    def __init__(self, model=None) -> None:
        if model is None:
            from toolkit.envs.aloha.scene import robot_spec

            model = robot_spec().compile()
        self.model = model
        self.arms = {arm: ArmIK(model, arm) for arm in ARMS}

    def __getitem__(self, arm: str) -> ArmIK:
        return self.arms[arm]


@lru_cache(maxsize=1)
def robot_kinematics() -> RobotKinematics:
    """A per-process :class:`RobotKinematics` (compiling the robot takes ~50 ms)."""
    return RobotKinematics()


# --------------------------------------------------------------------------------------------
# Motion primitives
# --------------------------------------------------------------------------------------------


def _smooth(s: float) -> float:
    """Cosine ease-in / ease-out of a fraction in [0, 1] (zero velocity at both ends)."""
    return 0.5 - 0.5 * math.cos(math.pi * min(max(s, 0.0), 1.0))


#: Joint angles after the waist of :meth:`Motion.goal`'s cold starts.
_GOAL_STARTS = (
    (0.0, 0.5, 0.0, 1.2, 0.0),
    (-0.96, 1.16, 0.0, -0.3, 0.0),
    (0.0, 0.5, 0.0, 1.2, 1.5),
    (0.0, 0.5, 0.0, 1.2, -1.5),
)


class Motion:
    """Commanded joint targets of both arms and generators of 14-d actions.

    Args:
        qpos14: the observation's ``qpos`` (14,): the starting command.
        kin: kinematics (default: :func:`robot_kinematics`).

    Every generator yields ``(14,)`` float64 actions, one per control step, and leaves the
    arm's command at its final target. ``ik_failures`` counts IK solves that missed their
    target by more than 2 mm / 0.02 rad (the expert goes on with the closest solution).
    """

    def __init__(self, qpos14, kin: RobotKinematics | None = None) -> None:
        qpos14 = np.asarray(qpos14, dtype=np.float64).reshape(-1)
        if qpos14.shape != (14,):
            raise ToolkitError(f"Motion needs the 14-d ALOHA qpos, got shape {qpos14.shape}")
        self.kin = kin or robot_kinematics()
        self.q = {arm: qpos14[ARM_SLICE[arm]].copy() for arm in ARMS}
        self.grip = {arm: float(qpos14[GRIPPER_INDEX[arm]]) for arm in ARMS}
        self.ik_failures = 0

    def action(self) -> np.ndarray:
        """The current command as a ``(14,)`` action."""
        a = np.zeros(14)
        for arm in ARMS:
            a[ARM_SLICE[arm]] = self.q[arm]
            a[GRIPPER_INDEX[arm]] = self.grip[arm]
        return a

    def pose(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """Commanded TCP ``(position, rotation)`` of ``arm`` (forward kinematics)."""
        return self.kin[arm].fk(self.q[arm])

    def solve(self, arm: str, pos, rot) -> np.ndarray:
        res = self.kin[arm].solve(pos, rot, self.q[arm])
        if not res.ok:
            self.ik_failures += 1
        return res.q

    def move(
        self,
        arm: str,
        pos,
        rot: np.ndarray | None = None,
        steps: int = 40,
        grip: float | None = None,
        symmetric: bool = False,
    ) -> Iterator[np.ndarray]:
        """Move ``arm``'s TCP to ``pos`` / ``rot`` (None keeps the orientation) along a
        straight line with a slerped orientation, eased in and out over ``steps`` steps;
        ``grip`` ramps the gripper to that opening along the way. ``symmetric``: the empty
        gripper may end finger-swapped (:func:`nearest_grasp`); never while holding something
        (the held object would turn with the hand)."""
        p0, R0 = self.pose(arm)
        p1 = np.asarray(pos, dtype=np.float64)
        R1 = R0 if rot is None else np.asarray(rot, dtype=np.float64)
        if symmetric and rot is not None:
            R1 = nearest_grasp(R1, R0)
        g0 = self.grip[arm]
        steps = max(1, int(steps))
        for i in range(1, steps + 1):
            s = _smooth(i / steps)
            self.q[arm] = self.solve(arm, p0 + (p1 - p0) * s, slerp(R0, R1, s))
            if grip is not None:
                self.grip[arm] = g0 + (float(grip) - g0) * (i / steps)
            yield self.action()

    def goal(self, arm: str, pos, rot: np.ndarray | None, symmetric: bool = True) -> np.ndarray:
        """Joint angles for a distant target: the best of IK solves warm-started from the
        current command and from the start pose turned toward the target.

        Best = reaches the target, then the least forearm roll (an unwound wrist), then the
        smallest joint change; each solution's wrist twin (:meth:`ArmIK.wrist_twin`, the same
        pose) and, with ``symmetric`` (an empty gripper), the finger-swapped ``rot`` are
        considered too.
        """
        ik = self.kin[arm]
        d = np.asarray(pos, dtype=np.float64)[:2] - ik.base[:2]
        base_yaw = 0.0 if arm == "left" else math.pi  # the right arm's base is turned 180 deg
        waist = wrap_angle(math.atan2(d[1], d[0]) - base_yaw)
        # Warm start, then postures aimed at the target: gripper pointing down (the most
        # reliable start for table-top goals), the start pose, and down with the wrist turned.
        starts = [self.q[arm]] + [
            np.array([waist, *rest], dtype=np.float64) for rest in _GOAL_STARTS
        ]
        best, best_cost = None, np.inf
        rots = [rot] if rot is None or not symmetric else [rot, flipped(rot)]
        for q_start in starts:
            for R in rots:
                res = ik.solve(pos, R, q_start, iters=200, posture=True)
                twin = ik.wrist_twin(res.q)
                for q in (res.q,) if twin is None else (res.q, twin):
                    cost = (0.0 if res.ok else 100.0) + abs(q[3])
                    cost += 0.1 * float(np.abs(q - self.q[arm]).sum())
                    if cost < best_cost:
                        best, best_cost = (
                            IKResult(q, res.pos_err, res.rot_err, res.iterations),
                            cost,
                        )
            if best.ok and abs(best.q[3]) < 1.0:
                break
        if not best.ok:
            self.ik_failures += 1
        return best.q

    def move_joints_to(
        self,
        arm: str,
        pos,
        rot: np.ndarray | None = None,
        steps: int = 40,
        grip: float | None = None,
        symmetric: bool = True,
    ) -> Iterator[np.ndarray]:
        """Like :meth:`move` but interpolating joint angles to the IK goal (:meth:`goal`):
        for long free-space moves with large rotations, where a straight Cartesian path
        could wind the wrist the wrong way. Pass ``symmetric=False`` while holding."""
        q1 = self.goal(arm, pos, rot, symmetric=symmetric)
        g0 = self.grip[arm]
        q0 = self.q[arm].copy()
        steps = max(1, int(steps))
        for i in range(1, steps + 1):
            self.q[arm] = q0 + (q1 - q0) * _smooth(i / steps)
            if grip is not None:
                self.grip[arm] = g0 + (float(grip) - g0) * (i / steps)
            yield self.action()

    def move_both(
        self,
        targets: dict[str, tuple[np.ndarray, np.ndarray | None]],
        steps: int = 40,
    ) -> Iterator[np.ndarray]:
        """Move several arms at once: ``targets[arm] = (pos, rot or None)``."""
        starts = {arm: self.pose(arm) for arm in targets}
        steps = max(1, int(steps))
        for i in range(1, steps + 1):
            s = _smooth(i / steps)
            for arm, (pos, rot) in targets.items():
                p0, R0 = starts[arm]
                R1 = R0 if rot is None else rot
                self.q[arm] = self.solve(arm, p0 + (np.asarray(pos) - p0) * s, slerp(R0, R1, s))
            yield self.action()

    def move_joints(self, arm: str, q, steps: int = 40) -> Iterator[np.ndarray]:
        """Joint-space interpolation of ``arm`` to ``q`` (6,) (e.g. back to ``HOME_QPOS``)."""
        q0 = self.q[arm].copy()
        q1 = np.asarray(q, dtype=np.float64)
        steps = max(1, int(steps))
        for i in range(1, steps + 1):
            self.q[arm] = q0 + (q1 - q0) * _smooth(i / steps)
            yield self.action()

    def home(self, arm: str, steps: int = 40) -> Iterator[np.ndarray]:
        yield from self.move_joints(arm, HOME_QPOS, steps)

    def gripper(self, arm: str, value: float, steps: int = 10) -> Iterator[np.ndarray]:
        """Ramp ``arm``'s gripper command to ``value`` (0 closed .. 1 open) over ``steps``."""
        g0 = self.grip[arm]
        steps = max(1, int(steps))
        for i in range(1, steps + 1):
            self.grip[arm] = g0 + (float(value) - g0) * i / steps
            yield self.action()

    def hold(self, steps: int) -> Iterator[np.ndarray]:
        """Keep the current command for ``steps`` steps (let the arms settle)."""
        for _ in range(max(0, int(steps))):
            yield self.action()
