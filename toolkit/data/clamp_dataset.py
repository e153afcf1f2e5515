"""CLAMP pretraining samples: re-rendered depth+XYZ views, action history and sim-state text.

Per step (CLAMP Sec. III-B, specs.md "CLAMP"): every depth camera's image -> one world-frame
cloud -> workspace crop -> optional voxel grid -> ``num_points`` points (random subset, or
padding that is not rendered) -> five virtual views (overhead, front-left, back-right fixed +
one wrist view per gripper, or the five orthogonal views for the ablation), each
``image_size`` square with channels (D, X, Y, Z); the previous ``history`` actions
(``a_{t-1} .. a_{t-H}``, zero-padded before the episode start, with a mask); and a text built
from the step's privileged sim state (description, each object's name and position normalized
to the workspace, the expert's progress stage).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from toolkit.data.frames import LazyEpisodeFiles, select_episodes
from toolkit.data.views import episode_bounds, step_cloud
from toolkit.registry import DATASETS
from toolkit.utils.errors import ConfigError

__all__ = ["ClampPretrainDataset", "state_text"]


def state_text(state: Mapping[str, Any], bounds: np.ndarray | None = None) -> str:
    """CLAMP's text from one step's sim state.

    ``"<description>. <name> at (x, y, z); ... stage <k>."`` with positions normalized to the
    workspace ``bounds`` (2, 3) (0..1 per axis, two decimals; raw metres without bounds) and the
    stage omitted when the expert reports none.
    """
    parts = [str(state.get("description", "")).strip().rstrip(".")]
    objects = state.get("objects") or {}
    lo = hi = None
    if bounds is not None:
        lo, hi = np.asarray(bounds, dtype=np.float64).reshape(2, 3)
    obj = []
    for name, pos in objects.items():
        p = np.asarray(pos, dtype=np.float64).reshape(-1)[:3]
        if lo is not None:
            p = np.clip((p - lo) / np.maximum(hi - lo, 1e-9), 0.0, 1.0)
        obj.append(f"{name} at ({p[0]:.2f}, {p[1]:.2f}, {p[2]:.2f})")
    text = parts[0] + "."
    if obj:
        text += " " + "; ".join(obj) + "."
    stage = state.get("stage")
    if stage is not None:  # integer progress (ALOHA experts) or a named phase (MetaWorld's)
        text += f" stage {int(stage) if isinstance(stage, (int, np.integer)) else stage}."
    return text


@DATASETS.register_module()
class ClampPretrainDataset(LazyEpisodeFiles, Dataset):
    """Steps of episodes as CLAMP samples ``dict(views, actions, actions_mask, text, ...)``.

    - ``views`` (V, 4, S, S) float32: z-depth and world XYZ per pixel; empty pixels hold
      ``fill_value`` (0), see :func:`toolkit.ops.render.valid_pixels`;
    - ``actions`` (H, A) float32 previous actions, most recent first; ``actions_mask`` (H,) bool
      (False = before the episode start, zero-filled);
    - ``text`` str (:func:`state_text`); ``episode`` (relative path), ``step``, ``task_id``.

    Args:
        data_root: episode directory. tasks / split: as the other datasets (split = sub-folder).
        views: ``"clamp"`` (3 fixed + wrist views) | ``"orthogonal"`` (the standard 5 views).
        wrist: wrist views in the CLAMP rig (False: the "no wrist views" ablation, 3 views).
        image_size: side of each view (paper 224; CPU runs 64).
        num_points: points rendered per step (paper 300k; subsampled at random, or padded).
        voxel_size: voxel grid (m) before sampling (paper 0.001; None: none).
        history: H previous actions. max_depth: depth >= this is background.
        bounds: (2, 3) workspace crop (None: the episode's / suite's, see ``toolkit render``).
        frame_stride: keep every k-th step.
        episodes: ``(start, stop)`` slice of each task's episodes (sorted by seed), e.g.
            ``(0, 6)`` for training and ``(6, 8)`` for a retrieval validation split.
        return_points: also return ``points`` (num_points, 3) and ``points_mask`` (the
            sampled cloud, padded), for a point-cloud encoder in place of the ViT (ablation).
    """

    def __init__(
        self,
        data_root: str,
        tasks: Sequence[str] | None = None,
        split: str | None = "pretrain",
        views: str = "clamp",
        wrist: bool = True,
        image_size: int = 224,
        num_points: int = 300_000,
        voxel_size: float | None = None,
        history: int = 10,
        max_depth: float = 10.0,
        bounds: Sequence[Sequence[float]] | None = None,
        frame_stride: int = 1,
        successful_only: bool = True,
        episodes: Sequence[int] | None = None,
        return_points: bool = False,
    ) -> None:
        super().__init__()
        if views not in ("clamp", "orthogonal"):
            raise ConfigError(f"views must be 'clamp' or 'orthogonal', got {views!r}")
        root, self.tasks, records = select_episodes(
            data_root, tasks, split, successful_only, episodes
        )
        self.return_points = return_points
        self.data_root, self.views, self.wrist = root, views, wrist
        self.image_size, self.num_points, self.voxel_size = image_size, num_points, voxel_size
        self.history, self.max_depth = history, max_depth
        self.paths = [r.path for r in records]
        self.task_names = [r.task for r in records]
        self.bounds: list[np.ndarray] = []
        frames = []
        from toolkit.data.episodes import Episode

        for j, rec in enumerate(records):
            with Episode(rec.path) as ep:
                if not ep.depth_cameras:
                    raise ConfigError(f"{rec.path}: no depth camera; CLAMP re-renders depth")
                b = bounds if bounds is not None else episode_bounds(ep.attrs)
                self.bounds.append(np.asarray(b, dtype=np.float64).reshape(2, 3))
                frames += [(j, s) for s in range(0, len(ep), frame_stride)]
        self.frames = np.asarray(frames, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.frames)

    def _cloud(self, f: h5py.File, step: int, bounds: np.ndarray, seed: int) -> torch.Tensor:
        from toolkit.ops.pointcloud import crop_to_bounds, voxel_downsample

        cams = list(f["observations/depth"])
        obs = {
            key: {c: np.asarray(f[f"observations/{key}/{c}"][step]) for c in cams}
            for key in ("depth", "intrinsics", "extrinsics")
        }
        cloud = step_cloud(obs, self.max_depth)
        cloud = crop_to_bounds(cloud, torch.as_tensor(bounds, dtype=torch.float32))
        if self.voxel_size:
            cloud = voxel_downsample(cloud, self.voxel_size)
        if len(cloud) > self.num_points:
            g = torch.Generator().manual_seed(seed)
            cloud = cloud[torch.randperm(len(cloud), generator=g)[: self.num_points]]
        return cloud

    def render(self, cloud: torch.Tensor, bounds: np.ndarray, grippers: np.ndarray | None):
        """``(V, 4, S, S)`` views of one cloud ``(M, 3)`` (padding is not rendered)."""
        from toolkit.data.views import render_step_views

        return render_step_views(
            cloud, bounds, self.image_size, self.num_points, self.views, self.wrist, grippers
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        import json

        j, step = (int(x) for x in self.frames[i])
        f = self._file(j)
        bounds = self.bounds[j]
        cloud = self._cloud(f, step, bounds, seed=i)
        grippers = None
        if "observations/ee_pose" in f:
            grippers = np.asarray(f["observations/ee_pose"][step], dtype=np.float32)
        views = self.render(cloud, bounds, grippers)
        extra: dict[str, Any] = {}
        if self.return_points:
            pts = torch.zeros(self.num_points, 3)
            pmask = torch.zeros(self.num_points, dtype=torch.bool)
            pts[: len(cloud)], pmask[: len(cloud)] = cloud, True
            extra = {"points": pts, "points_mask": pmask}
        act = f["action"]
        h, a = self.history, act.shape[1]
        lo = max(0, step - h)
        prev = np.asarray(act[lo:step], dtype=np.float32)[::-1]  # a_{t-1}, a_{t-2}, ...
        actions = np.zeros((h, a), dtype=np.float32)
        actions[: len(prev)] = prev
        mask = np.zeros(h, dtype=bool)
        mask[: len(prev)] = True
        raw = f["state"][step] if "state" in f else b"{}"
        state = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        return {
            "views": views.float(),
            "actions": torch.from_numpy(actions),
            "actions_mask": torch.from_numpy(mask),
            "text": state_text(state, bounds),
            "episode": os.path.relpath(self.paths[j], self.data_root),
            "step": step,
            "task_id": self.tasks.index(self.task_names[j]),
            **extra,
        }
