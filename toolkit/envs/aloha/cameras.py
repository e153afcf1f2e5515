"""The CLAMP camera rig of the ALOHA scenes, the workspace crop and the renderer.

CLAMP (Sec. IV and Appendix C) records RGB-D from two fixed cameras "placed on opposite
corners of the table, 70 cm above the surface, and pointed at the center of the table"
(front-left and back-right) plus one wrist camera per arm; its virtual views add an overhead
one. :func:`add_camera_rig` adds these cameras to a scene spec:

===============  =====  ======================================================================
name             fovy   pose
===============  =====  ======================================================================
front_left       58     table corner (-0.61, 0.22), 0.70 m above the top, looking at its centre
back_right       58     table corner (0.61, 0.98), 0.70 m above the top, looking at its centre
overhead         62     1.05 m above the table centre, looking straight down (image up = +y)
left_wrist       70     on the left ``gripper_link``, above the gripper, looking at the fingers
right_wrist      70     same on the right arm
===============  =====  ======================================================================

The fixed cameras' 58 degree field of view is a RealSense D4xx depth camera's vertical one;
the wrist cameras (gym-aloha's own have a 20 degree field of view aimed far ahead of the
gripper) are replaced by wide ones that see the fingers and what they hold, moving with the
gripper: their extrinsics change every step.

Rendering reuses :class:`toolkit.envs.metaworld.cameras.MujocoRig` (one
:class:`mujoco.Renderer` per image size; shadows, reflections and multisampling off): RGB,
metric z-depth, pinhole intrinsics and OpenCV camera-to-world extrinsics.
"""

from __future__ import annotations

import numpy as np

from toolkit.envs.base import CameraSpec

__all__ = [
    "CAMERA_NAMES",
    "CAMERA_RIG",
    "DEFAULT_CAMERAS",
    "MAX_DEPTH",
    "WORKSPACE_BOUNDS",
    "add_camera_rig",
]

DEFAULT_SIZE = (224, 224)
#: Every rig camera with its vertical field of view (degrees).
CAMERA_FOVY: dict[str, float] = {
    "front_left": 58.0,
    "back_right": 58.0,
    "overhead": 62.0,
    "left_wrist": 70.0,
    "right_wrist": 70.0,
}
CAMERA_NAMES = tuple(CAMERA_FOVY)
CAMERA_RIG: dict[str, CameraSpec] = {n: CameraSpec(n, *DEFAULT_SIZE) for n in CAMERA_NAMES}
#: The four RGB-D cameras of CLAMP's real rig (the simulated rig minus the overhead camera).
DEFAULT_CAMERAS = ("front_left", "back_right", "left_wrist", "right_wrist")

#: Height of the fixed corner cameras above the table top (CLAMP: 70 cm).
CORNER_HEIGHT = 0.70
OVERHEAD_HEIGHT = 1.05
#: Wrist camera in the ``gripper_link`` frame (x along the fingers, z up when level): above the
#: gripper's top and behind the finger base, aimed at a point between the finger tips.
WRIST_CAM_POS = (0.0, 0.0, 0.075)
WRIST_CAM_TARGET = (0.16, 0.0, 0.0)

#: World crop of the merged cloud ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` (metres): the
#: table top (z = 0, kept), everything on it and the arms above it up to 60 cm; the floor, the
#: table's edges and sides and the background are dropped.
WORKSPACE_BOUNDS = np.array([[-0.6, 0.23, -0.005], [0.6, 0.97, 0.6]], dtype=np.float64)
#: Depth beyond this is background (MuJoCo reads empty pixels as ``zfar * extent``, ~80 m).
MAX_DEPTH = 10.0


def _mj_quat_looking(direction, up) -> list[float]:
    """MuJoCo camera quaternion looking along ``direction`` with ``up`` toward the image top.

    MuJoCo cameras look along their -z axis with +y up and +x to the right.
    """
    from toolkit.envs.aloha.scene import quat_from_matrix

    f = np.asarray(direction, dtype=np.float64)
    f = f / np.linalg.norm(f)
    up = np.asarray(up, dtype=np.float64)
    x = np.cross(f, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("camera direction is parallel to its up vector")
    x /= np.linalg.norm(x)
    y = np.cross(x, f)
    return quat_from_matrix(np.stack([x, y, -f], axis=1)).tolist()


def corner_positions() -> dict[str, np.ndarray]:
    """World positions of the front-left / back-right corner cameras and the overhead one."""
    from toolkit.envs.aloha.scene import TABLE_CENTER, TABLE_HALF, TABLE_Z

    cx, cy = TABLE_CENTER
    hx, hy = TABLE_HALF
    z = TABLE_Z + CORNER_HEIGHT
    return {
        "front_left": np.array([cx - hx, cy - hy, z]),
        "back_right": np.array([cx + hx, cy + hy, z]),
        "overhead": np.array([cx, cy, TABLE_Z + OVERHEAD_HEIGHT]),
    }


def add_camera_rig(spec, wrist_fovy: float | None = None, fixed_fovy: float | None = None) -> None:
    """Add the rig's five cameras to a scene spec (see the module docstring).

    Args:
        spec: a :class:`mujoco.MjSpec` from :func:`toolkit.envs.aloha.scene.robot_spec`.
        wrist_fovy / fixed_fovy: override the wrist / corner cameras' fields of view.
    """
    from toolkit.envs.aloha.scene import ARMS, TABLE_CENTER, TABLE_Z

    center = np.array([TABLE_CENTER[0], TABLE_CENTER[1], TABLE_Z])
    for name, pos in corner_positions().items():
        if name == "overhead":
            quat = _mj_quat_looking((0.0, 0.0, -1.0), up=(0.0, 1.0, 0.0))
            fovy = CAMERA_FOVY[name]
        else:
            quat = _mj_quat_looking(center - pos, up=(0.0, 0.0, 1.0))
            fovy = float(fixed_fovy or CAMERA_FOVY[name])
        spec.worldbody.add_camera(name=name, pos=pos.tolist(), quat=quat, fovy=fovy)
    wrist_dir = np.subtract(WRIST_CAM_TARGET, WRIST_CAM_POS)
    wrist_quat = _mj_quat_looking(wrist_dir, up=(0.0, 0.0, 1.0))
    for arm in ARMS:
        spec.body(f"vx300s_{arm}/gripper_link").add_camera(
            name=f"{arm}_wrist",
            pos=list(WRIST_CAM_POS),
            quat=wrist_quat,
            fovy=float(wrist_fovy or CAMERA_FOVY[f"{arm}_wrist"]),
        )
