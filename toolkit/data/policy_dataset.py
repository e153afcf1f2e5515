"""Per-step behaviour-cloning samples (point cloud, proprio, action) from episode files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from toolkit.data.episodes import EpisodeIndex
from toolkit.data.language import LanguageTable, build_language_table, check_language_cfg
from toolkit.registry import DATASETS
from toolkit.utils.errors import ConfigError


def point_mask_key(points_key: str, extras: Sequence[str]) -> str | None:
    """Name of the per-step validity mask stored next to ``points_key`` (None if absent).

    Generators write ``<points_key>_mask`` or, as the MetaWorld generator does for
    ``point_cloud``, ``point_mask``.
    """
    for key in (f"{points_key}_mask", points_key.replace("cloud", "mask")):
        if key != points_key and key in extras:
            return key
    return None


def _in_split(path: str, root: str, split: str | None) -> bool:
    if split is None:
        return True
    return split in os.path.relpath(path, root).split(os.sep)[:-1]


@DATASETS.register_module()
class PointCloudBCDataset(Dataset):
    """Steps of successful episodes as ``dict(points, points_mask, proprio, action, task_id)``.

    With ``language=dict(...)`` every sample also has ``lang`` (D,) float32: the feature of one
    of its task's instructions, drawn uniformly from the task's training instructions at each
    ``__getitem__`` with torch's global RNG (seeded by mmengine's ``randomness.seed``, re-seeded
    per DataLoader worker), so one step is seen under different paraphrases across epochs.
    See :mod:`toolkit.data.language`.

    Point clouds come precomputed from the episodes' ``extras/<points_key>`` (the generators
    store the cropped, downsampled world-frame cloud per step), so a training step does no
    rendering, cropping or FPS. Small datasets (the CLAR protocol: 25 demos x 200 steps per task)
    are loaded into memory once.

    The directory layout is ``<data_root>/<task>/<split>/*.h5`` as written by
    ``toolkit gen datasets/metaworld_clar.py``; ``split`` selects the sub-folder.

    Args:
        data_root: dataset directory.
        tasks: tasks to use (``None``: all found). Asking for a task that has no episodes fails.
        split: ``"train"`` / ``"val"`` / ``None`` (every episode).
        points_key: name of the per-step point-cloud extra.
        num_points: expected N; a dataset with another N fails with a clear message.
        suite: expected suite attribute (``None``: any, but all episodes must agree).
        max_episodes_per_task: keep only the first K episodes of each task (by seed).
        successful_only: skip episodes whose ``success`` attribute is false.
        language: ``dict(backend="minilm" | "hash", paraphrases=True, held_out=0,
            fallback=True)`` adds ``lang`` to each sample (``None``: no language). Features are
            cached in ``<data_root>/.toolkit_language/``.
    """

    def __init__(
        self,
        data_root: str,
        tasks: Sequence[str] | None = None,
        split: str | None = "train",
        points_key: str = "point_cloud",
        num_points: int | None = None,
        suite: str | None = None,
        max_episodes_per_task: int | None = None,
        successful_only: bool = True,
        progress: bool = False,
        language: dict | None = None,
    ) -> None:
        super().__init__()
        if not os.path.isdir(data_root):
            raise ConfigError(
                f"dataset directory not found: {data_root} (generate it with `toolkit gen ...`)"
            )
        self.data_root = data_root
        index = EpisodeIndex(data_root)
        root = index.directory
        records = [r for r in index if _in_split(r.path, root, split)]
        if successful_only:
            records = [r for r in records if r.success]
        found = sorted({r.task for r in records})
        self.tasks = list(tasks) if tasks is not None else found
        missing = [t for t in self.tasks if t not in found]
        if missing:
            raise ConfigError(
                f"{data_root}: no {split or ''} episodes for task(s) {missing}; found tasks {found}"
            )
        suites = {r.suite for r in records if r.task in self.tasks}
        if suite is not None and suites - {suite}:
            raise ConfigError(f"{data_root}: expected suite '{suite}', found {sorted(suites)}")
        if len(suites) > 1:
            raise ConfigError(f"{data_root}: episodes mix suites {sorted(suites)}")
        # before loading any episode: an unknown task or a missing text backend fails fast
        lang_cfg = check_language_cfg(language, f"{data_root}: PointCloudBCDataset.language")
        self.language: LanguageTable | None = None
        if lang_cfg is not None:
            self.language = build_language_table(self.tasks, cache_dir=data_root, **lang_cfg)
            self._lang_features = torch.from_numpy(self.language.features)  # (T, K, D)
            self._lang_train_ids = torch.as_tensor(self.language.train_ids)
        by_task: dict[str, list] = {t: [] for t in self.tasks}
        for r in sorted(records, key=lambda r: (r.task, r.seed)):
            if r.task in by_task:
                by_task[r.task].append(r)
        if max_episodes_per_task is not None:
            by_task = {t: rs[:max_episodes_per_task] for t, rs in by_task.items()}
        self.records = [r for t in self.tasks for r in by_task[t]]

        position = {r.path: j for j, r in enumerate(index)}
        points, masks, proprio, actions, task_ids, ep_ids = [], [], [], [], [], []
        it = tqdm(self.records, desc=f"loading {split or 'all'} episodes", disable=not progress)
        for j, rec in enumerate(it):
            if points_key not in rec.extras:
                raise ConfigError(
                    f"{rec.path}: has no per-step extra '{points_key}' (found {rec.extras})"
                )
            ep = index.episode(position[rec.path])
            pts = ep.extra(points_key).astype(np.float32)
            if num_points is not None and pts.shape[1] != num_points:
                raise ConfigError(
                    f"{rec.path}: extras/{points_key} has {pts.shape[1]} points per step, "
                    f"config expects num_points={num_points}"
                )
            if points and pts.shape[1:] != points[0].shape[1:]:
                raise ConfigError(
                    f"{rec.path}: extras/{points_key} shape {pts.shape[1:]} differs from "
                    f"{self.records[0].path}: {points[0].shape[1:]}"
                )
            mask_key = point_mask_key(points_key, rec.extras)
            mask = (
                ep.extra(mask_key).astype(bool)
                if mask_key is not None
                else np.ones(pts.shape[:2], dtype=bool)
            )
            prop = ep.proprio()
            if prop is None:
                raise ConfigError(f"{rec.path}: has no proprio dataset")
            points.append(pts)
            masks.append(mask)
            proprio.append(prop.astype(np.float32))
            actions.append(ep.actions().astype(np.float32))
            task_ids.append(np.full(len(pts), self.tasks.index(rec.task)))
            ep_ids.append(np.full(len(pts), j))
        if not points:
            raise ConfigError(
                f"{data_root}: no episodes selected (tasks={self.tasks}, split={split})"
            )
        self.points = torch.from_numpy(np.concatenate(points))
        self.points_mask = torch.from_numpy(np.concatenate(masks))
        self.proprio = torch.from_numpy(np.concatenate(proprio))
        self.actions = torch.from_numpy(np.concatenate(actions))
        self.task_ids = torch.from_numpy(np.concatenate(task_ids))
        self.episode_ids = torch.from_numpy(np.concatenate(ep_ids))
        index.close()

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = {
            "points": self.points[i],
            "points_mask": self.points_mask[i],
            "proprio": self.proprio[i],
            "action": self.actions[i],
            "task_id": self.task_ids[i],
        }
        if self.language is not None:
            ids = self._lang_train_ids
            k = ids[torch.randint(len(ids), ()).item()] if len(ids) > 1 else ids[0]
            sample["lang"] = self._lang_features[self.task_ids[i], k]
        return sample

    def normalization_data(self) -> dict[str, torch.Tensor]:
        """What the policy's normalizers are fitted on: every training step."""
        return {"proprio": self.proprio, "action": self.actions}
