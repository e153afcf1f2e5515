"""The physics of one ALOHA task: a compiled scene, 14-d joint-position control at 50 Hz and
read-outs of the simulator state that tasks use for layouts, progress and success.

Control (gym-aloha's ``BimanualViperXTask.before_step``): the action's arm entries are the
position actuators' targets (radians); each gripper entry ``g`` (0 closed .. 1 open) becomes
the finger target ``0.01844 + g * (0.058 - 0.01844)`` metres, applied to the left finger and
negated on the right one (the actuators clip it to [0.021, 0.057]). One control step is 10
physics steps of 2 ms (0.02 s, 50 Hz), as gym-aloha's ``control_timestep``.
"""

from __future__ import annotations

import numpy as np

from toolkit.envs.aloha.scene import (
    ARM_JOINTS,
    ARMS,
    GRIPPER_CLOSED_M,
    GRIPPER_OPEN_M,
    HOME_QPOS,
    ObjectInfo,
    SceneBuilder,
    import_mujoco,
    quat_from_yaw,
)

__all__ = ["AlohaSim", "gripper_from_finger", "gripper_to_finger"]

#: Physics steps per control step (0.002 s each): 50 Hz control.
SUBSTEPS = 10
CONTROL_DT = 0.02
#: gym-aloha's start pose of the fingers (``START_ARM_POSE``): gripper opening ~0.1.
START_FINGER_M = 0.02239


def gripper_to_finger(g) -> np.ndarray:
    """Normalized gripper opening (0 closed .. 1 open) -> finger joint target (metres)."""
    return GRIPPER_CLOSED_M + np.asarray(g, dtype=np.float64) * (GRIPPER_OPEN_M - GRIPPER_CLOSED_M)


def gripper_from_finger(x) -> np.ndarray:
    """Finger joint position (metres) -> normalized gripper opening (gym-aloha's qpos)."""
    return (np.asarray(x, dtype=np.float64) - GRIPPER_CLOSED_M) / (
        GRIPPER_OPEN_M - GRIPPER_CLOSED_M
    )


class AlohaSim:
    """A compiled scene with its objects, driven by 14-d actions.

    Args:
        builder: a :class:`SceneBuilder` holding the task's objects (compiled here).
    """

    def __init__(self, builder: SceneBuilder) -> None:
        mj = import_mujoco()
        self._mj = mj
        self.model = builder.compile()
        self.data = mj.MjData(self.model)
        self.objects: dict[str, ObjectInfo] = dict(builder.objects)
        m = self.model
        self._arm_q = {
            a: np.array([m.jnt_qposadr[m.joint(f"vx300s_{a}/{j}").id] for j in ARM_JOINTS])
            for a in ARMS
        }
        self._arm_v = {
            a: np.array([m.jnt_dofadr[m.joint(f"vx300s_{a}/{j}").id] for j in ARM_JOINTS])
            for a in ARMS
        }
        self._finger_q = {
            a: (
                int(m.jnt_qposadr[m.joint(f"vx300s_{a}/left_finger").id]),
                int(m.jnt_qposadr[m.joint(f"vx300s_{a}/right_finger").id]),
            )
            for a in ARMS
        }
        # Actuators are declared per arm: 6 joints, left finger, right finger.
        act_joint = {m.joint(int(m.actuator_trnid[i, 0])).name: i for i in range(m.nu)}
        self._arm_u = {
            a: np.array([act_joint[f"vx300s_{a}/{j}"] for j in ARM_JOINTS]) for a in ARMS
        }
        self._finger_u = {
            a: (act_joint[f"vx300s_{a}/left_finger"], act_joint[f"vx300s_{a}/right_finger"])
            for a in ARMS
        }
        self.finger_geoms = {
            a: (
                m.geom(f"vx300s_{a}/10_left_gripper_finger").id,
                m.geom(f"vx300s_{a}/10_right_gripper_finger").id,
            )
            for a in ARMS
        }
        self.table_geom = m.geom("table_top").id
        self.geom_ids = {
            n: frozenset(m.geom(g).id for g in o.geoms) for n, o in self.objects.items()
        }
        self._free_adr = {}
        self._mocap = {}
        for name, info in self.objects.items():
            if info.kind == "free":
                self._free_adr[name] = int(m.jnt_qposadr[m.joint(f"{name}/free").id])
            else:
                self._mocap[name] = int(m.body_mocapid[m.body(name).id])
        self.tcp_sites = {a: m.site(f"vx300s_{a}/tcp").id for a in ARMS}

    # ------------------------------------------------------------------ state
    def reset_robot(self) -> None:
        """Zero the simulation and put both arms in gym-aloha's start pose (at rest)."""
        self._mj.mj_resetData(self.model, self.data)
        for a in ARMS:
            self.data.qpos[self._arm_q[a]] = HOME_QPOS
            lf, rf = self._finger_q[a]
            self.data.qpos[lf], self.data.qpos[rf] = START_FINGER_M, -START_FINGER_M
        self.data.ctrl[:] = self.ctrl_for(self.qpos14())

    def place(self, name: str, xy, yaw: float = 0.0, z: float | None = None) -> None:
        """Put object ``name`` at table position ``xy`` turned by ``yaw`` (upright, at rest)."""
        info = self.objects[name]
        pos = np.array([xy[0], xy[1], info.base_z + 5e-4 if z is None else z])
        quat = quat_from_yaw(yaw)
        if info.kind == "free":
            adr = self._free_adr[name]
            self.data.qpos[adr : adr + 3] = pos
            self.data.qpos[adr + 3 : adr + 7] = quat
        else:
            mid = self._mocap[name]  # fixed objects stand on the table unless z is given
            self.data.mocap_pos[mid] = (xy[0], xy[1], 0.0 if z is None else z)
            self.data.mocap_quat[mid] = quat

    def set_joint(self, name: str, value: float) -> None:
        self.data.qpos[self.model.jnt_qposadr[self.model.joint(name).id]] = value

    def joint(self, name: str) -> float:
        return float(self.data.qpos[self.model.jnt_qposadr[self.model.joint(name).id]])

    def forward(self) -> None:
        self._mj.mj_forward(self.model, self.data)

    def settle(self, steps: int = 25) -> None:
        """Let objects come to rest under gravity holding the current command."""
        for _ in range(int(steps)):
            self._mj.mj_step(self.model, self.data, SUBSTEPS)

    # ------------------------------------------------------------------ control
    def ctrl_for(self, action) -> np.ndarray:
        """The 16 actuator targets of a 14-d action (see the module docstring)."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        ctrl = np.zeros(self.model.nu)
        for i, arm in enumerate(ARMS):
            ctrl[self._arm_u[arm]] = a[7 * i : 7 * i + 6]
            f = float(gripper_to_finger(a[7 * i + 6]))
            lu, ru = self._finger_u[arm]
            ctrl[lu], ctrl[ru] = f, -f
        return ctrl

    def step(self, action) -> None:
        """Apply a 14-d action for one 0.02 s control step."""
        self.data.ctrl[:] = self.ctrl_for(action)
        self._mj.mj_step(self.model, self.data, SUBSTEPS)

    # ------------------------------------------------------------------ read-outs
    def qpos14(self) -> np.ndarray:
        """gym-aloha's ``qpos``: per arm 6 joint angles + normalized gripper opening."""
        out = np.zeros(14)
        for i, arm in enumerate(ARMS):
            out[7 * i : 7 * i + 6] = self.data.qpos[self._arm_q[arm]]
            out[7 * i + 6] = gripper_from_finger(self.data.qpos[self._finger_q[arm][0]])
        return out

    def qvel14(self) -> np.ndarray:
        """Joint velocities in the ``qpos14`` layout (gripper: normalized units per second)."""
        out = np.zeros(14)
        scale = 1.0 / (GRIPPER_OPEN_M - GRIPPER_CLOSED_M)
        for i, arm in enumerate(ARMS):
            out[7 * i : 7 * i + 6] = self.data.qvel[self._arm_v[arm]]
            lf = self.model.jnt_dofadr[self.model.joint(f"vx300s_{arm}/left_finger").id]
            out[7 * i + 6] = self.data.qvel[lf] * scale
        return out

    def tcp_pose(self, arm: str) -> np.ndarray:
        """``(4, 4)`` world pose of ``arm``'s tool centre point (gripper frame axes)."""
        T = np.eye(4)
        sid = self.tcp_sites[arm]
        T[:3, :3] = self.data.site_xmat[sid].reshape(3, 3)
        T[:3, 3] = self.data.site_xpos[sid]
        return T

    def body_pose(self, name: str) -> np.ndarray:
        """``(7,)`` world position + quaternion (w, x, y, z) of body ``name``."""
        b = self.data.body(name)
        return np.concatenate([b.xpos, b.xquat]).astype(np.float64)

    def body_rot(self, name: str) -> np.ndarray:
        return np.asarray(self.data.body(name).xmat, dtype=np.float64).reshape(3, 3)

    def site_pos(self, name: str) -> np.ndarray:
        return np.asarray(self.data.site(name).xpos, dtype=np.float64).copy()

    def contact_pairs(self) -> set[tuple[int, int]]:
        """Geom id pairs in contact now (each pair sorted)."""
        c = self.data.contact
        n = self.data.ncon
        g1, g2 = c.geom1[:n], c.geom2[:n]
        return {(int(min(a, b)), int(max(a, b))) for a, b in zip(g1, g2, strict=True)}

    def touching(self, geoms_a, geoms_b, pairs: set[tuple[int, int]] | None = None) -> bool:
        """Whether any geom of ``geoms_a`` touches any of ``geoms_b`` (id collections)."""
        pairs = self.contact_pairs() if pairs is None else pairs
        a, b = set(geoms_a), set(geoms_b)
        return any((i in a and j in b) or (i in b and j in a) for i, j in pairs)

    def grasping(self, arm: str, name: str, pairs: set[tuple[int, int]] | None = None) -> bool:
        """Both fingers of ``arm`` touch object ``name``."""
        pairs = self.contact_pairs() if pairs is None else pairs
        obj = self.geom_ids[name]
        lf, rf = self.finger_geoms[arm]
        return self.touching({lf}, obj, pairs) and self.touching({rf}, obj, pairs)

    def held_by(self, name: str, pairs: set[tuple[int, int]] | None = None) -> str | None:
        """The arm grasping ``name`` (both fingers touching it), or None."""
        pairs = self.contact_pairs() if pairs is None else pairs
        for arm in ARMS:
            if self.grasping(arm, name, pairs):
                return arm
        return None

    def touched_by_gripper(self, name: str, pairs: set[tuple[int, int]] | None = None) -> bool:
        pairs = self.contact_pairs() if pairs is None else pairs
        fingers = {g for arm in ARMS for g in self.finger_geoms[arm]}
        return self.touching(fingers, self.geom_ids[name], pairs)

    def overlapping_objects(self) -> list[tuple[str, str]]:
        """Object pairs whose geoms intersect now (after ``forward``): a bad layout."""
        pairs = self.contact_pairs()
        names = list(self.geom_ids)
        out = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if self.touching(self.geom_ids[a], self.geom_ids[b], pairs):
                    out.append((a, b))
        return out

    def object_poses(self) -> dict[str, np.ndarray]:
        """``{name: (7,) pose}`` of every object (privileged state for experts)."""
        return {n: self.body_pose(n) for n in self.objects}

    def object_joints(self) -> dict[str, float]:
        """``{joint name: position}`` of every articulated object joint."""
        return {j: self.joint(j) for o in self.objects.values() for j in o.joints.values()}
