"""ALOHA scenes composed with :class:`mujoco.MjSpec` on gym-aloha's bimanual ViperX model.

The robot (two ViperX 300 6-DoF arms with parallel grippers, the table and the lights) is read
at run time from the installed ``gym_aloha`` package (``gym_aloha/assets``); nothing is copied
into this repository. :func:`robot_spec` loads gym-aloha's transfer-cube MJCF, removes its red
cube, keyframe, cameras and invisible calibration sites, and adds one tool-centre-point site
per arm (``{arm}/tcp``, between the finger pads). :class:`SceneBuilder` then adds objects made
of primitives (boxes, cylinders, capsules, see :mod:`toolkit.envs.aloha.objects`) and the
camera rig (:mod:`toolkit.envs.aloha.cameras`), and compiles the model.

World frame (gym-aloha's): metres, z up, the table top at ``z = 0`` spanning
``x in [-0.61, 0.61]``, ``y in [0.22, 0.98]``; the left arm's base at ``(-0.469, 0.5, 0)``,
the right arm's at ``(0.469, 0.5, 0)`` (facing each other along x); "front" is low y.

Objects are either **free** (a free joint, placed per episode through ``qpos``) or **fixed**
(a mocap body, placed per episode through ``mocap_pos`` / ``mocap_quat``; articulated parts
such as drawers hang below it on their own joints), so one compiled model serves every layout
of a task and the renderers are built once.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.envs.base import MissingSuiteDependencyError
from toolkit.utils.errors import ToolkitError

__all__ = [
    "ARMS",
    "ARM_JOINTS",
    "HOME_QPOS",
    "ObjectInfo",
    "SceneBuilder",
    "aloha_assets_dir",
    "import_mujoco",
    "quat_from_yaw",
    "robot_spec",
]

INSTALL_HINT = (
    "gym-aloha is not installed: install the suite's extra with `pip install -e .[aloha]` "
    "(gym-aloha>=0.1.5; the ALOHA scenes read its ViperX assets) and render offscreen with "
    "MUJOCO_GL=egl"
)
#: The gym-aloha MJCF the robot comes from (its red cube is removed).
ROBOT_XML = "bimanual_viperx_transfer_cube.xml"
ARMS = ("left", "right")
#: The six arm joints of each ViperX, in action order (``vx300s_{arm}/{joint}`` in the MJCF).
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
#: gym-aloha's start pose of each arm (radians).
HOME_QPOS = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0)
#: Finger joint positions (metres) of gym-aloha's normalized gripper 0 (closed) and 1 (open):
#: ``gym_aloha.constants.PUPPET_GRIPPER_POSITION_CLOSE / _OPEN``. The finger actuators clip
#: their targets to [0.021, 0.057], so 0 commands 0.021 (fully closed) and 1 commands 0.057.
GRIPPER_CLOSED_M = 0.01844
GRIPPER_OPEN_M = 0.05800
#: Tool centre point in the ``gripper_link`` frame: on the gripper axis, 5 cm behind the finger
#: tips (the tips reach x = 0.154; the pads' convex hulls span x in [0.064, 0.154]).
TCP_OFFSET = (0.12, 0.0, 0.0)
#: Table top: centre (x, y), half sizes (x, y), height.
TABLE_CENTER = (0.0, 0.6)
TABLE_HALF = (0.6096, 0.381)
TABLE_Z = 0.0
#: Geom group of invisible helpers (sites): cameras render groups 0-2 only.
HIDDEN_GROUP = 5

_DEFAULT_FRICTION = (1.0, 0.005, 0.0001)


def import_mujoco():
    """The ``mujoco`` module, with ``MUJOCO_GL=egl`` set first when unset (offscreen)."""
    if "MUJOCO_GL" not in os.environ:
        if "mujoco" in sys.modules:
            warnings.warn(
                "mujoco was imported before MUJOCO_GL was set: offscreen rendering will likely "
                "fail without a display; set MUJOCO_GL=egl before importing mujoco",
                RuntimeWarning,
                stacklevel=3,
            )
        os.environ["MUJOCO_GL"] = "egl"
    import mujoco

    return mujoco


def aloha_assets_dir() -> Path:
    """Folder of gym-aloha's MJCF and meshes, or :class:`MissingSuiteDependencyError`.

    Found with :func:`importlib.util.find_spec` so that gym-aloha itself (and its dm_control
    dependency) is never imported: only its asset files are read.
    """
    try:
        found = importlib.util.find_spec("gym_aloha")
    except (ImportError, ValueError):  # ValueError: sys.modules["gym_aloha"] is None
        found = None
    if found is None or not found.submodule_search_locations:
        raise MissingSuiteDependencyError(INSTALL_HINT)
    folder = Path(next(iter(found.submodule_search_locations))) / "assets"
    if not (folder / ROBOT_XML).is_file():
        raise MissingSuiteDependencyError(
            f"{INSTALL_HINT} (the installed gym_aloha has no {folder / ROBOT_XML})"
        )
    return folder


def quat_from_yaw(yaw: float) -> np.ndarray:
    """``(4,)`` MuJoCo quaternion (w, x, y, z) of a rotation by ``yaw`` radians about +z."""
    return np.array([math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)])


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """``(4,)`` MuJoCo quaternion of a 3x3 rotation matrix."""
    mujoco = import_mujoco()
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(R, dtype=np.float64).reshape(9))
    return q


def robot_spec():
    """gym-aloha's bimanual ViperX scene as an editable :class:`mujoco.MjSpec`.

    Removed: the transfer-cube's box, the keyframe (its qpos would not fit new objects), the
    five scene cameras and both wrist cameras (the rig replaces them) and the invisible
    calibration / focus sites (they would otherwise be drawn). Added: ``vx300s_{arm}/tcp``
    sites at :data:`TCP_OFFSET`; the table mesh becomes visual only and an invisible plane
    ``table_top`` (group 3) at its top face collides instead. Compiler: geoms of every group give inertia to bodies that
    declare none (gym-aloha counts groups 4-5 only; the robot declares all its inertias, so
    only new objects are affected).
    """
    mujoco = import_mujoco()
    spec = mujoco.MjSpec.from_file(str(aloha_assets_dir() / ROBOT_XML))
    box = spec.body("box")
    if box is not None:
        # MuJoCo >= 3.4 replaced MjSpec.detach_body with MjSpec.delete.
        remove = getattr(spec, "delete", None) or spec.detach_body
        remove(box)
    for key in list(spec.keys):
        key.delete()
    for cam in list(spec.cameras):
        cam.delete()
    for site in list(spec.sites):
        site.delete()
    for arm in ARMS:
        # The two fingers of a gripper never need to push on each other (closed, they touch).
        spec.add_exclude(
            bodyname1=f"vx300s_{arm}/left_finger_link", bodyname2=f"vx300s_{arm}/right_finger_link"
        )
        spec.body(f"vx300s_{arm}/gripper_link").add_site(
            name=f"vx300s_{arm}/tcp",
            pos=list(TCP_OFFSET),
            size=[0.005, 0.005, 0.005],
            group=HIDDEN_GROUP,
        )
    # The table top collides as a plane instead of its mesh: plane contacts are exact and
    # multi-point for boxes, cylinders and capsules (a convex mesh gives one point per pair,
    # so flat objects rock and sink), and cheap; every resting object touches the table.
    # A plane is infinite: an object pushed off the table would rest at z = 0 beyond it.
    table = spec.geom("table")
    table.contype, table.conaffinity = 0, 0
    spec.worldbody.add_geom(
        name="table_top",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[TABLE_HALF[0], TABLE_HALF[1], 0.05],
        pos=[TABLE_CENTER[0], TABLE_CENTER[1], TABLE_Z],
        group=HIDDEN_GROUP - 2,
        rgba=[0.2, 0.2, 0.2, 1.0],
    )
    # Convex-convex pairs (a mug standing on a plate, a finger pad on a box) get several
    # contact points instead of one, so flat faces rest flat.
    spec.option.enableflags |= mujoco.mjtEnableBit.mjENBL_MULTICCD
    spec.compiler.inertiagrouprange = [0, 5]
    # Wrist cameras see objects a few cm away: the near clip must be well below that
    # (znear is a fraction of the model extent, about 1.7 m).
    spec.visual.map.znear = 0.005
    spec.visual.quality.offsamples = 0
    return spec


@dataclass
class ObjectInfo:
    """What tasks and experts know about one object of a scene.

    Attributes:
        name: body name and the name used in text metadata (``"mug"``).
        kind: ``"free"`` (free joint) or ``"fixed"`` (mocap body, articulated children).
        radius: footprint radius (m) around the body origin, for layout checks.
        height: height (m) of the object's top above its base.
        geoms: names of the object's collision geoms (every part, children included).
        joints: articulation joints by role (``{"bottom": "drawer/bottom_slide"}``).
        sites: named points by role (``{"bottom_handle": "drawer/bottom_handle"}``).
        dims: task-relevant dimensions (metres) by name (``{"body_radius": 0.026}``).
        base_z: height of the body origin above the table when resting.
    """

    name: str
    kind: str
    radius: float
    height: float
    geoms: list[str] = field(default_factory=list)
    joints: dict[str, str] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    dims: dict[str, float] = field(default_factory=dict)
    base_z: float = 0.0


def _geom_volume(gtype: str, size: Sequence[float]) -> float:
    if gtype == "box":
        return 8.0 * size[0] * size[1] * size[2]
    if gtype == "cylinder":
        return math.pi * size[0] ** 2 * 2.0 * size[1]
    if gtype == "capsule":
        r, h = size[0], size[1]
        return math.pi * r * r * 2.0 * h + 4.0 / 3.0 * math.pi * r**3
    if gtype == "sphere":
        return 4.0 / 3.0 * math.pi * size[0] ** 3
    raise ToolkitError(f"unsupported primitive {gtype!r}: use box, cylinder, capsule or sphere")


@dataclass
class Part:
    """One primitive of an object, in the object's (or one of its child bodies') frame.

    ``size`` follows MuJoCo: box half sizes (3), cylinder / capsule (radius, half length)
    along the part's local z, sphere (radius). ``quat`` orients the part.
    """

    type: str
    size: Sequence[float]
    pos: Sequence[float] = (0.0, 0.0, 0.0)
    quat: Sequence[float] = (1.0, 0.0, 0.0, 0.0)
    rgba: Sequence[float] | None = None
    name: str | None = None


class SceneBuilder:
    """Adds objects and the camera rig to :func:`robot_spec`, then compiles.

    Args:
        **camera_options: forwarded to :func:`toolkit.envs.aloha.cameras.add_camera_rig`
            (``wrist_fovy``, ``fixed_fovy``).
    """

    def __init__(self, **camera_options: Any) -> None:
        from toolkit.envs.aloha.cameras import add_camera_rig

        self.mujoco = import_mujoco()
        self.spec = robot_spec()
        self.objects: dict[str, ObjectInfo] = {}
        add_camera_rig(self.spec, **camera_options)

    # ------------------------------------------------------------------ bodies and parts
    def add_body(self, name: str, kind: str = "free", parent=None, pos=(0.0, 0.0, 0.0)):
        """A new body: ``free`` (free joint), ``fixed`` (mocap) or ``child`` (under ``parent``)."""
        if kind not in ("free", "fixed", "child"):
            raise ToolkitError(f"body {name!r}: kind must be free, fixed or child, got {kind!r}")
        if kind == "child":
            if parent is None:
                raise ToolkitError(f"child body {name!r} needs a parent")
            return parent.add_body(name=name, pos=list(pos))
        body = self.spec.worldbody.add_body(name=name, pos=list(pos))
        if kind == "free":
            body.add_freejoint(name=f"{name}/free")
        else:
            body.mocap = True
        return body

    def add_parts(
        self,
        body,
        parts: Sequence[Part],
        rgba: Sequence[float],
        mass: float | None = None,
        friction: Sequence[float] = _DEFAULT_FRICTION,
        prefix: str | None = None,
    ) -> list[str]:
        """Add ``parts`` to ``body``; return their geom names.

        ``mass`` (kg) is spread over the parts in proportion to their volumes (None: massless
        parts, for mocap bodies). Grasped objects get ``condim=4`` (torsional friction) so a
        pinched object does not spin about the contact normal.
        """
        mj = self.mujoco
        types = {
            "box": mj.mjtGeom.mjGEOM_BOX,
            "cylinder": mj.mjtGeom.mjGEOM_CYLINDER,
            "capsule": mj.mjtGeom.mjGEOM_CAPSULE,
            "sphere": mj.mjtGeom.mjGEOM_SPHERE,
        }
        vols = [_geom_volume(p.type, p.size) for p in parts]
        total = sum(vols)
        names = []
        base = prefix or body.name
        for i, (part, vol) in enumerate(zip(parts, vols, strict=True)):
            name = part.name or f"{base}/g{i}"
            size = list(part.size) + [0.0] * (3 - len(part.size))
            geom = body.add_geom(
                name=name,
                type=types[part.type],
                size=size,
                pos=list(part.pos),
                quat=list(part.quat),
                rgba=list(part.rgba if part.rgba is not None else rgba),
                friction=list(friction),
                condim=4,
            )
            geom.mass = float(mass) * vol / total if mass is not None else 0.0
            if mass is None:
                geom.density = 0.0
            names.append(name)
        return names

    def add_site(self, body, name: str, pos=(0.0, 0.0, 0.0)) -> str:
        """An invisible site (a named point) on ``body``."""
        body.add_site(name=name, pos=list(pos), size=[0.004, 0.004, 0.004], group=HIDDEN_GROUP)
        return name

    def register(self, info: ObjectInfo) -> ObjectInfo:
        if info.name in self.objects:
            raise ToolkitError(f"the scene already has an object named {info.name!r}")
        self.objects[info.name] = info
        return info

    def add(self, kind: str, name: str | None = None, **kwargs: Any) -> ObjectInfo:
        """Add an object built by :data:`toolkit.envs.aloha.objects.BUILDERS` ``[kind]``."""
        from toolkit.envs.aloha.objects import BUILDERS

        if kind not in BUILDERS:
            raise ToolkitError(
                f"unknown ALOHA object kind {kind!r}; kinds: {', '.join(sorted(BUILDERS))}"
            )
        return self.register(BUILDERS[kind](self, name or kind, **kwargs))

    def compile(self):
        """The compiled :class:`mujoco.MjModel`."""
        try:
            return self.spec.compile()
        except Exception as exc:  # mujoco raises ValueError with the compiler's message
            raise ToolkitError(f"ALOHA scene failed to compile: {exc}") from exc
