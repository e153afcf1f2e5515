"""Convert stored RLBench demos to toolkit episode files (``toolkit convert rlbench``).

Output layout (what :class:`~toolkit.data.policy_dataset.PointCloudBCDataset` and
:class:`~toolkit.data.pretrain_dataset.PointCloudPretrainDataset` read)::

    OUT/<task>/<split>/ep_<seed>.hdf5     one source episode; seed = 1000 * episode + variation
    OUT/splits.json                       {task: {split: [seeds]}}
    OUT/summary.json                      written / skipped / failed episodes, the config

Each row ``t`` of an episode file is one observation of the source demo (every step, or only
keyframes) with:

- ``rgb`` / ``depth`` (metres) / ``intrinsics`` / ``extrinsics`` (OpenCV, camera-to-world) of
  each camera; ``extras/point_cloud`` ``(N, 3)`` world cloud (+ ``point_mask``) from the depth
  of ``point_cameras``, cropped to ``bounds`` and resampled with the toolkit's ops;
- ``proprio`` (``pose``: gripper xyz + quaternion + open, 8; ``lift3d``: 7 joints first, 15),
  ``qpos`` / ``qvel`` (arm joints), ``ee_pose`` (tip pose);
- ``action`` (8): the gripper pose + open state of the *target* step: the next keyframe
  (``target="next_keyframe"``, PerAct / CLAR's keyframe waypoints) or the next step
  (``"next_step"``, Lift3D's dense pairs); ``absolute`` world pose or RLBench's ``delta`` form;
- ``state``: the instruction, variation, source step; ``success`` on the last row.

Conversion is atomic per episode (temporary file + rename) and resumable: a rerun skips every
episode whose file is valid and was written with the same options, and removes temporary
files a killed run left. A lock stops two runs from writing into one directory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from toolkit.data.rlbench.format import RLBENCH_VERSION
from toolkit.data.rlbench.observations import (
    ACTION_MODES,
    PROPRIO_KINDS,
    cloud_from_depths,
    parse_bounds,
    pose_action,
    proprio_vector,
)
from toolkit.data.rlbench.reader import EpisodeRef, RLBenchEpisode, find_episodes
from toolkit.data.rlbench.unpickler import RLBenchDataError
from toolkit.utils.errors import ToolkitError
from toolkit.utils.io import atomic_write_text

__all__ = ["ConvertConfig", "convert", "convert_episode", "episode_seed", "plan_steps"]

SUITE = "rlbench"
TARGETS = ("next_step", "next_keyframe")
#: seed = SEED_STRIDE * episode + variation (variations of RLBench tasks number < 1000)
SEED_STRIDE = 1000


@dataclass
class ConvertConfig:
    """What to convert and how (see the module docstring; CLI: ``toolkit convert rlbench -h``).

    Args:
        src: RLBench dataset directory (task folders) or one task folder.
        out: output directory.
        tasks: tasks to convert (None: all found).
        cameras: cameras stored per step (RGB / depth / K / extrinsics).
        point_cameras: cameras whose depth makes the cloud (None: ``cameras``).
        num_points / bounds / voxel_size / sample_method: cloud processing; ``bounds`` is
            ``"lift3d"`` (default), ``"peract"``, ``"none"`` or six numbers.
        keyframes: store only the keyframe observations (``[0] + keyframes[:-1]``), each with
            the next keyframe as target.
        target: ``next_step`` | ``next_keyframe`` for dense conversion (default ``next_step``;
            keyframe conversion always targets the next keyframe).
        action_mode: ``absolute`` | ``delta``. proprio: ``pose`` | ``lift3d``.
        split: sub-folder of the converted episodes; ``val`` = the last ``val`` episodes of each
            task (in :func:`find_episodes` order) go to ``val/`` instead.
        max_episodes: keep the first K episodes of each task.
        rgb / depth / masks: store these images (the cloud is made either way).
        stopping_delta: keyframe discovery's joint-velocity threshold.
        compression / compression_level / depth_dtype: episode writer storage options.
        workers: parallel processes (1: in-process).
    """

    src: str
    out: str
    tasks: list[str] | None = None
    cameras: list[str] = field(default_factory=lambda: ["front"])
    point_cameras: list[str] | None = None
    num_points: int = 1024
    bounds: Any = "lift3d"
    voxel_size: float | None = None
    sample_method: str = "bucket_fps"
    keyframes: bool = False
    target: str | None = None
    action_mode: str = "absolute"
    proprio: str = "pose"
    split: str = "train"
    val: int = 0
    max_episodes: int | None = None
    rgb: bool = True
    depth: bool = True
    masks: bool = False
    stopping_delta: float = 0.1
    compression: str | None = "gzip"
    compression_level: int = 1
    depth_dtype: str = "float32"
    workers: int = 1

    def __post_init__(self) -> None:
        self.cameras = [str(c) for c in self.cameras]
        if not self.cameras:
            raise ToolkitError("convert rlbench: at least one camera is needed")
        if self.point_cameras is None:
            self.point_cameras = list(self.cameras)
        unknown = [c for c in self.point_cameras if c not in self.cameras]
        if unknown:
            raise ToolkitError(f"point cameras {unknown} must be among the cameras {self.cameras}")
        if self.target is None:
            self.target = "next_keyframe" if self.keyframes else "next_step"
        if self.target not in TARGETS:
            raise ToolkitError(f"target: expected one of {TARGETS}, got {self.target!r}")
        if self.keyframes and self.target != "next_keyframe":
            raise ToolkitError("keyframe conversion targets the next keyframe (drop --target)")
        if self.action_mode not in ACTION_MODES:
            raise ToolkitError(
                f"action mode: expected one of {ACTION_MODES}, got {self.action_mode!r}"
            )
        if self.proprio not in PROPRIO_KINDS:
            raise ToolkitError(
                f"proprio: expected one of {sorted(PROPRIO_KINDS)}, got {self.proprio!r}"
            )
        if int(self.num_points) < 1:
            raise ToolkitError(f"num_points must be >= 1, got {self.num_points}")
        if int(self.val) < 0 or (self.max_episodes is not None and int(self.max_episodes) < 1):
            raise ToolkitError("val must be >= 0 and max_episodes >= 1")
        if self.split == "val" and self.val:
            raise ToolkitError("split 'val' with --val N: choose another name for the main split")
        self.bounds_array = parse_bounds(self.bounds)  # validates early

    def recipe(self) -> dict[str, Any]:
        """The JSON-able options stored in every episode (a rerun with other options redoes it)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("src", "out", "workers")}
        out["bounds"] = None if self.bounds_array is None else self.bounds_array.tolist()
        out["source_format"] = RLBENCH_VERSION
        return out


def episode_seed(episode: int, variation: int) -> int:
    """The ``seed`` attribute / file name of a converted episode: ``1000 * episode + variation``."""
    if not 0 <= variation < SEED_STRIDE:
        raise RLBenchDataError(f"variation {variation} out of range [0, {SEED_STRIDE})")
    return SEED_STRIDE * int(episode) + int(variation)


def plan_steps(
    length: int, keyframes: Sequence[int], keyframes_only: bool, target: str
) -> list[tuple[int, int]]:
    """``[(observation step, target step), ...]`` of one demo of ``length`` steps.

    ``keyframes_only``: observations ``[0] + keyframes[:-1]``, each targeting the next keyframe.
    Otherwise every step but the last, targeting ``t + 1`` (``next_step``) or the first keyframe
    after ``t`` (``next_keyframe``).
    """
    kps = sorted(int(k) for k in keyframes)
    if length < 2:
        return []
    if not kps or kps[-1] != length - 1:
        kps.append(length - 1)  # the final step is always a waypoint
    if keyframes_only:
        obs = [0] + kps[:-1]
        return list(zip(obs, kps))
    if target == "next_step":
        return [(t, t + 1) for t in range(length - 1)]
    out = []
    for t in range(length - 1):
        out.append((t, next(k for k in kps if k > t)))
    return out


def _episode_path(out: str, task: str, split: str, seed: int) -> str:
    return os.path.join(out, task, split, f"ep_{seed}.hdf5")


def _done(path: str, recipe: dict[str, Any]) -> bool:
    """A valid episode file written with the same options."""
    from toolkit.data.episodes import check_episode
    from toolkit.data.episodes_schema import decode_attrs

    if not os.path.isfile(path) or check_episode(path, deep=False):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = decode_attrs(f.attrs)
    except OSError:
        return False
    return json.loads(json.dumps(attrs.get("config"))) == json.loads(json.dumps(recipe))


def convert_episode(cfg: ConvertConfig, ref: EpisodeRef, split: str) -> dict[str, Any]:
    """Convert one source episode into ``OUT/<task>/<split>/ep_<seed>.hdf5`` (skip if done).

    Returns ``dict(task, split, seed, path, steps, skipped)``.
    """
    from toolkit.data.episodes import EpisodeWriter

    ep = RLBenchEpisode(ref, cameras=cfg.cameras)
    seed = episode_seed(ep.ref.episode, ep.variation)
    path = _episode_path(cfg.out, ep.task, split, seed)
    recipe = cfg.recipe()
    result = {"task": ep.task, "split": split, "seed": seed, "path": path, "source": ep.path}
    for other in _other_splits(cfg.out, ep.task, split):
        stale = _episode_path(cfg.out, ep.task, other, seed)
        if os.path.isfile(stale):
            os.remove(stale)  # the split assignment changed since an earlier run
    if _done(path, recipe):
        return {**result, "steps": None, "skipped": True}
    T = len(ep)
    need_keyframes = cfg.keyframes or cfg.target == "next_keyframe"
    # recorded in the file even when dense; raises (naming the pickle) if needed but impossible
    kps = (
        ep.keyframes(cfg.stopping_delta)
        if need_keyframes or ep.joint_velocities is not None
        else []
    )
    plan = plan_steps(T, kps, cfg.keyframes, cfg.target)
    if not plan:
        raise RLBenchDataError(f"{ep.pickle_path}: a demo needs at least 2 observations, found {T}")
    pose, gopen = ep.gripper_pose, ep.gripper_open
    jp, jv = ep.joint_positions, ep.joint_velocities
    low_dim = ep.task_low_dim_state
    sizes = {c: ep.image_size(c) for c in cfg.cameras}
    keyset = set(kps)
    with EpisodeWriter(
        path,
        suite=SUITE,
        task=ep.task,
        seed=seed,
        config=recipe,
        cameras=sizes,
        compression=cfg.compression,
        compression_level=cfg.compression_level,
        depth_dtype=cfg.depth_dtype,
    ) as w:
        for row, (t, target) in enumerate(plan):
            K, E, depth = {}, {}, {}
            for cam in cfg.cameras:
                K[cam], E[cam] = ep.camera(cam, t)
                if cfg.depth or cam in cfg.point_cameras:
                    depth[cam] = ep.depth(cam, t)
            points, mask = cloud_from_depths(
                depth,
                K,
                E,
                cfg.point_cameras,
                cfg.bounds_array,
                cfg.num_points,
                cfg.voxel_size,
                cfg.sample_method,
            )
            extras: dict[str, np.ndarray] = {"point_cloud": points, "point_mask": mask}
            if cfg.masks:
                for cam in cfg.cameras:
                    extras[f"mask_{cam}"] = ep.mask(cam, t)
            if low_dim is not None:
                extras["low_dim_state"] = low_dim[t]
            qpos = jp[t] if jp is not None else pose[t]
            w.add_step(
                rgb={c: ep.rgb(c, t) for c in cfg.cameras} if cfg.rgb else None,
                depth={c: depth[c] for c in cfg.cameras} if cfg.depth else None,
                intrinsics=K,
                extrinsics=E,
                qpos=qpos,
                qvel=jv[t]
                if (jp is not None and jv is not None and jv.shape == jp.shape)
                else None,
                action=pose_action(pose[target], gopen[target], pose[t], cfg.action_mode),
                proprio=proprio_vector(
                    pose[t], gopen[t], None if jp is None else jp[t], cfg.proprio
                ),
                ee_pose=ep.gripper_matrix(t)[None],
                state={
                    "description": ep.instruction,
                    "variation": ep.variation,
                    "step": t,
                    "target_step": target,
                    "keyframe": t in keyset,
                },
                success=row == len(plan) - 1,
                extras=extras,
            )
        w.finish(
            success=True,  # RLBench keeps only demos that succeeded
            extra_attrs={
                "split": split,
                "description": ep.instruction,
                "descriptions": ep.descriptions,
                "variation": ep.variation,
                "rlbench_episode": ep.ref.episode,
                "source": os.path.relpath(ep.path, os.path.abspath(cfg.src))
                if os.path.isdir(cfg.src)
                else ep.path,
                "source_steps": T,
                "source_format": RLBENCH_VERSION,
                "keyframes": [int(k) for k in kps],
                "steps": [int(t) for t, _ in plan],
                "targets": [int(g) for _, g in plan],
            },
        )
    return {**result, "steps": len(plan), "skipped": False}


def _other_splits(out: str, task: str, split: str) -> list[str]:
    folder = os.path.join(out, task)
    if not os.path.isdir(folder):
        return []
    return [d for d in os.listdir(folder) if d != split and os.path.isdir(os.path.join(folder, d))]


def _assign_splits(cfg: ConvertConfig, refs: list[EpisodeRef]) -> list[tuple[EpisodeRef, str]]:
    by_task: dict[str, list[EpisodeRef]] = {}
    for r in refs:
        by_task.setdefault(r.task, []).append(r)
    jobs = []
    for task in sorted(by_task):
        rs = by_task[task]
        if cfg.max_episodes is not None:
            rs = rs[: int(cfg.max_episodes)]
        n_val = min(int(cfg.val), len(rs))
        for i, r in enumerate(rs):
            jobs.append((r, "val" if i >= len(rs) - n_val else cfg.split))
    return jobs


def _job(cfg: ConvertConfig, ref: EpisodeRef, split: str, on_error: str) -> dict[str, Any]:
    try:
        return convert_episode(cfg, ref, split)
    except ToolkitError as exc:
        if on_error == "raise":
            raise
        return {"task": ref.task, "split": split, "source": ref.path, "error": str(exc)}


def _init_worker() -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    torch.set_num_threads(1)


def convert(cfg: ConvertConfig, progress: bool = True, on_error: str = "raise") -> dict[str, Any]:
    """Convert (or complete the conversion of) ``cfg.src`` into ``cfg.out``; return the summary.

    Args:
        on_error: ``"raise"`` stops at the first bad source episode; ``"skip"`` records it in
            ``summary["errors"]`` (source folder -> message) and goes on.
    """
    from toolkit.data.generate import _clean_partials, _Lock

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    start = time.perf_counter()
    refs = find_episodes(cfg.src, cfg.tasks)
    jobs = _assign_splits(cfg, refs)
    os.makedirs(cfg.out, exist_ok=True)
    results: list[dict[str, Any]] = []
    with _Lock(cfg.out):
        removed = _clean_partials(cfg.out)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc="convert rlbench", unit="ep")
        try:
            if cfg.workers <= 1:
                for ref, split in jobs:
                    results.append(_job(cfg, ref, split, on_error))
                    if bar is not None:
                        bar.update(1)
            else:
                import multiprocessing as mp
                from concurrent.futures import ProcessPoolExecutor, as_completed

                ctx = mp.get_context("spawn")
                with ProcessPoolExecutor(
                    cfg.workers, mp_context=ctx, initializer=_init_worker
                ) as pool:
                    futures = [pool.submit(_job, cfg, r, s, on_error) for r, s in jobs]
                    for fut in as_completed(futures):
                        results.append(fut.result())
                        if bar is not None:
                            bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        summary = _summarize(cfg, results, removed, time.perf_counter() - start)
    return summary


def _summarize(cfg: ConvertConfig, results: list[dict], removed: int, seconds: float) -> dict:
    splits: dict[str, dict[str, list[int]]] = {}
    for r in results:
        if "error" not in r:
            splits.setdefault(r["task"], {}).setdefault(r["split"], []).append(r["seed"])
    for per_task in splits.values():
        for seeds in per_task.values():
            seeds.sort()
    written = [r for r in results if "error" not in r and not r["skipped"]]
    summary = {
        "suite": SUITE,
        "src": os.path.abspath(cfg.src),
        "out": os.path.abspath(cfg.out),
        "config": cfg.recipe(),
        "episodes_written": len(written),
        "episodes_skipped": sum(1 for r in results if r.get("skipped")),
        "steps_written": sum(r["steps"] for r in written),
        "temporary_files_removed": removed,
        "errors": {r["source"]: r["error"] for r in results if "error" in r},
        "tasks": {t: {s: len(v) for s, v in per.items()} for t, per in sorted(splits.items())},
        "seconds": round(seconds, 2),
    }
    atomic_write_text(os.path.join(cfg.out, "splits.json"), json.dumps(splits, indent=1))
    atomic_write_text(os.path.join(cfg.out, "summary.json"), json.dumps(summary, indent=1))
    return summary
