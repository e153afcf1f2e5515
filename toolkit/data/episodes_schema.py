"""Episode file schema: dataset paths, attributes, and the structural validation shared by the
reader (:class:`~toolkit.data.episodes_reader.Episode`) and the checker
(:func:`~toolkit.data.episodes_check.check_episode`).

One HDF5 file holds one episode of ``T`` steps. Layout (schema version 1)::

    /                          attrs: schema_version, format, suite, task, seed, length, success,
                                      config (JSON), cameras (JSON list), sim, toolkit_version, ...
    /action                    (T, A)        float    ALOHA/ACT convention
    /observations/qpos         (T, Dq)       float    ALOHA/ACT convention
    /observations/qvel         (T, Dq)       float    ALOHA/ACT convention (zeros if not recorded)
    /observations/images/<cam> (T, H, W, 3)  uint8    ALOHA/ACT convention, one chunk per step
    /observations/depth/<cam>  (T, H, W)     float32  metric z-depth in metres
    /observations/intrinsics/<cam> (T, 3, 3) float64  pinhole K (pixels)
    /observations/extrinsics/<cam> (T, 4, 4) float64  camera-to-world, OpenCV (x right, y down, z fwd)
    /observations/proprio      (T, P)        float    optional
    /observations/ee_pose      (T, G, 4, 4)  float64  optional, one pose per arm / gripper
    /success                   (T,)          bool
    /state                     (T,)          str      optional, one JSON object per step
    /extras/<name>             (T, ...)      any      optional fixed-shape per-step arrays

See docs/episodes.md for the conventions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when the layout changes incompatibly; readers refuse other versions.
SCHEMA_VERSION = 1
FORMAT_NAME = "toolkit-episode"

ACTION = "action"
QPOS = "observations/qpos"
QVEL = "observations/qvel"
IMAGES = "observations/images"
DEPTH = "observations/depth"
INTRINSICS = "observations/intrinsics"
EXTRINSICS = "observations/extrinsics"
PROPRIO = "observations/proprio"
EE_POSE = "observations/ee_pose"
SUCCESS = "success"
STATE = "state"
EXTRAS = "extras"

#: File name endings the index and the checker treat as episode files.
EPISODE_SUFFIXES = (".hdf5", ".h5", ".hdf")
#: Ending of a writer's temporary file (``<name>.<token>.partial``) until ``finish()`` renames it.
TEMP_SUFFIX = ".partial"

#: Root attributes every finished episode has (``extra_attrs`` may not reuse these names).
REQUIRED_ATTRS = (
    "schema_version",
    "suite",
    "task",
    "seed",
    "length",
    "success",
    "config",
    "cameras",
)
RESERVED_ATTRS = frozenset(REQUIRED_ATTRS) | {"format", "sim", "toolkit_version", "json_attrs"}


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for numpy values, paths, sets and tuples-of-numpy."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")


def to_json(obj: Any, what: str) -> str:
    """Compact JSON of ``obj``; ``ValueError`` naming ``what`` if it is not serializable."""
    try:
        return json.dumps(obj, default=json_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: expected JSON-serializable data, got {exc}") from None


def as_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def problem(path: str | os.PathLike, where: str, expected: str, actual: str) -> str:
    """The one message format: ``FILE: WHERE: expected ..., found ...``."""
    return f"{os.fspath(path)}: {where}: expected {expected}, found {actual}"


@dataclass
class EpisodeLayout:
    """What the structure of one episode file says, read from attributes and shapes only."""

    length: int
    attrs: dict[str, Any]
    cameras: list[str]
    image_size: dict[str, tuple[int, int]] = field(default_factory=dict)
    rgb_cameras: list[str] = field(default_factory=list)
    depth_cameras: list[str] = field(default_factory=list)
    action_dim: int = 0
    qpos_dim: int = 0
    optional: set[str] = field(default_factory=set)  # present optional dataset paths
    extras: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> per-step shape

    def datasets(self) -> list[str]:
        """Every per-step dataset path of this episode (all have ``length`` rows)."""
        paths = [ACTION, QPOS, SUCCESS]
        for cam in self.cameras:
            paths += [f"{INTRINSICS}/{cam}", f"{EXTRINSICS}/{cam}"]
        paths += [f"{IMAGES}/{c}" for c in self.rgb_cameras]
        paths += [f"{DEPTH}/{c}" for c in self.depth_cameras]
        paths += sorted(self.optional)
        paths += [f"{EXTRAS}/{n}" for n in self.extras]
        return paths


def decode_attrs(raw: Any) -> dict[str, Any]:
    """Root attributes as plain Python: JSON ones decoded, numpy scalars unwrapped."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    json_keys = ["config", "cameras"]
    try:
        json_keys += json.loads(out.get("json_attrs", "[]"))
    except (TypeError, ValueError):
        pass
    for key in json_keys:
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass  # reported by inspect_structure
    out.pop("json_attrs", None)
    return out


def _check_attrs(path: str, attrs: dict[str, Any], problems: list[str]) -> None:
    kinds = {
        "suite": (str, "a string"),
        "task": (str, "a string"),
        "seed": (int, "an integer"),
        "length": (int, "an integer >= 1 (written by EpisodeWriter.finish)"),
        "success": ((bool, int), "a boolean (written by EpisodeWriter.finish)"),
        "config": (dict, "a JSON object"),
        "cameras": (list, "a JSON list of camera names"),
    }
    for key, (types, expected) in kinds.items():
        if key not in attrs:
            problems.append(problem(path, f"attribute '{key}'", expected, "nothing (missing)"))
            continue
        value = attrs[key]
        bad = not isinstance(value, types) or (key == "seed" and isinstance(value, bool))
        bad = bad or (key == "length" and not bad and value < 1)
        bad = bad or (key == "cameras" and not bad and not all(isinstance(c, str) for c in value))
        if bad:
            problems.append(problem(path, f"attribute '{key}'", expected, repr(value)[:200]))


def _dataset(f: Any, path: str, name: str, problems: list[str], *, required: bool) -> Any:
    try:
        obj = f[name]  # one lookup (f.get costs two)
    except KeyError:
        obj = None
    if obj is None:
        if required:
            problems.append(problem(path, f"dataset /{name}", "a dataset", "nothing (missing)"))
        return None
    if not hasattr(obj, "shape"):
        problems.append(problem(path, f"/{name}", "a dataset", "a group"))
        return None
    return obj


def _check_shape(
    path: str, name: str, dset: Any, length: int | None, tail: tuple, kind: str, problems: list[str]
) -> bool:
    """Check ``dset`` is ``(length, *tail)`` (``-1`` in tail = any size) of dtype kind ``kind``."""
    shape, ok = tuple(dset.shape), True
    want = "(T" + "".join(f", {'*' if t == -1 else t}" for t in tail) + ")"
    if len(shape) != 1 + len(tail) or any(t not in (-1, s) for t, s in zip(tail, shape[1:])):
        problems.append(problem(path, f"dataset /{name}", f"shape {want}", f"shape {shape}"))
        ok = False
    if dset.dtype.kind not in kind:
        names = {"f": "float", "u": "uint8", "b": "bool", "O": "string", "S": "string"}
        want_kind = " or ".join(dict.fromkeys(names.get(k, k) for k in kind))
        problems.append(problem(path, f"dataset /{name}", f"dtype {want_kind}", f"{dset.dtype}"))
        ok = False
    if length is not None and shape and shape[0] != length:
        problems.append(
            problem(path, f"dataset /{name}", f"{length} steps (attribute length)", f"{shape[0]}")
        )
        ok = False
    return ok


def inspect_structure(f: Any, path: str | os.PathLike) -> tuple[EpisodeLayout | None, list[str]]:
    """Validate an open file's attributes and dataset shapes (no data is read).

    Returns the layout (``None`` if the file cannot be read as an episode at all) and the list
    of problems, each naming file, dataset / attribute, expected and found.
    """
    path = os.fspath(path)
    problems: list[str] = []
    attrs = decode_attrs(f.attrs)
    version = attrs.get("schema_version")
    if version is None:
        hint = " (not written by toolkit's EpisodeWriter?)" if "format" not in attrs else ""
        problems.append(
            problem(path, "attribute 'schema_version'", f"{SCHEMA_VERSION}", f"nothing{hint}")
        )
        return None, problems
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        note = " (written by a newer toolkit: upgrade)" if newer else " (re-generate or convert it)"
        problems.append(
            problem(path, "attribute 'schema_version'", f"{SCHEMA_VERSION}", f"{version!r}{note}")
        )
        return None, problems
    _check_attrs(path, attrs, problems)

    action = _dataset(f, path, ACTION, problems, required=True)
    length = attrs.get("length") if isinstance(attrs.get("length"), int) else None
    if length is None and action is not None and action.ndim >= 1:
        length = int(action.shape[0])  # judge the other datasets against /action
    cameras = attrs.get("cameras") if isinstance(attrs.get("cameras"), list) else []
    layout = EpisodeLayout(length=length or 0, attrs=attrs, cameras=list(cameras))

    if action is not None and _check_shape(path, ACTION, action, length, (-1,), "f", problems):
        layout.action_dim = int(action.shape[1])
    qpos = _dataset(f, path, QPOS, problems, required=True)
    if qpos is not None and _check_shape(path, QPOS, qpos, length, (-1,), "f", problems):
        layout.qpos_dim = int(qpos.shape[1])
    succ = _dataset(f, path, SUCCESS, problems, required=True)
    if succ is not None:
        _check_shape(path, SUCCESS, succ, length, (), "bu", problems)

    for cam in cameras:
        for group, tail in ((INTRINSICS, (3, 3)), (EXTRINSICS, (4, 4))):
            d = _dataset(f, path, f"{group}/{cam}", problems, required=True)
            if d is not None:
                _check_shape(path, f"{group}/{cam}", d, length, tail, "f", problems)
        rgb = _dataset(f, path, f"{IMAGES}/{cam}", problems, required=False)
        depth = _dataset(f, path, f"{DEPTH}/{cam}", problems, required=False)
        if rgb is None and depth is None:
            problems.append(
                problem(path, f"camera '{cam}'", f"/{IMAGES}/{cam} or /{DEPTH}/{cam}", "neither")
            )
        if rgb is not None and _check_shape(
            path, f"{IMAGES}/{cam}", rgb, length, (-1, -1, 3), "u", problems
        ):
            layout.rgb_cameras.append(cam)
            layout.image_size[cam] = (int(rgb.shape[1]), int(rgb.shape[2]))
        if depth is not None and _check_shape(
            path, f"{DEPTH}/{cam}", depth, length, (-1, -1), "f", problems
        ):
            size = (int(depth.shape[1]), int(depth.shape[2]))
            if layout.image_size.setdefault(cam, size) != size:
                problems.append(
                    problem(
                        path,
                        f"dataset /{DEPTH}/{cam}",
                        f"image size {layout.image_size[cam]} (as /{IMAGES}/{cam})",
                        f"{size}",
                    )
                )
            else:
                layout.depth_cameras.append(cam)
    for group in (IMAGES, DEPTH, INTRINSICS, EXTRINSICS):
        for cam in sorted(set(f[group]) - set(cameras)) if group in f else ():
            problems.append(
                problem(
                    path,
                    f"dataset /{group}/{cam}",
                    f"cameras {cameras} (attribute cameras)",
                    f"camera '{cam}' not listed",
                )
            )

    optional = {
        QVEL: ((-1,), "f"),
        PROPRIO: ((-1,), "f"),
        EE_POSE: ((-1, 4, 4), "f"),
        STATE: ((), "OS"),
    }
    for name, (tail, kind) in optional.items():
        d = _dataset(f, path, name, problems, required=False)
        if d is not None and _check_shape(path, name, d, length, tail, kind, problems):
            layout.optional.add(name)
    if EXTRAS in f:
        for name in sorted(f[EXTRAS]):
            d = _dataset(f, path, f"{EXTRAS}/{name}", problems, required=True)
            if d is not None and d.ndim >= 1:
                if length is not None and d.shape[0] != length:
                    problems.append(
                        problem(
                            path,
                            f"dataset /{EXTRAS}/{name}",
                            f"{length} steps (attribute length)",
                            f"{d.shape[0]}",
                        )
                    )
                else:
                    layout.extras[name] = tuple(int(s) for s in d.shape[1:])
    return layout, problems


def record_from_layout(layout: EpisodeLayout, path: str | Path) -> dict[str, Any]:
    """The index's summary of one episode (what ``EpisodeIndex`` caches)."""
    a = layout.attrs
    return {
        "path": os.fspath(path),
        "suite": a.get("suite"),
        "task": a.get("task"),
        "seed": a.get("seed"),
        "length": layout.length,
        "success": bool(a.get("success")),
        "cameras": list(layout.cameras),
        "image_size": {c: list(s) for c, s in layout.image_size.items()},
        "action_dim": layout.action_dim,
        "qpos_dim": layout.qpos_dim,
        "extras": sorted(layout.extras),
    }
