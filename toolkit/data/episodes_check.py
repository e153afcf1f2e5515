"""Opening and checking episode files: every corrupt, truncated or inconsistent file gets a
reason naming the file, the dataset, what was expected and what was found.

:func:`open_episode_file` is what the reader uses; :func:`check_episode` adds a full read of the
data (decompression errors, non-finite actions / poses, malformed per-step JSON).
"""

from __future__ import annotations

import io
import json
import os
import struct
from typing import Any

import h5py
import numpy as np

from toolkit.data.episodes_schema import (
    ACTION,
    DEPTH,
    EE_POSE,
    EXTRINSICS,
    INTRINSICS,
    PROPRIO,
    QPOS,
    QVEL,
    STATE,
    TEMP_SUFFIX,
    EpisodeLayout,
    inspect_structure,
    problem,
)
from toolkit.utils.errors import EpisodeFileError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _superblock(raw: io.BufferedReader, size: int) -> tuple[int, int] | None:
    """(offset of the HDF5 signature, end-of-file address stored in the superblock), or None."""
    offset = 0
    while offset + 8 <= size:  # the superblock sits at 0, 512, 1024, 2048, ...
        raw.seek(offset)
        head = raw.read(64)
        if head[:8] == HDF5_SIGNATURE:
            version = head[8]
            if version in (0, 1):
                width = head[13]  # size of offsets
                start = 24 + (4 if version == 1 else 0)
            elif version in (2, 3):
                width = head[9]
                start = 12
            else:
                return offset, -1
            if width not in (2, 4, 8):
                return offset, -1
            fmt = {2: "<H", 4: "<I", 8: "<Q"}[width]
            base = struct.unpack_from(fmt, head, start)[0]
            eof = struct.unpack_from(fmt, head, start + 2 * width)[0]
            return offset, base + eof
        offset = 512 if offset == 0 else offset * 2
    return None


class _ZeroPadded(io.RawIOBase):
    """Read-only view of a truncated file that reads zeros up to the size HDF5 expects, so the
    surviving metadata can say which datasets lost their data."""

    def __init__(self, raw: io.BufferedReader, size: int):
        self._raw, self._size, self._pos = raw, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = (
            offset if whence == 0 else self._pos + offset if whence == 1 else self._size + offset
        )
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: Any) -> int:
        want = max(0, min(len(buf), self._size - self._pos))
        self._raw.seek(self._pos)
        data = self._raw.read(want)
        buf[: len(data)] = data
        buf[len(data) : want] = bytes(want - len(data))
        self._pos += want
        return want


def _walk(group: h5py.Group, prefix: str, found: dict[str, Any]) -> None:
    """Every dataset under ``group`` -> the dataset, or the error that stops reading it."""
    try:
        names = list(group)
    except Exception as exc:  # noqa: BLE001 - the group's link table is cut off
        found[prefix.rstrip("/") or "/"] = exc
        return
    for name in names:
        try:
            obj = group[name]
        except Exception as exc:  # noqa: BLE001 - the object's header is cut off
            found[prefix + name] = exc
            continue
        if isinstance(obj, h5py.Group):
            _walk(obj, f"{prefix}{name}/", found)
        else:
            found[prefix + name] = obj


def _short_datasets(f: h5py.File, path: str, actual: int) -> list[str]:
    """Datasets of a zero-padded truncated file whose stored bytes lie past ``actual``."""
    problems: list[str] = []
    found: dict[str, Any] = {}
    _walk(f, "", found)
    for name, dset in found.items():
        try:
            if isinstance(dset, Exception):
                raise dset
            rows = dset.shape[0] if dset.ndim else 0
            if dset.chunks is None:
                offset = dset.id.get_offset()
                lost = offset is not None and offset + dset.id.get_storage_size() > actual
                steps = list(range(rows)) if lost else []
            else:
                steps = []
                for k in range(dset.id.get_num_chunks()):
                    info = dset.id.get_chunk_info(k)
                    if info.byte_offset is not None and info.byte_offset + info.size > actual:
                        first = info.chunk_offset[0]
                        steps += range(first, min(first + dset.chunks[0], rows))
        except Exception as exc:  # noqa: BLE001 - its own metadata is cut off
            problems.append(
                problem(
                    path,
                    f"/{name}",
                    "readable HDF5 metadata",
                    f"metadata past the end of the truncated file ({exc})",
                )
            )
            continue
        if steps:
            steps = sorted(set(steps))
            problems.append(
                problem(
                    path,
                    f"dataset /{name}",
                    f"{rows} steps stored",
                    f"{rows - len(steps)} intact: steps {format_steps(steps)} lie past the end of the file",
                )
            )
    return problems


def format_steps(steps: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    out, start = [], steps[0]
    for a, b in zip(steps, steps[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)


def diagnose_unopenable(path: str, exc: BaseException | None = None) -> list[str]:
    """Why HDF5 cannot open ``path``: missing, empty, not HDF5, a writer's temp file, truncated."""
    if not os.path.exists(path):
        return [problem(path, "file", "an episode file", "nothing (no such file)")]
    if path.endswith(TEMP_SUFFIX):
        return [
            f"{path}: incomplete temporary file: a writer was killed or crashed before "
            f"finish(); delete it or re-generate the episode"
        ]
    size = os.path.getsize(path)
    if size == 0:
        return [problem(path, "file", "an HDF5 file", "an empty file (0 bytes)")]
    with open(path, "rb") as raw:
        found = _superblock(raw, size)
        if found is None:
            raw.seek(0)
            head = raw.read(8)
            return [
                problem(
                    path,
                    "file header",
                    f"the HDF5 signature {HDF5_SIGNATURE.hex(' ')}",
                    f"{head.hex(' ')} (not an HDF5 file)",
                )
            ]
        _, stored = found
        if stored > size:
            head = problem(
                path,
                "file size",
                f"{stored} bytes (recorded in the HDF5 superblock)",
                f"{size} bytes (truncated file)",
            )
            try:
                with h5py.File(_ZeroPadded(raw, stored), "r") as f:
                    short = _short_datasets(f, path, size)
            except Exception as err:  # noqa: BLE001 - any HDF5 failure here means cut-off metadata
                short = [
                    f"{path}: the file's own index is cut off too, so the short datasets "
                    f"cannot be named ({err})"
                ]
            return [head, *short]
    reason = f" ({exc})" if exc is not None else ""
    return [problem(path, "file", "a readable HDF5 file", f"one HDF5 cannot open{reason}")]


def open_episode_file(path: str | os.PathLike) -> tuple[h5py.File, EpisodeLayout]:
    """Open an episode read-only and validate its structure (cheap: attributes and shapes).

    Raises :class:`EpisodeFileError` naming the file and each problem.
    """
    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, but be broad for corrupt files
        raise EpisodeFileError("\n".join(diagnose_unopenable(path, exc))) from None
    try:
        layout, problems = inspect_structure(f, path)
    except Exception as exc:  # noqa: BLE001 - corrupt metadata surfaces as any h5py error
        layout, problems = None, [problem(path, "file", "readable HDF5 metadata", f"{exc}")]
    if problems or layout is None:
        f.close()
        raise EpisodeFileError("\n".join(problems))
    return f, layout


_FINITE = (ACTION, QPOS, QVEL, PROPRIO, EE_POSE)


def _scan(f: h5py.File, path: str, name: str, block: int, problems: list[str]) -> None:
    dset = f[name]
    finite = name in _FINITE or name.startswith((INTRINSICS, EXTRINSICS))
    pose = name == EE_POSE or name.startswith(EXTRINSICS)
    bad_finite: list[int] = []
    bad_pose: list[int] = []
    bad_depth: list[int] = []
    for start in range(0, dset.shape[0], block):
        stop = min(start + block, dset.shape[0])
        try:
            data = dset[start:stop]
        except Exception as exc:  # noqa: BLE001 - corrupt chunk: decompression / filter error
            problems.append(
                problem(
                    path,
                    f"dataset /{name}",
                    f"readable data at steps {start}-{stop - 1}",
                    f"an error ({exc})",
                )
            )
            return
        if name == STATE:
            for i, text in enumerate(data, start):
                try:
                    ok = isinstance(json.loads(text), dict)
                except ValueError:
                    ok = False
                if not ok:
                    problems.append(
                        problem(
                            path,
                            f"dataset /{STATE}",
                            "a JSON object per step",
                            f"{str(text)[:60]!r} at step {i}",
                        )
                    )
                    return
            continue
        rows = data.reshape(data.shape[0], -1)
        if finite:
            bad_finite += (np.flatnonzero(~np.isfinite(rows).all(axis=1)) + start).tolist()
        if pose:
            last = data[..., 3, :].reshape(data.shape[0], -1, 4)
            ok = np.abs(last - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=(1, 2)) < 1e-5
            bad_pose += (np.flatnonzero(~ok) + start).tolist()
        if name.startswith(DEPTH):
            bad_depth += (
                np.flatnonzero((np.isnan(rows) | (rows < 0)).any(axis=1)) + start
            ).tolist()
    if bad_finite:
        values = "NaN/inf" if name == ACTION else "non-finite values"
        problems.append(
            problem(
                path,
                f"dataset /{name}",
                "finite values",
                f"{values} at steps {format_steps(bad_finite)}",
            )
        )
    if bad_pose:
        problems.append(
            problem(
                path,
                f"dataset /{name}",
                "4x4 rigid transforms (last row 0 0 0 1)",
                f"another last row at steps {format_steps(bad_pose)}",
            )
        )
    if bad_depth:
        problems.append(
            problem(
                path,
                f"dataset /{name}",
                "metric depth >= 0 (no NaN)",
                f"NaN or negative depth at steps {format_steps(bad_depth)}",
            )
        )


def check_episode(path: str | os.PathLike, *, deep: bool = True) -> list[str]:
    """Every problem of one episode file; an empty list if it is fine.

    ``deep=False`` checks attributes and shapes only; ``deep=True`` (default) also reads all data
    (corrupt chunks, NaN/inf in actions, qpos, poses and intrinsics, bad poses, NaN depth,
    malformed per-step JSON state).
    """
    path = os.fspath(path)
    try:
        f, layout = open_episode_file(path)
    except EpisodeFileError as exc:
        return str(exc).splitlines()
    problems: list[str] = []
    try:
        if deep:
            for name in layout.datasets():
                dset = f[name]
                per_step = max(1, int(np.prod(dset.shape[1:])) * dset.dtype.itemsize)
                block = max(dset.chunks[0] if dset.chunks else 1, (8 << 20) // per_step)
                _scan(f, path, name, block, problems)
    except Exception as exc:  # noqa: BLE001 - report, never crash the checker
        problems.append(problem(path, "file", "readable data", f"an error ({exc})"))
    finally:
        f.close()
    return problems
