"""Per-frame samples for CLAR-style 3D pretraining: world-frame cloud + the RGB the teacher sees.

One sample = one step of one episode from any suite, read lazily from the episode file (RGB
frames of a few hundred episodes do not fit in memory): the stored world-frame point cloud, the
RGB image of the camera whose depth made the cloud, that camera's intrinsics / extrinsics, a
per-pixel validity map (the back-projected depth lies inside the workspace, so patches that
project onto background or clipped pixels can be masked out of the local alignment) and the
task instruction for the text teacher.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from toolkit.data.episodes import Episode
from toolkit.data.frames import LazyEpisodeFiles, select_episodes
from toolkit.data.language import PARAPHRASES, instructions
from toolkit.data.policy_dataset import point_mask_key
from toolkit.registry import DATASETS
from toolkit.utils.errors import ConfigError

__all__ = ["PointCloudPretrainDataset", "workspace_pixel_mask"]


def workspace_pixel_mask(
    depth: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray, bounds: np.ndarray | None
) -> np.ndarray:
    """Pixels whose depth is finite, positive and (with ``bounds``) back-projects inside them.

    Args:
        depth: (H, W) metric z-depth. K: (3, 3). cam_to_world: (4, 4), OpenCV axes.
        bounds: (2, 3) world-frame [min, max] box or None.

    Returns:
        (H, W) bool.
    """
    h, w = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    if bounds is None:
        return valid
    # numpy twin of toolkit.ops.cameras.unproject_depth (pixel centres at +0.5): this runs in
    # DataLoader workers, where a (H*W, 3) numpy pass is cheaper than a torch round trip.
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    z = np.where(valid, depth, 0.0)
    x = (u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    cam = np.stack([x, y, z], axis=-1)
    world = cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    b = np.asarray(bounds, dtype=np.float64).reshape(2, 3)
    inside = np.all((world >= b[0]) & (world <= b[1]), axis=-1)
    return valid & inside


@DATASETS.register_module()
class PointCloudPretrainDataset(LazyEpisodeFiles, Dataset):
    """Frames of episodes as pretraining samples (CLAR: MAE + global / local teacher alignment).

    Each sample is a dict:

    - ``points`` (N, 3) float32 world-frame cloud (``extras/<points_key>``), ``points_mask``
      (N,) bool;
    - ``rgb`` (3, H, W) uint8 from ``camera`` (the teacher normalizes it);
    - ``intrinsics`` (3, 3), ``extrinsics`` (4, 4) camera-to-world (OpenCV axes), float32;
    - ``pixel_valid`` (H, W) bool (only with ``pixel_valid=True`` and depth stored);
    - ``text`` str: the task instruction (the episode's ``description``, or a random paraphrase
      with ``text="paraphrase"``);
    - ``episode`` str (path relative to ``data_root``), ``step`` int, ``task_id`` int: keys
      of the teacher-feature cache.

    Args:
        data_root: directory of episode files (any layout; ``split`` selects a sub-folder).
        tasks: tasks to keep (None: every task found).
        split: sub-folder name to keep (``"pretrain"`` for ``toolkit gen ... --pretrain N``),
            or None for every episode.
        camera: camera whose RGB goes to the image teacher (must be the one that made the
            cloud, so that patch centres project onto the right pixels). None: the episode's
            first RGB camera.
        points_key: per-step point-cloud extra. num_points: expected N (checked).
        frame_stride: keep every k-th step (consecutive frames are near duplicates).
        max_episodes_per_task: keep the first K episodes of each task (by seed).
        text: ``"description"`` | ``"paraphrase"`` (a random one of the task's paraphrased
            instructions, for tasks that have them; others use their description) | ``"none"``.
        pixel_valid: compute ``pixel_valid`` from the stored depth.
        workspace_bounds: (2, 3) world box for ``pixel_valid`` (None: any positive depth).
        successful_only: skip failed episodes.
    """

    def __init__(
        self,
        data_root: str,
        tasks: Sequence[str] | None = None,
        split: str | None = "pretrain",
        camera: str | None = None,
        points_key: str = "point_cloud",
        num_points: int | None = None,
        frame_stride: int = 1,
        max_episodes_per_task: int | None = None,
        text: str = "description",
        pixel_valid: bool = True,
        workspace_bounds: Sequence[Sequence[float]] | None = None,
        successful_only: bool = True,
    ) -> None:
        super().__init__()
        if frame_stride < 1:
            raise ConfigError(f"frame_stride must be >= 1, got {frame_stride}")
        if text not in ("description", "paraphrase", "none"):
            raise ConfigError(f"text must be 'description', 'paraphrase' or 'none', got {text!r}")
        episodes = None if max_episodes_per_task is None else (0, max_episodes_per_task)
        root, self.tasks, records = select_episodes(
            data_root, tasks, split, successful_only, episodes
        )
        self.data_root = root
        self.points_key, self.text_mode, self.pixel_valid = points_key, text, pixel_valid
        self.bounds = None if workspace_bounds is None else np.asarray(workspace_bounds, float)
        self.paths: list[str] = []
        self.cameras: list[str] = []
        self.descriptions: list[str] = []
        self.has_depth: list[bool] = []
        frames: list[tuple[int, int]] = []
        for rec in records:
            if points_key not in rec.extras:
                raise ConfigError(
                    f"{rec.path}: has no per-step extra '{points_key}' (found {rec.extras})"
                )
            ep = Episode(rec.path)
            rgb_cams = ep.rgb_cameras
            cam = camera or (rgb_cams[0] if rgb_cams else None)
            if cam is None or cam not in rgb_cams:
                ep.close()
                raise ConfigError(
                    f"{rec.path}: camera '{camera}' has no RGB (RGB cameras: {rgb_cams}); "
                    f"the image teacher needs RGB from the camera that made the cloud"
                )
            n = int(ep._ds(f"extras/{points_key}").shape[1])
            if num_points is not None and n != num_points:
                ep.close()
                raise ConfigError(
                    f"{rec.path}: extras/{points_key} has {n} points per step, "
                    f"config expects num_points={num_points}"
                )
            j = len(self.paths)
            self.paths.append(rec.path)
            self.cameras.append(cam)
            self.has_depth.append(cam in ep.depth_cameras)
            self.descriptions.append(str(ep.attrs.get("description", rec.task)))
            frames += [(j, s) for s in range(0, len(ep), frame_stride)]
            ep.close()
        self.task_names = [r.task for r in records]
        # tasks without a paraphrase list fall back to their episodes' own description
        self._paraphrases = {t: instructions(t) for t in set(self.task_names) if t in PARAPHRASES}
        self.frames = np.asarray(frames, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.frames)

    def _text(self, j: int) -> str:
        if self.text_mode == "none":
            return ""
        if self.text_mode == "paraphrase":
            options = self._paraphrases.get(self.task_names[j], (self.descriptions[j],))
            return options[int(torch.randint(len(options), ()))]
        return self.descriptions[j]

    def __getitem__(self, i: int) -> dict[str, Any]:
        j, step = (int(x) for x in self.frames[i])
        f, cam = self._file(j), self.cameras[j]
        points = np.asarray(f[f"extras/{self.points_key}"][step], dtype=np.float32)
        mask_key = point_mask_key(self.points_key, list(f["extras"].keys()))
        if mask_key is not None:
            mask = np.asarray(f[f"extras/{mask_key}"][step], dtype=bool)
        else:
            mask = np.ones(len(points), dtype=bool)
        K = np.asarray(f[f"observations/intrinsics/{cam}"][step], dtype=np.float64)
        T = np.asarray(f[f"observations/extrinsics/{cam}"][step], dtype=np.float64)
        rgb = np.asarray(f[f"observations/images/{cam}"][step])
        sample: dict[str, Any] = {
            "points": torch.from_numpy(points),
            "points_mask": torch.from_numpy(mask),
            "rgb": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
            "intrinsics": torch.from_numpy(K.astype(np.float32)),
            "extrinsics": torch.from_numpy(T.astype(np.float32)),
            "text": self._text(j),
            "episode": os.path.relpath(self.paths[j], self.data_root),
            "step": step,
            "task_id": self.tasks.index(self.task_names[j]),
        }
        if self.pixel_valid:
            if self.has_depth[j]:
                depth = np.asarray(f[f"observations/depth/{cam}"][step], dtype=np.float64)
                valid = workspace_pixel_mask(depth, K, T, self.bounds)
            else:
                valid = np.ones(rgb.shape[:2], dtype=bool)
            sample["pixel_valid"] = torch.from_numpy(valid)
        return sample
