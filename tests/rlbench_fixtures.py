"""Format-exact RLBench datasets for tests, written without RLBench (importable as
``rlbench_fixtures``; tests/ is on pytest's pythonpath).

What makes them exact (stepjam/RLBench 1.2.0, see toolkit/data/rlbench/format.py):

- ``low_dim_obs.pkl`` pickles stand-in classes whose module / qualname are exactly
  ``rlbench.demo.Demo`` and ``rlbench.backend.observation.Observation`` (with RLBench's
  ``__init__`` signature and attributes; image fields None as ``save_demo`` leaves them), by
  installing throw-away ``rlbench`` modules in ``sys.modules`` only while pickling;
- depth PNGs are written by :func:`float_array_to_rgb_image`, a re-implementation of RLBench's
  (``floor(d * (2**24 - 1) + 0.5)`` packed R-high / B-low) of the depth normalized between the
  clipping planes; masks as ``(mask * 255).astype(uint8)`` of RGB-coded handles;
- ``misc`` carries PyRep-convention camera parameters: ``get_intrinsic_matrix`` (negative focal
  lengths, principal point at res / 2) and the sensor pose ``get_matrix`` (camera looks along +z,
  image x / y opposite to OpenCV's);
- scenes are ray-cast with PyRep's own pixel convention (integer pixel indices), so the stored
  depth is what ``pointcloud_from_depth_and_camera_params`` expects.

:func:`pyrep_pointcloud` re-implements that PyRep function (inverse projection matrix) as an
independent reference for the reader's clouds. :func:`reference_keypoint_discovery` is the
ARM / PerAct keyframe heuristic written over observation objects, as in those repositories.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
from PIL import Image

DEPTH_SCALE = 2**24 - 1
TABLE_Z = 0.752
CAMERA_NAMES = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")
# sensor placements in the spirit of RLBench's scene (world frame, metres)
CAMERA_POSES = {
    "front": ((1.35, 0.0, 1.58), (0.25, 0.0, 0.85)),
    "overhead": ((0.2, 0.0, 2.2), (0.25, 0.0, 0.75)),
    "left_shoulder": ((0.2, 0.6, 1.6), (0.3, 0.0, 0.8)),
}
NEAR, FAR = 0.01, 4.5


# ------------------------------------------------------------------------------------------
# Stand-ins pickled under RLBench's names
# ------------------------------------------------------------------------------------------
class Observation:
    """RLBench 1.2 ``rlbench.backend.observation.Observation`` (same ``__init__``)."""

    def __init__(
        self,
        left_shoulder_rgb,
        left_shoulder_depth,
        left_shoulder_mask,
        left_shoulder_point_cloud,
        right_shoulder_rgb,
        right_shoulder_depth,
        right_shoulder_mask,
        right_shoulder_point_cloud,
        overhead_rgb,
        overhead_depth,
        overhead_mask,
        overhead_point_cloud,
        wrist_rgb,
        wrist_depth,
        wrist_mask,
        wrist_point_cloud,
        front_rgb,
        front_depth,
        front_mask,
        front_point_cloud,
        joint_velocities,
        joint_positions,
        joint_forces,
        gripper_open,
        gripper_pose,
        gripper_matrix,
        gripper_joint_positions,
        gripper_touch_forces,
        task_low_dim_state,
        misc,
    ):
        self.left_shoulder_rgb = left_shoulder_rgb
        self.left_shoulder_depth = left_shoulder_depth
        self.left_shoulder_mask = left_shoulder_mask
        self.left_shoulder_point_cloud = left_shoulder_point_cloud
        self.right_shoulder_rgb = right_shoulder_rgb
        self.right_shoulder_depth = right_shoulder_depth
        self.right_shoulder_mask = right_shoulder_mask
        self.right_shoulder_point_cloud = right_shoulder_point_cloud
        self.overhead_rgb = overhead_rgb
        self.overhead_depth = overhead_depth
        self.overhead_mask = overhead_mask
        self.overhead_point_cloud = overhead_point_cloud
        self.wrist_rgb = wrist_rgb
        self.wrist_depth = wrist_depth
        self.wrist_mask = wrist_mask
        self.wrist_point_cloud = wrist_point_cloud
        self.front_rgb = front_rgb
        self.front_depth = front_depth
        self.front_mask = front_mask
        self.front_point_cloud = front_point_cloud
        self.joint_velocities = joint_velocities
        self.joint_positions = joint_positions
        self.joint_forces = joint_forces
        self.gripper_open = gripper_open
        self.gripper_pose = gripper_pose
        self.gripper_matrix = gripper_matrix
        self.gripper_joint_positions = gripper_joint_positions
        self.gripper_touch_forces = gripper_touch_forces
        self.task_low_dim_state = task_low_dim_state
        self.misc = misc


class Demo:
    """RLBench 1.2 ``rlbench.demo.Demo``."""

    def __init__(self, observations, random_seed=None, num_reset_attempts=None):
        self._observations = observations
        self.random_seed = random_seed
        self.num_reset_attempts = num_reset_attempts

    def __len__(self):
        return len(self._observations)

    def __getitem__(self, i):
        return self._observations[i]


@contextlib.contextmanager
def rlbench_modules() -> Iterator[None]:
    """``rlbench.demo.Demo`` / ``rlbench.backend.observation.Observation`` importable as our
    stand-ins, only inside the block (so pickles name exactly RLBench's globals)."""
    mods = {name: types.ModuleType(name) for name in ("rlbench", "rlbench.demo", "rlbench.backend", "rlbench.backend.observation")}  # fmt: skip
    mods["rlbench.demo"].Demo = Demo
    mods["rlbench.backend.observation"].Observation = Observation
    saved = (Demo.__module__, Demo.__qualname__, Observation.__module__, Observation.__qualname__)
    Demo.__module__, Demo.__qualname__ = "rlbench.demo", "Demo"
    Observation.__module__, Observation.__qualname__ = "rlbench.backend.observation", "Observation"
    try:
        with mock.patch.dict(sys.modules, mods):
            yield
    finally:
        Demo.__module__, Demo.__qualname__, Observation.__module__, Observation.__qualname__ = saved


def dump_rlbench_pickle(obj, path: str, protocol: int | None = None) -> None:
    with rlbench_modules(), open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


# ------------------------------------------------------------------------------------------
# RLBench's image encodings (rlbench/backend/utils.py, dataset_generator.save_demo)
# ------------------------------------------------------------------------------------------
def float_array_to_rgb_image(
    float_array: np.ndarray, scale_factor: float = DEPTH_SCALE
) -> Image.Image:
    """RLBench's ``float_array_to_rgb_image`` (same arithmetic, incl. float division + uint8
    truncation of the high / middle bytes)."""
    scaled = np.floor(float_array * scale_factor + 0.5)
    if scaled.min() < 0 or scaled.max() > 2**24 - 1:
        scaled = np.clip(scaled, 0, 2**24 - 1)
    ints = scaled.astype(np.uint32)
    rg = np.divide(ints, 256)
    r = np.divide(rg, 256)
    g = np.mod(rg, 256)
    rgb = np.zeros((*ints.shape, 3), dtype=np.uint8)
    rgb[..., 0] = r
    rgb[..., 1] = g
    rgb[..., 2] = np.mod(ints, 256)
    return Image.fromarray(rgb)


def handles_to_rgb_mask(handles: np.ndarray) -> np.ndarray:
    """What RLBench's mask sensor returns (``capture_rgb``: floats in [0, 1]) for handles."""
    h = handles.astype(np.int64)
    rgb = np.stack([h & 255, (h >> 8) & 255, (h >> 16) & 255], axis=-1)
    return rgb / 255.0


# ------------------------------------------------------------------------------------------
# Cameras in PyRep's convention, ray casting, PyRep's unprojection
# ------------------------------------------------------------------------------------------
def pyrep_camera(name: str, size: tuple[int, int], fov_deg: float = 40.0):
    """``(intrinsics, extrinsics)`` as PyRep's ``get_intrinsic_matrix`` / ``get_matrix`` give them."""
    h, w = size
    eye, target = (np.asarray(v, dtype=np.float64) for v in CAMERA_POSES[name])
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])  # OpenCV x (right) for an upright camera
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # OpenCV y (down)
    R_cv = np.stack([x, y, z], axis=1)
    R_rl = R_cv @ np.diag([-1.0, -1.0, 1.0])  # CoppeliaSim sensor: image x / y flipped
    E = np.eye(4)
    E[:3, :3], E[:3, 3] = R_rl, eye
    # PyRep get_intrinsic_matrix: res = (W, H), f = -res / (2 tan(angle / 2)), pp = res / 2
    angle = np.radians(fov_deg)
    pa_x = pa_y = angle
    ratio = w / h
    if ratio > 1:
        pa_y = 2 * np.arctan(np.tan(pa_y / 2) / ratio)
    elif ratio < 1:
        pa_x = 2 * np.arctan(np.tan(pa_x / 2) * ratio)
    fx = -w / (2 * np.tan(pa_x / 2))
    fy = -h / (2 * np.tan(pa_y / 2))
    K = np.array([[fx, 0.0, w / 2], [0.0, fy, h / 2], [0.0, 0.0, 1.0]])
    return K, E


@dataclass
class Scene:
    """A table top (z = TABLE_Z, |x|, |y| < 0.6), the task's box and the gripper (a small box
    at the gripper position, so clouds change as the arm moves, as in RLBench)."""

    box_center: np.ndarray
    box_half: np.ndarray = field(default_factory=lambda: np.array([0.08, 0.08, 0.08]))
    gripper: np.ndarray | None = None
    gripper_half: np.ndarray = field(default_factory=lambda: np.array([0.04, 0.04, 0.07]))
    box_handle: int = 5000
    gripper_handle: int = 7001
    table_handle: int = 42

    def boxes(self):
        out = [(self.box_center, self.box_half, self.box_handle)]
        if self.gripper is not None:
            out.append((self.gripper, self.gripper_half, self.gripper_handle))
        return out


def raycast_depth(scene: Scene, K: np.ndarray, E: np.ndarray, size: tuple[int, int]):
    """``(depth (H, W) metres, handles (H, W))`` with PyRep's pixel convention: pixel ``(u, v)``
    is the ray ``R K^-1 [u, v, 1]`` from the sensor (its camera-frame z is 1, so the hit
    parameter is the z-depth). Background reads ``FAR``."""
    h, w = size
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    dirs_cam = pix @ np.linalg.inv(K).T
    dirs = dirs_cam @ E[:3, :3].T
    origin = E[:3, 3]
    depth = np.full((h, w), FAR)
    handles = np.zeros((h, w), dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_table = (TABLE_Z - origin[2]) / dirs[..., 2]
        hit = origin + t_table[..., None] * dirs
        on_table = (t_table > 0) & (np.abs(hit[..., 0]) < 0.6) & (np.abs(hit[..., 1]) < 0.6)
        depth = np.where(on_table & (t_table < depth), t_table, depth)
        handles = np.where(on_table, scene.table_handle, handles)
        for center, half, handle in scene.boxes():
            t1 = (center - half - origin) / dirs
            t2 = (center + half - origin) / dirs
            t_near = np.max(np.minimum(t1, t2), axis=-1)
            t_far = np.min(np.maximum(t1, t2), axis=-1)
            on_box = (t_near <= t_far) & (t_near > 0) & (t_near < depth)
            depth = np.where(on_box, t_near, depth)
            handles = np.where(on_box, handle, handles)
    return depth, handles


def pyrep_pointcloud(
    depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray
) -> np.ndarray:
    """PyRep's ``VisionSensor.pointcloud_from_depth_and_camera_params`` (inverse of the 4x4
    camera projection ``K [R^T | -R^T C]``), re-implemented: ``(H, W, 3)`` world points."""
    h, w = depth.shape
    xs = np.tile(np.arange(w), h).reshape(h, w).astype(np.float32)
    ys = np.tile(np.arange(h), w).reshape(w, h).T.astype(np.float32)
    upc = np.stack([xs, ys, np.ones_like(xs)], -1)
    pc = upc * depth[..., None]
    C = extrinsics[:3, 3][:, None]
    R_inv = extrinsics[:3, :3].T
    ext = np.concatenate([R_inv, -R_inv @ C], -1)
    proj = np.concatenate([intrinsics @ ext, [[0, 0, 0, 1]]])
    inv = np.linalg.inv(proj)[:3]
    homo = np.concatenate([pc, np.ones((h, w, 1))], -1).reshape(-1, 4)
    return (homo @ inv.T).reshape(h, w, 3)


# ------------------------------------------------------------------------------------------
# Trajectories and dataset writing
# ------------------------------------------------------------------------------------------
def _quat_about_z(angle: float) -> np.ndarray:
    """xyzw of a gripper pointing down (180 deg about x) then rotated ``angle`` about z."""
    down = np.array([1.0, 0.0, 0.0, 0.0])  # 180 deg about x: (x, y, z, w) = (1, 0, 0, 0)
    rz = np.array([0.0, 0.0, np.sin(angle / 2), np.cos(angle / 2)])
    x1, y1, z1, w1 = rz
    x2, y2, z2, w2 = down
    return np.array(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ]
    )


@dataclass
class EpisodeTruth:
    """What a fixture episode holds (for independent checks)."""

    path: str
    variation: int
    episode: int
    gripper_pose: np.ndarray  # (T, 7)
    gripper_open: np.ndarray  # (T,)
    joint_velocities: np.ndarray  # (T, 7)
    depth: dict[str, np.ndarray]  # cam -> (T, H, W) metres (before PNG quantization)
    handles: dict[str, np.ndarray]  # cam -> (T, H, W)
    cameras: dict[str, tuple[np.ndarray, np.ndarray]]  # cam -> (K, E) PyRep convention
    box_center: np.ndarray


def make_trajectory(rng: np.random.Generator, box: np.ndarray):
    """Reach above the box, descend, close, lift: ``(pose (T, 7), open (T,), joint_vel (T, 7))``.

    Segments end with the arm stopped (zero joint velocity) as RLBench's waypoint paths do."""
    start = np.array([0.3, 0.0, 1.3])
    above = box + [0.0, 0.0, 0.15]
    grasp = box + [0.0, 0.0, 0.05]
    lift = box + [0.0, 0.0, 0.3]
    angle = rng.uniform(-0.6, 0.6)
    poses, opens, vels = [], [], []

    def segment(a, b, n, g, ang0, ang1):
        for k in range(1, n + 1):
            s = k / n
            poses.append(np.r_[a + s * (b - a), _quat_about_z(ang0 + s * (ang1 - ang0))])
            opens.append(g)
            vels.append(np.zeros(7) if k == n else rng.uniform(0.3, 0.8, size=7))

    poses.append(np.r_[start, _quat_about_z(0.0)])
    opens.append(1.0)
    vels.append(np.zeros(7))
    segment(start, above, 5, 1.0, 0.0, angle)
    segment(above, grasp, 4, 1.0, angle, angle)
    for _ in range(2):  # the gripper closes in place
        poses.append(poses[-1].copy())
        opens.append(0.0)
        vels.append(np.zeros(7))
    segment(grasp, lift, 5, 0.0, angle, angle)
    return np.asarray(poses), np.asarray(opens), np.asarray(vels)


def write_episode(
    episode_dir: str,
    rng: np.random.Generator,
    variation: int,
    cameras: Sequence[str] = ("front", "overhead"),
    size: tuple[int, int] = (48, 64),
    protocol: int | None = None,
) -> EpisodeTruth:
    """One episode folder exactly as ``save_demo`` leaves it; returns the ground truth."""
    box = np.array([rng.uniform(-0.1, 0.3), rng.uniform(-0.25, 0.25), TABLE_Z + 0.08])
    scene = Scene(box_center=box)
    pose, gopen, jvel = make_trajectory(rng, box)
    T = len(pose)
    cams = {c: pyrep_camera(c, size) for c in cameras}
    depth = {c: np.zeros((T, *size)) for c in cameras}
    handles = {c: np.zeros((T, *size), dtype=np.int64) for c in cameras}
    for c in cameras:
        folders = {k: os.path.join(episode_dir, f"{c}_{k}") for k in ("rgb", "depth", "mask")}
        for f in folders.values():
            os.makedirs(f, exist_ok=True)
        for t in range(T):
            scene.gripper = pose[t, :3]
            d, hnd = raycast_depth(scene, *cams[c], size)
            depth[c][t], handles[c][t] = d, hnd
            rgb = np.zeros((*size, 3), dtype=np.uint8)
            rgb[..., 0] = np.where(
                hnd == scene.box_handle, 200, np.where(hnd == scene.gripper_handle, 250, 90)
            )
            rgb[..., 1] = np.where(hnd == scene.table_handle, 160, 30)
            rgb[..., 2] = (t * 7) % 256
            Image.fromarray(rgb).save(os.path.join(folders["rgb"], f"{t}.png"))
            float_array_to_rgb_image((d - NEAR) / (FAR - NEAR)).save(
                os.path.join(folders["depth"], f"{t}.png")
            )
            Image.fromarray((handles_to_rgb_mask(hnd) * 255).astype(np.uint8)).save(
                os.path.join(folders["mask"], f"{t}.png")
            )
    joints = np.cumsum(jvel, axis=0) * 0.05 + np.linspace(-1, 1, 7)
    observations = []
    for t in range(T):
        misc = {}
        for c in CAMERA_NAMES:
            if c in cams:
                K, E = cams[c]
                misc.update(
                    {
                        f"{c}_camera_extrinsics": E.copy(),
                        f"{c}_camera_intrinsics": K.copy(),
                        f"{c}_camera_near": NEAR,
                        f"{c}_camera_far": FAR,
                    }
                )
        misc["variation_index"] = variation
        misc["joint_poses"] = [np.r_[rng.normal(size=3), 0, 0, 0, 1.0] for _ in range(7)]
        misc["joint_position_action"] = np.r_[joints[t], gopen[t]]
        gm = np.eye(4)
        gm[:3, 3] = pose[t, :3]
        observations.append(
            Observation(
                *([None] * 20),
                joint_velocities=jvel[t].copy(),
                joint_positions=joints[t].copy(),
                joint_forces=rng.normal(size=7),
                gripper_open=float(gopen[t]),
                gripper_pose=pose[t].copy(),
                gripper_matrix=gm,
                gripper_joint_positions=np.array([0.04, 0.04]) * gopen[t],
                gripper_touch_forces=np.zeros(6),
                task_low_dim_state=np.r_[box, variation],
                misc=misc,
            )
        )
    demo = Demo(observations, random_seed=np.random.RandomState(variation).get_state())
    demo.num_reset_attempts = 1
    dump_rlbench_pickle(demo, os.path.join(episode_dir, "low_dim_obs.pkl"), protocol=protocol)
    return EpisodeTruth(
        path=episode_dir,
        variation=variation,
        episode=-1,
        gripper_pose=pose,
        gripper_open=gopen,
        joint_velocities=jvel,
        depth=depth,
        handles=handles,
        cameras=cams,
        box_center=box,
    )


def descriptions_for(task: str, variation: int) -> list[str]:
    base = task.replace("_", " ")
    return [f"{base} {variation}", f"please {base} (variation {variation})"]


def write_dataset(
    root: str,
    task: str = "close_box",
    variations: int = 2,
    episodes: int = 2,
    layout: str = "variation",
    cameras: Sequence[str] = ("front", "overhead"),
    size: tuple[int, int] = (48, 64),
    seed: int = 0,
    protocol: int | None = None,
) -> list[EpisodeTruth]:
    """``root/<task>/variation<V>/episodes/episode<K>`` (or PerAct's ``all_variations``) with
    ``episodes`` episodes per variation; returns the ground truth of every episode."""
    rng = np.random.default_rng(seed)
    truths = []
    if layout == "variation":
        for v in range(variations):
            vdir = os.path.join(root, task, f"variation{v}")
            os.makedirs(os.path.join(vdir, "episodes"), exist_ok=True)
            with open(os.path.join(vdir, "variation_descriptions.pkl"), "wb") as f:
                pickle.dump(descriptions_for(task, v), f)
            for k in range(episodes):
                edir = os.path.join(vdir, "episodes", f"episode{k}")
                os.makedirs(edir)
                tr = write_episode(edir, rng, v, cameras, size, protocol)
                tr.episode = k
                truths.append(tr)
    elif layout == "all_variations":
        for k in range(episodes * variations):
            v = k % variations
            edir = os.path.join(root, task, "all_variations", "episodes", f"episode{k}")
            os.makedirs(edir)
            with open(os.path.join(edir, "variation_descriptions.pkl"), "wb") as f:
                pickle.dump(descriptions_for(task, v), f)
            with open(os.path.join(edir, "variation_number.pkl"), "wb") as f:
                pickle.dump(v, f)
            tr = write_episode(edir, rng, v, cameras, size, protocol)
            tr.episode = k
            truths.append(tr)
    else:
        raise ValueError(layout)
    return truths


# ------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------
class _SystemCall:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_malicious_pickle(path: str, marker: str) -> None:
    """A ``low_dim_obs.pkl`` whose unpickling would run ``touch <marker>`` via ``os.system``,
    hidden inside an otherwise RLBench-shaped Demo."""
    obs = Observation(*([None] * 30))
    obs.misc = {"payload": _SystemCall(f"touch {marker}")}
    dump_rlbench_pickle(Demo([obs]), path)


# ------------------------------------------------------------------------------------------
# Reference keyframes (ARM / PerAct demo_loading_utils, over observation objects)
# ------------------------------------------------------------------------------------------
def _is_stopped(demo, i, obs, stopped_buffer, delta=0.1):
    next_is_not_final = i == (len(demo) - 2)
    gripper_state_no_change = i < (len(demo) - 2) and (
        obs.gripper_open == demo[i + 1].gripper_open
        and obs.gripper_open == demo[i - 1].gripper_open
        and demo[i - 2].gripper_open == demo[i - 1].gripper_open
    )
    small_delta = np.allclose(obs.joint_velocities, 0, atol=delta)
    stopped = (
        stopped_buffer <= 0 and small_delta and (not next_is_not_final) and gripper_state_no_change
    )
    return stopped


def reference_keypoint_discovery(demo, stopping_delta=0.1):
    episode_keypoints = []
    prev_gripper_open = demo[0].gripper_open
    stopped_buffer = 0
    for i, obs in enumerate(demo):
        stopped = _is_stopped(demo, i, obs, stopped_buffer, stopping_delta)
        stopped_buffer = 4 if stopped else stopped_buffer - 1
        last = i == (len(demo) - 1)
        if i != 0 and (obs.gripper_open != prev_gripper_open or last or stopped):
            episode_keypoints.append(i)
        prev_gripper_open = obs.gripper_open
    if len(episode_keypoints) > 1 and (episode_keypoints[-1] - 1) == episode_keypoints[-2]:
        episode_keypoints.pop(-2)
    return episode_keypoints
