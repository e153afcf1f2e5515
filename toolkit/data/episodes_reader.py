"""Lazy reader for one episode file (schema in :mod:`toolkit.data.episodes_schema`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import h5py
import numpy as np

from toolkit.data.episodes_check import format_steps, open_episode_file
from toolkit.data.episodes_schema import (
    ACTION,
    DEPTH,
    EE_POSE,
    EXTRAS,
    EXTRINSICS,
    IMAGES,
    INTRINSICS,
    PROPRIO,
    QPOS,
    QVEL,
    STATE,
    SUCCESS,
    EpisodeLayout,
    problem,
)
from toolkit.utils.errors import EpisodeFileError

STEP_KEYS = (
    "rgb",
    "depth",
    "intrinsics",
    "extrinsics",
    "qpos",
    "action",
    "proprio",
    "ee_pose",
    "state",
    "success",
    "extras",
)


class Episode:
    """One episode file, opened read-only and lazily: nothing but attributes and shapes is read
    until asked for.

    The structure is validated on open (attributes, dataset shapes and lengths; see
    :func:`~toolkit.data.episodes_check.check_episode` for the full data check) and any problem
    raises :class:`~toolkit.utils.errors.EpisodeFileError` naming the file and the dataset.

    Safe for DataLoader workers: pickling drops the HDF5 handle, and a handle inherited through
    ``fork`` is never reused (the file is re-opened in each process on first access).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._file: h5py.File | None = None
        self._pid = -1
        self._dsets: dict[str, h5py.Dataset] = {}
        self._file, self.layout = open_episode_file(self.path)
        self._pid = os.getpid()

    # -- handle management ----------------------------------------------------------------------

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._dsets = {}
            try:
                self._file = h5py.File(self.path, "r")
            except Exception:  # noqa: BLE001 - re-diagnose: the file changed since it was opened
                self._file, _ = open_episode_file(self.path)
            self._pid = os.getpid()
        return self._file

    def _ds(self, name: str) -> h5py.Dataset:
        dset = self._dsets.get(name)
        if dset is None or self._pid != os.getpid() or self._file is None:
            dset = self._dsets[name] = self._h5()[name]
        return dset

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._dsets = None, {}

    def __enter__(self) -> Episode:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "layout": self.layout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.layout = state["path"], state["layout"]
        self._file, self._pid, self._dsets = None, -1, {}

    def __repr__(self) -> str:
        a = self.layout.attrs
        return (
            f"Episode({self.path!r}, suite={a.get('suite')!r}, task={a.get('task')!r}, "
            f"length={len(self)}, cameras={self.cameras})"
        )

    # -- metadata -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.layout.length

    @property
    def attrs(self) -> dict[str, Any]:
        """Root attributes: suite, task, seed, length, success, schema_version, config (dict),
        cameras (list), plus the writer's ``extra_attrs``."""
        return self.layout.attrs

    @property
    def cameras(self) -> list[str]:
        return list(self.layout.cameras)

    @property
    def rgb_cameras(self) -> list[str]:
        return list(self.layout.rgb_cameras)

    @property
    def depth_cameras(self) -> list[str]:
        return list(self.layout.depth_cameras)

    @property
    def image_size(self) -> dict[str, tuple[int, int]]:
        return dict(self.layout.image_size)

    @property
    def extra_names(self) -> list[str]:
        return list(self.layout.extras)

    # -- whole-episode arrays -------------------------------------------------------------------

    def _finite(self, name: str, data: np.ndarray, first: int = 0) -> np.ndarray:
        ok = np.isfinite(data)
        if not ok.all():
            bad = np.flatnonzero(~ok.reshape(len(data), -1).all(axis=1)) if data.ndim > 1 else [0]
            raise EpisodeFileError(
                problem(
                    self.path,
                    f"dataset /{name}",
                    "finite values",
                    f"NaN/inf at steps {format_steps([first + int(b) for b in bad])}",
                )
            )
        return data

    def actions(self) -> np.ndarray:
        """(T, A) actions."""
        return self._finite(ACTION, self._ds(ACTION)[()])

    def qpos(self) -> np.ndarray:
        """(T, Dq) joint positions."""
        return self._ds(QPOS)[()]

    def qvel(self) -> np.ndarray | None:
        return self._ds(QVEL)[()] if QVEL in self.layout.optional else None

    def proprio(self) -> np.ndarray | None:
        """(T, P) proprioception, or None if not recorded."""
        return self._ds(PROPRIO)[()] if PROPRIO in self.layout.optional else None

    def ee_poses(self) -> np.ndarray | None:
        """(T, G, 4, 4) end-effector / gripper poses (world frame), or None if not recorded."""
        return self._ds(EE_POSE)[()] if EE_POSE in self.layout.optional else None

    def successes(self) -> np.ndarray:
        """(T,) per-step success flags."""
        return self._ds(SUCCESS)[()].astype(bool)

    def states(self) -> list[dict[str, Any]]:
        """Per-step sim-state metadata (empty dicts if not recorded)."""
        if STATE not in self.layout.optional:
            return [{} for _ in range(len(self))]
        return [json.loads(s) for s in self._ds(STATE)[()]]

    def intrinsics(self, cam: str) -> np.ndarray:
        """(T, 3, 3) pinhole intrinsics of ``cam``."""
        return self._ds(f"{INTRINSICS}/{self._cam(cam)}")[()]

    def extrinsics(self, cam: str) -> np.ndarray:
        """(T, 4, 4) camera-to-world transforms of ``cam`` (OpenCV camera axes)."""
        return self._ds(f"{EXTRINSICS}/{self._cam(cam)}")[()]

    def extra(self, name: str) -> np.ndarray:
        """(T, ...) the per-step extra array ``name``."""
        if name not in self.layout.extras:
            raise KeyError(f"{self.path}: no extra named {name!r}; extras: {self.extra_names}")
        return self._ds(f"{EXTRAS}/{name}")[()]

    # -- per-step access ------------------------------------------------------------------------

    def _cam(self, cam: str) -> str:
        if cam not in self.layout.cameras:
            raise KeyError(f"{self.path}: no camera {cam!r}; cameras: {self.cameras}")
        return cam

    def _index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.path}: step {i} out of range for an episode of {n} steps")
        return int(i) % n

    def rgb(self, cam: str, i: int | slice) -> np.ndarray:
        """(H, W, 3) uint8 image of ``cam`` at step ``i`` ((k, H, W, 3) for a slice)."""
        if cam not in self.layout.rgb_cameras:
            raise KeyError(
                f"{self.path}: camera {cam!r} has no RGB; RGB cameras: {self.rgb_cameras}"
            )
        return self._ds(f"{IMAGES}/{cam}")[i if isinstance(i, slice) else self._index(i)]

    def depth(self, cam: str, i: int | slice) -> np.ndarray:
        """(H, W) float32 metric depth (metres) of ``cam`` at step ``i``."""
        if cam not in self.layout.depth_cameras:
            raise KeyError(
                f"{self.path}: camera {cam!r} has no depth; depth cameras: {self.depth_cameras}"
            )
        out = self._ds(f"{DEPTH}/{cam}")[i if isinstance(i, slice) else self._index(i)]
        return out.astype(np.float32, copy=False)

    def state(self, i: int) -> dict[str, Any]:
        if STATE not in self.layout.optional:
            return {}
        return json.loads(self._ds(STATE)[self._index(i)])

    def step(self, i: int, keys: Iterable[str] | None = None) -> dict[str, Any]:
        """Everything recorded at step ``i``; ``keys`` limits the reads to those fields.

        Keys: rgb, depth, intrinsics, extrinsics ({cam: array}), qpos, action, proprio and
        ee_pose (None if not recorded), state (dict), success (bool), extras ({name: array}).
        """
        i = self._index(i)
        keys = STEP_KEYS if keys is None else tuple(keys)
        unknown = set(keys) - set(STEP_KEYS)
        if unknown:
            raise KeyError(f"unknown step keys {sorted(unknown)}; known: {list(STEP_KEYS)}")
        lay, out = self.layout, {"step": i}
        for key in keys:
            if key == "rgb":
                out[key] = {c: self._ds(f"{IMAGES}/{c}")[i] for c in lay.rgb_cameras}
            elif key == "depth":
                out[key] = {c: self.depth(c, i) for c in lay.depth_cameras}
            elif key in ("intrinsics", "extrinsics"):
                group = INTRINSICS if key == "intrinsics" else EXTRINSICS
                out[key] = {c: self._ds(f"{group}/{c}")[i] for c in lay.cameras}
            elif key == "qpos":
                out[key] = self._ds(QPOS)[i]
            elif key == "action":
                out[key] = self._finite(ACTION, self._ds(ACTION)[i], first=i)
            elif key in ("proprio", "ee_pose"):
                name = PROPRIO if key == "proprio" else EE_POSE
                out[key] = self._ds(name)[i] if name in lay.optional else None
            elif key == "state":
                out[key] = self.state(i)
            elif key == "success":
                out[key] = bool(self._ds(SUCCESS)[i])
            elif key == "extras":
                out[key] = {n: self._ds(f"{EXTRAS}/{n}")[i] for n in lay.extras}
        return out


__all__ = ["Episode", "EpisodeLayout", "STEP_KEYS"]
