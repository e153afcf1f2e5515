"""Streaming, atomic writer for episode files (schema in :mod:`toolkit.data.episodes_schema`).

Steps are buffered ``chunk_steps`` at a time and appended to resizable datasets, so a long
episode never sits in RAM. Everything goes to a temporary file next to the target
(``<name>.<token>.partial``); :meth:`EpisodeWriter.finish` flushes, closes, fsyncs and renames it
with ``os.replace``. Leaving the ``with`` block without ``finish()`` deletes the temporary file.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

import toolkit
from toolkit.data.episodes_schema import (
    ACTION,
    DEPTH,
    EE_POSE,
    EXTRAS,
    EXTRINSICS,
    FORMAT_NAME,
    IMAGES,
    INTRINSICS,
    PROPRIO,
    QPOS,
    QVEL,
    RESERVED_ATTRS,
    SCHEMA_VERSION,
    STATE,
    SUCCESS,
    TEMP_SUFFIX,
    to_json,
)

_BIG_STEP = 16 << 10  # per-step arrays at least this large get one chunk per step


def _float(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{what}: expected numbers, got dtype {arr.dtype}")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


class EpisodeWriter:
    """Write one episode, step by step, atomically.

    Args:
        path: final file path (``.hdf5``); parent folders are created.
        suite, task, seed: stored as root attributes.
        config: the generator's config (JSON-serializable), stored as a JSON attribute.
        cameras: ``{name: (H, W)}`` (or a list of names; sizes then come from the first step).
            ``None``: the cameras of the first step's ``intrinsics``.
        chunk_steps: steps buffered in memory between writes, and the chunk length of small
            per-step datasets (images / depth / large extras get one chunk per step).
        compression: ``"gzip"`` (readable everywhere, default), ``"lzf"`` (faster, h5py only)
            or ``None``; applied to images, depth and large extras.
        compression_level: gzip level (1-9).
        depth_dtype: ``"float32"`` (default) or ``"float16"`` (half the size, ~1 mm at 2 m).
        aloha_qvel: write ``/observations/qvel`` (zeros, attribute ``placeholder``) when no
            ``qvel`` is given, because ALOHA/ACT loaders read it.
        fsync: fsync the file before the rename (durability after a power loss).
        meta_block_size: bytes reserved at the start of the file for HDF5 metadata (object
            headers, chunk indices). Keeping the metadata ahead of the data lets the checker name
            the datasets that lost steps when a file's tail is cut off (an interrupted copy).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        suite: str,
        task: str,
        seed: int,
        config: Mapping[str, Any] | None = None,
        cameras: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
        chunk_steps: int = 32,
        compression: str | None = "gzip",
        compression_level: int = 4,
        depth_dtype: str = "float32",
        aloha_qvel: bool = True,
        fsync: bool = True,
        meta_block_size: int = 256 << 10,
    ):
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps: expected >= 1, got {chunk_steps}")
        if depth_dtype not in ("float32", "float16"):
            raise ValueError(f"depth_dtype: expected 'float32' or 'float16', got {depth_dtype!r}")
        self.path = os.fspath(path)
        self.chunk_steps = int(chunk_steps)
        self._compression = compression
        self._compression_opts = compression_level if compression == "gzip" else None
        self._depth_dtype = np.dtype(depth_dtype)
        self._aloha_qvel = aloha_qvel
        self._fsync = fsync
        if isinstance(cameras, Mapping):
            self._sizes = {c: tuple(int(v) for v in hw) for c, hw in cameras.items()}
            self._cameras: list[str] | None = list(cameras)
        else:
            self._sizes = {}
            self._cameras = list(cameras) if cameras is not None else None
        self._attrs = {
            "schema_version": SCHEMA_VERSION,
            "format": FORMAT_NAME,
            "toolkit_version": toolkit.__version__,
            "sim": True,  # ALOHA/ACT read root.attrs['sim']
            "suite": str(suite),
            "task": str(task),
            "seed": int(seed),
            "config": to_json(dict(config or {}), "config"),  # fails early if not JSON
        }
        self._specs: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None  # from step 0
        self._buffer: dict[str, list[np.ndarray]] = {}
        self._buffered = 0
        self._written = 0
        self._any_success = False
        self._finished = False
        self._closed = False
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.temp_path = f"{self.path}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
        self._file = h5py.File(self.temp_path, "w", meta_block_size=meta_block_size)
        for key, value in self._attrs.items():
            self._file.attrs[key] = value

    # -- public ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Steps added so far."""
        return self._written + self._buffered

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if not self._finished:
            if exc_type is None and not self._closed:
                warnings.warn(
                    f"EpisodeWriter for {self.path} left without finish(): nothing was written",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.abort()
        return False

    def add_step(
        self,
        *,
        depth: Mapping[str, Any] | None = None,
        intrinsics: Mapping[str, Any],
        extrinsics: Mapping[str, Any],
        qpos: Any,
        action: Any,
        rgb: Mapping[str, Any] | None = None,
        proprio: Any = None,
        qvel: Any = None,
        ee_pose: Any = None,
        state: Mapping[str, Any] | None = None,
        success: bool = False,
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one step. Every step must carry the same fields with the same shapes as the
        first one (optional fields are all-or-nothing per episode)."""
        if self._finished or self._closed:
            raise RuntimeError(f"EpisodeWriter for {self.path} is already closed")
        step = len(self)
        where = f"{self.path}: step {step}"
        row = self._camera_fields(where, rgb or {}, depth or {}, intrinsics, extrinsics)
        vectors = {QPOS: qpos, ACTION: action, PROPRIO: proprio, QVEL: qvel}
        row.update(self._other_fields(where, vectors, ee_pose, state, success, extras or {}))
        if self._specs is None:
            self._start(row)
        else:
            self._validate(step, row)
        for name, value in row.items():
            self._buffer.setdefault(name, []).append(value)
        self._buffered += 1
        self._any_success |= bool(success)
        if self._buffered >= self.chunk_steps:
            self._flush()

    def finish(
        self, success: bool | None = None, extra_attrs: Mapping[str, Any] | None = None
    ) -> str:
        """Commit the episode: write the buffered steps and the final attributes, close, and
        rename the temporary file to ``path``. ``success`` defaults to "any step succeeded".
        Returns ``path``."""
        if self._finished or self._closed:
            raise RuntimeError(f"EpisodeWriter for {self.path} is already closed")
        if len(self) == 0:
            raise ValueError(f"{self.path}: an episode needs at least one step; none was added")
        self._flush()
        f = self._file
        if self._aloha_qvel and QVEL not in f:
            dq = f[QPOS].shape[1]
            d = f.create_dataset(
                QVEL,
                shape=(self._written, dq),
                dtype=f[QPOS].dtype,
                chunks=(min(self._written, 1024), dq),
                fillvalue=0,
            )
            d.attrs["placeholder"] = "not recorded: zeros, for ALOHA/ACT loaders"
        json_attrs = []
        for key, value in (extra_attrs or {}).items():
            if key in RESERVED_ATTRS:
                raise ValueError(f"extra_attrs: '{key}' is a reserved attribute name")
            if isinstance(value, (str, bool, int, float, np.generic)):
                f.attrs[key] = value
            else:
                f.attrs[key] = to_json(value, f"extra_attrs['{key}']")
                json_attrs.append(key)
        if json_attrs:
            f.attrs["json_attrs"] = to_json(json_attrs, "json_attrs")
        f.attrs["length"] = self._written
        f.attrs["success"] = bool(self._any_success if success is None else success)
        f.flush()
        f.close()
        self._closed = True
        if self._fsync:
            fd = os.open(self.temp_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(self.temp_path, self.path)
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Discard the episode: close and delete the temporary file (``path`` is untouched)."""
        if not self._closed:
            self._closed = True
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
        self._buffer.clear()
        if os.path.exists(self.temp_path):
            os.remove(self.temp_path)

    # -- internals ------------------------------------------------------------------------------

    def _camera_fields(self, where: str, rgb, depth, intrinsics, extrinsics) -> dict[str, Any]:
        if self._cameras is None:
            self._cameras = list(intrinsics)
        cams = self._cameras
        given = {"rgb": rgb, "depth": depth, "intrinsics": intrinsics, "extrinsics": extrinsics}
        for arg, per_cam in given.items():
            unknown = sorted(set(per_cam) - set(cams))
            if unknown:
                raise ValueError(f"{where}: {arg} has unknown cameras {unknown}; cameras: {cams}")
        row: dict[str, np.ndarray] = {}
        for cam in cams:
            for arg, group, tail in (
                ("intrinsics", INTRINSICS, (3, 3)),
                ("extrinsics", EXTRINSICS, (4, 4)),
            ):
                if cam not in given[arg]:
                    raise ValueError(f"{where}: {arg} is missing camera '{cam}'")
                arr = np.asarray(given[arg][cam], dtype=np.float64)
                if arr.shape != tail:
                    raise ValueError(f"{where}: {arg}['{cam}']: expected {tail}, got {arr.shape}")
                row[f"{group}/{cam}"] = arr
            if cam in rgb:
                img = np.asarray(rgb[cam])
                if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                    raise ValueError(
                        f"{where}: rgb['{cam}']: expected uint8 (H, W, 3), got "
                        f"{img.dtype} {img.shape}"
                    )
                self._check_size(where, f"rgb['{cam}']", cam, img.shape[:2])
                row[f"{IMAGES}/{cam}"] = img
            if cam in depth:
                d = np.asarray(depth[cam], dtype=self._depth_dtype)
                if d.ndim != 2:
                    raise ValueError(f"{where}: depth['{cam}']: expected (H, W), got {d.shape}")
                self._check_size(where, f"depth['{cam}']", cam, d.shape)
                row[f"{DEPTH}/{cam}"] = d
            if cam not in rgb and cam not in depth:
                raise ValueError(f"{where}: camera '{cam}' has neither rgb nor depth")
        return row

    def _other_fields(self, where: str, vectors, ee_pose, state, success, extras) -> dict[str, Any]:
        row: dict[str, np.ndarray] = {}
        for name, value in vectors.items():
            if value is None and name in (PROPRIO, QVEL):
                continue
            arr = _float(value, f"{where}: {name}")
            if arr.ndim != 1:
                raise ValueError(f"{where}: {name}: expected a 1-d vector, got shape {arr.shape}")
            if name == ACTION and not np.isfinite(arr).all():
                raise ValueError(f"{where}: action: expected finite values, got {arr}")
            row[name] = arr
        if ee_pose is not None:
            pose = np.asarray(ee_pose, dtype=np.float64)
            pose = pose[None] if pose.shape == (4, 4) else pose
            if pose.ndim != 3 or pose.shape[1:] != (4, 4):
                raise ValueError(f"{where}: ee_pose: expected (G, 4, 4), got {pose.shape}")
            row[EE_POSE] = pose
        row[SUCCESS] = np.asarray(bool(success))
        if state is not None:
            row[STATE] = np.asarray(to_json(dict(state), f"{where}: state"), dtype=object)
        for name, value in extras.items():
            if not name or "/" in name:
                raise ValueError(f"{where}: extras: invalid name {name!r}")
            row[f"{EXTRAS}/{name}"] = np.asarray(value)
        return row

    def _check_size(self, where: str, what: str, cam: str, hw: tuple[int, ...]) -> None:
        want = self._sizes.setdefault(cam, tuple(hw))
        if tuple(hw) != want:
            raise ValueError(f"{where}: {what}: expected size {want}, got {tuple(hw)}")

    def _start(self, row: dict[str, np.ndarray]) -> None:
        self._specs = {name: (arr.shape, arr.dtype) for name, arr in row.items()}
        self._file.attrs["cameras"] = to_json(self._cameras, "cameras")

    def _validate(self, step: int, row: dict[str, np.ndarray]) -> None:
        specs = self._specs
        if row.keys() != specs.keys():
            missing, new = sorted(specs.keys() - row.keys()), sorted(row.keys() - specs.keys())
            raise ValueError(
                f"{self.path}: step {step}: fields differ from step 0 (missing "
                f"{missing}, new {new}); every step needs the same fields"
            )
        for name, arr in row.items():
            shape, dtype = specs[name]
            if arr.shape != shape:
                raise ValueError(
                    f"{self.path}: step {step}: /{name}: expected shape {shape} "
                    f"(as step 0), got {arr.shape}"
                )
            if arr.dtype != dtype and not np.can_cast(arr.dtype, dtype, "same_kind"):
                raise ValueError(
                    f"{self.path}: step {step}: /{name}: expected dtype {dtype} "
                    f"(as step 0), got {arr.dtype}"
                )

    def _create(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> h5py.Dataset:
        kwargs: dict[str, Any] = {}
        per_step = int(np.prod(shape)) * dtype.itemsize
        big = per_step >= _BIG_STEP
        if dtype.kind == "O":
            dtype = h5py.string_dtype()
        elif self._compression and (big or name.startswith((IMAGES, DEPTH))):
            kwargs.update(
                compression=self._compression,
                compression_opts=self._compression_opts,
                shuffle=dtype.kind == "f",
            )
        chunks = (1 if big else self.chunk_steps, *shape)
        return self._file.create_dataset(
            name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=chunks, **kwargs
        )

    def _flush(self) -> None:
        if not self._buffered:
            return
        start, stop = self._written, self._written + self._buffered
        for name, values in self._buffer.items():
            shape, dtype = self._specs[name]
            dset = self._file.get(name)
            if dset is None:
                dset = self._create(name, shape, dtype)
            dset.resize(stop, axis=0)
            if dtype.kind == "O":  # JSON strings
                dset[start:stop] = np.array([v.item() for v in values], dtype=object)
            else:
                dset[start:stop] = np.stack(values).astype(dtype, copy=False)
        self._buffer.clear()
        self._written, self._buffered = stop, 0
