"""Read RLBench datasets from disk without RLBench, PyRep or CoppeliaSim.

::

    from toolkit.data.rlbench import find_episodes, RLBenchEpisode

    refs = find_episodes("rlbench_data/train", tasks=["close_box"])
    ep = RLBenchEpisode(refs[0], cameras=["front"])
    len(ep), ep.instruction, ep.variation
    ep.gripper_pose            # (T, 7) xyz + quaternion xyzw
    ep.rgb("front", 3)         # (H, W, 3) uint8
    ep.depth("front", 3)       # (H, W) float32 metric z-depth
    K, T = ep.camera("front", 3)        # OpenCV intrinsics, camera-to-world
    ep.point_cloud("front", 3)  # (H, W, 3) world points == RLBench's own cloud
    ep.keyframes()             # PerAct / RVT keyframe indices

The on-disk format and the RLBench version it matches are described in :mod:`.format`. Every
problem (corrupt or malicious pickle, missing frame, wrong image size, missing camera
parameters) raises :class:`~toolkit.data.rlbench.unpickler.RLBenchDataError` naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.data.rlbench import format as F
from toolkit.data.rlbench.cameras import to_opencv
from toolkit.data.rlbench.images import decode_depth, decode_mask, depth_to_metres, read_png
from toolkit.data.rlbench.keyframes import keypoint_discovery
from toolkit.data.rlbench.unpickler import (
    RLBenchDataError,
    RLBenchDemo,
    RLBenchObservation,
    load_pickle,
)

__all__ = ["EpisodeRef", "RLBenchEpisode", "find_episodes", "find_tasks"]

_NUMBERED = re.compile(r"^(?P<prefix>[a-z_]+?)(?P<num>\d+)$")


def _numbered(name: str, prefix: str) -> int | None:
    m = _NUMBERED.match(name)
    if m and m.group("prefix") == prefix:
        return int(m.group("num"))
    return None


@dataclass(frozen=True)
class EpisodeRef:
    """Where one stored RLBench episode lives.

    ``variation`` is None for PerAct's ``all_variations`` layout until the episode's
    ``variation_number.pkl`` is read; ``descriptions`` is the variation's
    ``variation_descriptions.pkl`` (per-variation layout) or the episode's own.
    """

    task: str
    episode: int
    path: str
    variation: int | None
    descriptions: str
    layout: str  # "variation" | "all_variations"

    @property
    def name(self) -> str:
        v = "all" if self.variation is None else self.variation
        return f"{self.task}/variation{v}/episode{self.episode}"


def _is_task_dir(path: str) -> bool:
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(
        n == F.ALL_VARIATIONS_FOLDER or _numbered(n, F.VARIATION_PREFIX) is not None
        for n in names
        if os.path.isdir(os.path.join(path, n))
    )


def find_tasks(root: str | os.PathLike) -> list[str]:
    """Task folders under ``root`` (folders holding ``variation<N>`` or ``all_variations``)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise RLBenchDataError(f"{root}: expected an RLBench dataset directory, found nothing")
    return sorted(n for n in os.listdir(root) if _is_task_dir(os.path.join(root, n)))


def find_episodes(root: str | os.PathLike, tasks: Sequence[str] | None = None) -> list[EpisodeRef]:
    """Every stored episode under ``root`` (a dataset directory of task folders), sorted by
    (task, episode number, variation) - RLBench generators and Lift3D enumerate demos in this
    order, so the first ``k`` episodes of a task span its variations.

    Args:
        root: directory holding ``<task>/variation<V>/episodes/episode<K>`` (or PerAct's
            ``<task>/all_variations/episodes/episode<K>``). A task folder itself also works.
        tasks: keep these tasks (``None``: all). Hyphens match underscores.

    Raises:
        RLBenchDataError: no such directory, no task folders, or a requested task is missing.
    """
    root = os.fspath(root)
    if _is_task_dir(root):  # pointed at one task folder
        root, only = os.path.dirname(os.path.abspath(root)), [os.path.basename(root.rstrip("/"))]
        found = only
    else:
        found = find_tasks(root)
    if not found:
        raise RLBenchDataError(
            f"{root}: expected task folders holding variation<N>/episodes/episode<K> (or "
            "all_variations/episodes/episode<K>), found none"
        )
    wanted = found if tasks is None else [t.replace("-", "_") for t in tasks]
    missing = [t for t in wanted if t not in found]
    if missing:
        raise RLBenchDataError(f"{root}: no episodes of task(s) {missing}; found tasks {found}")
    refs: list[EpisodeRef] = []
    for task in wanted:
        task_dir = os.path.join(root, task)
        for vname in sorted(os.listdir(task_dir)):
            vdir = os.path.join(task_dir, vname)
            if not os.path.isdir(vdir):
                continue
            if vname == F.ALL_VARIATIONS_FOLDER:
                variation, layout = None, "all_variations"
            else:
                variation, layout = _numbered(vname, F.VARIATION_PREFIX), "variation"
                if variation is None:
                    continue
            eps_dir = os.path.join(vdir, F.EPISODES_FOLDER)
            if not os.path.isdir(eps_dir):
                continue
            for ename in os.listdir(eps_dir):
                k = _numbered(ename, F.EPISODE_PREFIX)
                epath = os.path.join(eps_dir, ename)
                if k is None or not os.path.isdir(epath):
                    continue
                desc = (
                    os.path.join(vdir, F.VARIATION_DESCRIPTIONS)
                    if layout == "variation"
                    else os.path.join(epath, F.VARIATION_DESCRIPTIONS)
                )
                refs.append(EpisodeRef(task, k, epath, variation, desc, layout))
    refs.sort(key=lambda r: (r.task, r.episode, -1 if r.variation is None else r.variation))
    if not refs:
        raise RLBenchDataError(f"{root}: task folders {wanted} hold no episodes")
    return refs


@dataclass
class _Camera:
    size: tuple[int, int]
    has_mask: bool
    params: list[tuple[np.ndarray, np.ndarray, float, float]] = field(default_factory=list)


class RLBenchEpisode:
    """One stored RLBench demonstration, read lazily (images on access).

    Args:
        ref: an :class:`EpisodeRef` (from :func:`find_episodes`) or an episode folder path.
        cameras: cameras to expose; each needs ``<cam>_rgb`` and ``<cam>_depth`` folders with
            one PNG per observation and the camera's parameters in every ``misc``. ``None``:
            every camera with both folders.

    Raises:
        RLBenchDataError: see the module docstring.
    """

    def __init__(self, ref: EpisodeRef | str | os.PathLike, cameras: Sequence[str] | None = None):
        if not isinstance(ref, EpisodeRef):
            ref = _ref_from_path(os.fspath(ref))
        self.ref = ref
        self.path = ref.path
        self.task = ref.task
        pkl = os.path.join(self.path, F.LOW_DIM_PICKLE)
        self.pickle_path = pkl
        demo = load_pickle(pkl, "RLBench demo (low_dim_obs.pkl)")
        if isinstance(demo, RLBenchDemo):
            observations = demo.observations
        elif isinstance(demo, list):  # some forks pickle the observation list itself
            observations = demo
        else:
            raise RLBenchDataError(
                f"{pkl}: expected an rlbench.demo.Demo, found {type(demo).__name__}"
            )
        bad = [i for i, o in enumerate(observations) if not isinstance(o, RLBenchObservation)]
        if bad:
            raise RLBenchDataError(
                f"{pkl}: expected rlbench.backend.observation.Observation objects, found "
                f"{type(observations[bad[0]]).__name__} at step {bad[0]}"
            )
        if not observations:
            raise RLBenchDataError(f"{pkl}: expected at least one observation, found none")
        self.demo = demo
        self.observations: list[RLBenchObservation] = observations
        self.descriptions = self._descriptions(ref.descriptions)
        self.variation = self._variation(ref)
        self._low_dim = self._read_low_dim()
        self.cameras = self._cameras(cameras)

    # -- metadata ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.observations)

    def __repr__(self) -> str:
        return f"RLBenchEpisode({self.ref.name}, {len(self)} steps, cameras={list(self.cameras)})"

    @property
    def instruction(self) -> str:
        """The variation's first description (RLBench's canonical instruction)."""
        return self.descriptions[0]

    def _descriptions(self, path: str) -> list[str]:
        desc = load_pickle(path, "variation descriptions (variation_descriptions.pkl)")
        if isinstance(desc, str):
            desc = [desc]
        if (
            not isinstance(desc, (list, tuple))
            or not desc
            or not all(isinstance(d, str) for d in desc)
        ):
            raise RLBenchDataError(
                f"{path}: expected a non-empty list of strings, found {type(desc).__name__}"
            )
        return list(desc)

    def _variation(self, ref: EpisodeRef) -> int:
        if ref.variation is not None:
            return int(ref.variation)
        path = os.path.join(self.path, F.VARIATION_NUMBER)
        if os.path.isfile(path):
            v = load_pickle(path, "variation number (variation_number.pkl)")
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                return int(v)
            raise RLBenchDataError(f"{path}: expected an integer, found {type(v).__name__}")
        v = self.observations[0].misc.get("variation_index") if self.observations[0].misc else None
        if isinstance(v, (int, np.integer)):
            return int(v)
        raise RLBenchDataError(
            f"{path}: expected the episode's variation number (all_variations layout), found "
            "nothing, and misc has no variation_index"
        )

    # -- low-dimensional data ------------------------------------------------------------------
    def _field(self, name: str, size: int | None, required: bool = True) -> np.ndarray | None:
        rows = []
        for i, obs in enumerate(self.observations):
            value = getattr(obs, name)
            if value is None:
                if required:
                    raise RLBenchDataError(
                        f"{self.pickle_path}: step {i}: expected Observation.{name}, found None "
                        f"(recorded fields: {', '.join(obs.fields())})"
                    )
                return None
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if size is not None and arr.size != size:
                raise RLBenchDataError(
                    f"{self.pickle_path}: step {i}: Observation.{name}: expected {size} values, "
                    f"found {arr.size}"
                )
            if rows and arr.size != rows[0].size:
                raise RLBenchDataError(
                    f"{self.pickle_path}: step {i}: Observation.{name}: expected {rows[0].size} "
                    f"values (as step 0), found {arr.size}"
                )
            if not np.isfinite(arr).all():
                raise RLBenchDataError(
                    f"{self.pickle_path}: step {i}: Observation.{name}: expected finite values"
                )
            rows.append(arr)
        return np.stack(rows)

    def _read_low_dim(self) -> dict[str, np.ndarray | None]:
        out = {
            "gripper_pose": self._field("gripper_pose", 7),
            "gripper_open": self._field("gripper_open", 1)[:, 0],
            "joint_positions": self._field("joint_positions", None, required=False),
            "joint_velocities": self._field("joint_velocities", None, required=False),
            "gripper_joint_positions": self._field("gripper_joint_positions", None, required=False),
            "gripper_matrix": self._field("gripper_matrix", None, required=False),
            "task_low_dim_state": None,
        }
        try:
            out["task_low_dim_state"] = self._field("task_low_dim_state", None, required=False)
        except RLBenchDataError:
            pass  # varies in size within the episode for some tasks: left out
        return out

    @property
    def gripper_pose(self) -> np.ndarray:
        """``(T, 7)`` tip pose: xyz (metres, world) + quaternion xyzw, as RLBench records it."""
        return self._low_dim["gripper_pose"]

    @property
    def gripper_open(self) -> np.ndarray:
        """``(T,)`` 1.0 open, 0.0 closed."""
        return self._low_dim["gripper_open"]

    @property
    def joint_positions(self) -> np.ndarray | None:
        return self._low_dim["joint_positions"]

    @property
    def joint_velocities(self) -> np.ndarray | None:
        return self._low_dim["joint_velocities"]

    @property
    def gripper_joint_positions(self) -> np.ndarray | None:
        return self._low_dim["gripper_joint_positions"]

    @property
    def task_low_dim_state(self) -> np.ndarray | None:
        return self._low_dim["task_low_dim_state"]

    def gripper_matrix(self, t: int) -> np.ndarray:
        """``(4, 4)`` tip pose at step ``t`` (``gripper_matrix`` if recorded, else from the pose)."""
        m = self._low_dim["gripper_matrix"]
        if m is not None and m.shape[1] in (12, 16):
            mat = m[t].reshape(-1, 4)
            return np.vstack([mat, [0, 0, 0, 1]]) if mat.shape[0] == 3 else mat
        x, y, z, qx, qy, qz, qw = self.gripper_pose[t]
        n = np.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
        qx, qy, qz, qw = qx / n, qy / n, qz / n, qw / n
        R = np.array(
            [
                [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
                [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
                [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
            ]
        )
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = R, (x, y, z)
        return out

    def keyframes(self, stopping_delta: float = 0.1) -> list[int]:
        """PerAct / RVT keyframes (:func:`.keyframes.keypoint_discovery`); needs joint velocities."""
        if self.joint_velocities is None:
            raise RLBenchDataError(
                f"{self.pickle_path}: keyframe discovery needs Observation.joint_velocities, "
                "which this dataset did not record"
            )
        return keypoint_discovery(self.gripper_open, self.joint_velocities, stopping_delta)

    # -- cameras -------------------------------------------------------------------------------
    def _cameras(self, cameras: Sequence[str] | None) -> dict[str, _Camera]:
        if cameras is None:
            cameras = [
                c
                for c in F.CAMERAS
                if os.path.isdir(os.path.join(self.path, F.camera_folder(c, "rgb")))
                and os.path.isdir(os.path.join(self.path, F.camera_folder(c, "depth")))
            ]
        out: dict[str, _Camera] = {}
        n = len(self.observations)
        for cam in cameras:
            for kind in ("rgb", "depth"):
                folder = os.path.join(self.path, F.camera_folder(cam, kind))
                if not os.path.isdir(folder):
                    have = sorted(
                        d
                        for d in os.listdir(self.path)
                        if os.path.isdir(os.path.join(self.path, d))
                    )
                    raise RLBenchDataError(
                        f"{folder}: expected the {cam} camera's {kind} frames, found no folder "
                        f"(episode folders: {have})"
                    )
                self._check_frames(folder, n)
            mask_dir = os.path.join(self.path, F.camera_folder(cam, "mask"))
            has_mask = os.path.isdir(mask_dir)
            first = read_png(
                os.path.join(self.path, F.camera_folder(cam, "rgb"), F.IMAGE_FORMAT % 0),
                f"{cam} RGB frame 0",
            )
            info = _Camera(size=tuple(first.shape[:2]), has_mask=has_mask)
            for i, obs in enumerate(self.observations):
                info.params.append(self._camera_params(cam, i, obs))
            out[cam] = info
        return out

    def _check_frames(self, folder: str, n: int) -> None:
        names = set(os.listdir(folder))
        missing = [F.IMAGE_FORMAT % i for i in range(n) if F.IMAGE_FORMAT % i not in names]
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise RLBenchDataError(
                f"{folder}: expected frames 0..{n - 1} (one per observation in "
                f"{F.LOW_DIM_PICKLE}), missing {shown}"
            )

    def _camera_params(self, cam: str, i: int, obs: RLBenchObservation):
        misc = obs.misc
        where = f"{self.pickle_path}: step {i}: misc"
        if not isinstance(misc, dict):
            raise RLBenchDataError(
                f"{where}: expected a dict of camera parameters, found {type(misc).__name__}"
            )
        keys = {k: f"{cam}_camera_{k}" for k in ("intrinsics", "extrinsics", "near", "far")}
        absent = [v for v in keys.values() if v not in misc]
        if absent:
            cams = sorted({k.rsplit("_camera_", 1)[0] for k in misc if "_camera_" in k})
            raise RLBenchDataError(
                f"{where}: expected {absent} (RLBench >= 1.0 stores camera parameters per "
                f"observation), found camera parameters for {cams or 'no camera'}"
            )
        near, far = float(misc[keys["near"]]), float(misc[keys["far"]])
        if not (np.isfinite(near) and np.isfinite(far) and 0 <= near < far):
            raise RLBenchDataError(
                f"{where}: expected 0 <= near < far, found near={near}, far={far}"
            )
        K, T = to_opencv(misc[keys["intrinsics"]], misc[keys["extrinsics"]], f"{where}['{cam}']")
        return K, T, near, far

    def _check_camera(self, cam: str, t: int) -> _Camera:
        if cam not in self.cameras:
            raise RLBenchDataError(
                f"{self.path}: camera '{cam}' was not opened; cameras: {list(self.cameras)}"
            )
        if not 0 <= t < len(self):
            raise IndexError(f"{self.path}: step {t} out of range [0, {len(self)})")
        return self.cameras[cam]

    def image_size(self, cam: str) -> tuple[int, int]:
        """``(H, W)`` of ``cam``'s frames."""
        return self._check_camera(cam, 0).size

    def camera(self, cam: str, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(K (3, 3), cam_to_world (4, 4))`` at step ``t``, OpenCV convention (:mod:`.cameras`)."""
        K, T, _, _ = self._check_camera(cam, t).params[t]
        return K.copy(), T.copy()

    def clipping_planes(self, cam: str, t: int) -> tuple[float, float]:
        """``(near, far)`` in metres."""
        _, _, near, far = self._check_camera(cam, t).params[t]
        return near, far

    def _png(self, cam: str, kind: str, t: int) -> np.ndarray:
        info = self._check_camera(cam, t)
        path = os.path.join(self.path, F.camera_folder(cam, kind), F.IMAGE_FORMAT % t)
        return read_png(path, f"{cam} {kind} frame {t}", size=info.size)

    def rgb(self, cam: str, t: int) -> np.ndarray:
        """``(H, W, 3)`` uint8."""
        return self._png(cam, "rgb", t)

    def depth(self, cam: str, t: int) -> np.ndarray:
        """``(H, W)`` float32 metric z-depth (metres), decoded as ``get_stored_demos`` does."""
        near, far = self.clipping_planes(cam, t)
        return depth_to_metres(decode_depth(self._png(cam, "depth", t)), near, far).astype(
            np.float32
        )

    def mask(self, cam: str, t: int) -> np.ndarray:
        """``(H, W)`` int32 CoppeliaSim object handles."""
        if not self._check_camera(cam, t).has_mask:
            raise RLBenchDataError(
                f"{os.path.join(self.path, F.camera_folder(cam, 'mask'))}: expected the {cam} "
                "mask frames, found no folder"
            )
        return decode_mask(self._png(cam, "mask", t))

    def point_cloud(self, cam: str, t: int) -> np.ndarray:
        """``(H, W, 3)`` float64 world points of every pixel (RLBench's ``<cam>_point_cloud``)."""
        import torch

        from toolkit.ops.cameras import unproject_depth

        K, T = self.camera(cam, t)
        d = torch.as_tensor(self.depth(cam, t).astype(np.float64))
        return unproject_depth(d, torch.as_tensor(K), torch.as_tensor(T)).numpy()

    def misc(self, t: int) -> dict[str, Any]:
        """Step ``t``'s ``misc`` dict as stored."""
        return dict(self.observations[t].misc or {})


def _ref_from_path(path: str) -> EpisodeRef:
    """An :class:`EpisodeRef` for ``.../<task>/<variationV|all_variations>/episodes/episode<K>``."""
    path = os.path.abspath(path)
    eps_dir, ename = os.path.split(path)
    vdir = os.path.dirname(eps_dir)
    task = os.path.basename(os.path.dirname(vdir))
    k = _numbered(ename, F.EPISODE_PREFIX)
    vname = os.path.basename(vdir)
    if k is None or os.path.basename(eps_dir) != F.EPISODES_FOLDER:
        raise RLBenchDataError(
            f"{path}: expected an episode folder <task>/variation<V>/episodes/episode<K>"
        )
    if vname == F.ALL_VARIATIONS_FOLDER:
        return EpisodeRef(
            task, k, path, None, os.path.join(path, F.VARIATION_DESCRIPTIONS), "all_variations"
        )
    v = _numbered(vname, F.VARIATION_PREFIX)
    if v is None:
        raise RLBenchDataError(f"{path}: expected it under a variation<V> or all_variations folder")
    return EpisodeRef(task, k, path, v, os.path.join(vdir, F.VARIATION_DESCRIPTIONS), "variation")
