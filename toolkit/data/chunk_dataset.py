"""Action-chunk samples for chunking policies (Diffusion Policy, ACT) from episode files.

One sample per (episode, step ``t``): the camera images at ``t``, the proprioception at ``t``
and the next ``chunk_size`` actions ``a_t .. a_{t+C-1}``. Past the episode's end the chunk is
padded with the last action and ``action_is_pad`` marks the padding (ACT masks it out of the
loss; the Diffusion Policy trains on it, which teaches it to hold the final pose).

With ``clamp=dict(...)`` each sample also carries CLAMP's encoder inputs for the frozen CLAMP
tokens: the five re-rendered depth + XYZ views of the step's world cloud
(:func:`toolkit.data.views.render_step_views`, the same function the CLAMP pretraining data
and the policy at rollout time use) and the history of the previous ``history`` actions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from toolkit.data.frames import LazyEpisodeFiles, select_episodes
from toolkit.registry import DATASETS
from toolkit.utils.errors import ConfigError

__all__ = ["ActionChunkDataset", "clamp_inputs", "clamp_views_shape", "resize_images"]

CLAMP_DEFAULTS: dict[str, Any] = dict(
    views="clamp",
    wrist=True,
    grippers=2,
    image_size=64,
    num_points=8192,
    history=10,
    source="depth",
)


def clamp_views_shape(cfg: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """``(V, 4, S, S)`` of the CLAMP views ``cfg`` renders (``grippers`` wrist poses: ALOHA 2)."""
    from toolkit.data.views import render_step_views

    g = int(cfg.get("grippers", 2))
    poses = np.tile(np.eye(4, dtype=np.float32), (g, 1, 1)) if g > 0 else None
    bounds = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    views = render_step_views(
        torch.zeros(1, 3),
        bounds,
        int(cfg["image_size"]),
        1,
        cfg["views"],
        bool(cfg["wrist"]),
        poses,
    )
    return tuple(views.shape)


def resize_images(images: torch.Tensor, size: int | Sequence[int] | None) -> torch.Tensor:
    """``(..., H, W, 3)`` uint8 -> ``(..., 3, h, w)`` uint8, resized (antialiased) when asked.

    Images stay uint8 until the model (a quarter of the memory in DataLoader queues).
    """
    x = torch.as_tensor(images)
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)
    if size is not None:
        hw = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        if tuple(x.shape[-2:]) != hw:
            x = F.interpolate(x.float(), size=hw, mode="bilinear", antialias=True)
            x = x.round().clamp(0, 255).to(torch.uint8)
    return x.reshape(*lead, *x.shape[1:])


def clamp_inputs(
    step: Mapping[str, Any],
    prev_actions: np.ndarray,
    bounds: np.ndarray,
    cfg: Mapping[str, Any],
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """CLAMP encoder inputs of one step: ``views`` (V, 4, S, S), ``actions_hist`` (H, A) (most
    recent first, zero-padded) and ``actions_hist_mask`` (H,).

    ``step``: ``depth`` / ``intrinsics`` / ``extrinsics`` per camera (``source="depth"``) or
    ``points`` (+ ``points_mask``) (``source="points"``), and ``ee_pose`` (G, 4, 4) for the
    wrist views. ``prev_actions``: (h, A) actions before this step, oldest first.
    """
    from toolkit.data.views import render_step_views, step_cloud
    from toolkit.ops.pointcloud import crop_to_bounds

    if cfg["source"] == "depth":
        cloud = step_cloud(step)
    else:
        pts = torch.as_tensor(np.asarray(step["points"]), dtype=torch.float32)
        if step.get("points_mask") is not None:
            pts = pts[torch.as_tensor(np.asarray(step["points_mask"]), dtype=torch.bool)]
        cloud = pts
    cloud = crop_to_bounds(cloud, torch.as_tensor(bounds, dtype=torch.float32))
    grippers = step.get("ee_pose")
    views = render_step_views(
        cloud,
        bounds,
        int(cfg["image_size"]),
        int(cfg["num_points"]),
        cfg["views"],
        bool(cfg["wrist"]),
        None if grippers is None else np.asarray(grippers, dtype=np.float32),
        seed=seed,
    )
    h = int(cfg["history"])
    prev = np.asarray(prev_actions, dtype=np.float32)[-h:][::-1] if h > 0 else prev_actions[:0]
    hist = np.zeros((h, prev_actions.shape[-1]), dtype=np.float32)
    hist[: len(prev)] = prev
    mask = np.zeros(h, dtype=bool)
    mask[: len(prev)] = True
    return {
        "views": views.float(),
        "actions_hist": torch.from_numpy(hist),
        "actions_hist_mask": torch.from_numpy(mask),
    }


@DATASETS.register_module()
class ActionChunkDataset(LazyEpisodeFiles, Dataset):
    """``dict(images, proprio, action, action_is_pad, task_id[, views, actions_hist, ...])``.

    - ``images`` (K, 3, S, S) uint8, the ``cameras`` in order (resized to ``image_size``);
    - ``proprio`` (P,) float32; ``action`` (C, A) float32; ``action_is_pad`` (C,) bool;
    - with ``clamp``: ``views`` (V, 4, s, s) float32, ``actions_hist`` (H, A) float32,
      ``actions_hist_mask`` (H,) bool (see :func:`clamp_inputs`).

    Args:
        data_root / tasks / split / successful_only / episodes: episode selection, as the
            other datasets (``episodes=(start, stop)`` slices each task's list by seed; the
            sample-efficiency sweeps use it).
        cameras: RGB cameras fed to the policy (None: every RGB camera of the episodes; ``[]``:
            none, a proprio-only policy).
        image_size: side the images are resized to (None: as stored).
        chunk_size: C (ALOHA Unleashed: 50).
        frame_stride: keep every k-th step as a sample start.
        clamp: ``dict(views="clamp", wrist=True, grippers=2, image_size=64, num_points=8192,
            history=10, source="depth" | "points")`` adds CLAMP's inputs; None: no CLAMP
            tokens.
    """

    def __init__(
        self,
        data_root: str,
        tasks: Sequence[str] | None = None,
        split: str | None = "train",
        cameras: Sequence[str] | None = None,
        image_size: int | None = None,
        chunk_size: int = 50,
        frame_stride: int = 1,
        successful_only: bool = True,
        episodes: Sequence[int] | None = None,
        clamp: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from toolkit.data.episodes import Episode
        from toolkit.data.views import episode_bounds

        if chunk_size < 1:
            raise ConfigError(f"ActionChunkDataset.chunk_size must be >= 1, got {chunk_size}")
        root, self.tasks, records = select_episodes(
            data_root, tasks, split, successful_only, episodes
        )
        self.data_root, self.image_size, self.chunk_size = root, image_size, chunk_size
        unknown = set(clamp or {}) - set(CLAMP_DEFAULTS)
        if unknown:
            raise ConfigError(
                f"ActionChunkDataset.clamp: unknown keys {sorted(unknown)}; "
                f"known {sorted(CLAMP_DEFAULTS)}"
            )
        self.clamp = None if clamp is None else {**CLAMP_DEFAULTS, **dict(clamp)}
        if self.clamp is not None and self.clamp["source"] not in ("depth", "points"):
            raise ConfigError(
                f"ActionChunkDataset.clamp.source: 'depth' or 'points', got {self.clamp['source']!r}"
            )
        self.paths = [r.path for r in records]
        self.task_names = [r.task for r in records]
        self.cameras: list[str] | None = list(cameras) if cameras is not None else None
        frames, proprio, actions, lengths, self.bounds = [], [], [], [], []
        for j, rec in enumerate(records):
            with Episode(rec.path) as ep:
                have = ep.rgb_cameras
                if self.cameras is None:
                    self.cameras = list(have)
                missing = [c for c in self.cameras if c not in have]
                if missing:
                    raise ConfigError(
                        f"{rec.path}: no RGB images for camera(s) {missing}; it has {have}"
                    )
                if self.clamp is not None and self.clamp["source"] == "depth":
                    if not ep.depth_cameras:
                        raise ConfigError(
                            f"{rec.path}: clamp.source='depth' but the episode has no depth"
                        )
                prop = ep.proprio()
                if prop is None:
                    raise ConfigError(f"{rec.path}: has no observations/proprio")
                act = ep.actions()
                proprio.append(prop.astype(np.float32))
                actions.append(act.astype(np.float32))
                lengths.append(len(act))
                self.bounds.append(np.asarray(episode_bounds(ep.attrs), dtype=np.float64))
                frames += [(j, s) for s in range(0, len(act), frame_stride)]
        if cameras is None and not self.cameras:
            raise ConfigError(f"{root}: the episodes have no RGB camera (pass cameras=[] for none)")
        self.frames = np.asarray(frames, dtype=np.int64)
        # Proprio and actions are small (steps x 14 floats): kept in memory, also what the
        # normalizers are fitted on.
        self._proprio = [torch.from_numpy(p) for p in proprio]
        self._actions = [torch.from_numpy(a) for a in actions]
        self.proprio_dim = int(proprio[0].shape[-1])
        self.action_dim = int(actions[0].shape[-1])

    def __len__(self) -> int:
        return len(self.frames)

    def normalization_data(self) -> dict[str, torch.Tensor]:
        """Every step of the selected episodes (what the policy's normalizers are fitted on)."""
        return {"proprio": torch.cat(self._proprio), "action": torch.cat(self._actions)}

    def chunk(self, j: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C, A)`` actions from ``step`` on (padded with the last one) and the pad mask."""
        act = self._actions[j]
        chunk = act[step : step + self.chunk_size]
        pad = self.chunk_size - len(chunk)
        is_pad = torch.zeros(self.chunk_size, dtype=torch.bool)
        if pad > 0:
            chunk = torch.cat([chunk, act[-1:].expand(pad, -1)])
            is_pad[-pad:] = True
        return chunk, is_pad

    def __getitem__(self, i: int) -> dict[str, Any]:
        j, step = (int(x) for x in self.frames[i])
        f = self._file(j)
        action, is_pad = self.chunk(j, step)
        sample: dict[str, Any] = {
            "proprio": self._proprio[j][step],
            "action": action,
            "action_is_pad": is_pad,
            "task_id": self.tasks.index(self.task_names[j]),
            "episode": os.path.relpath(self.paths[j], self.data_root),
            "step": step,
        }
        if self.cameras:
            images = np.stack([f[f"observations/images/{c}"][step] for c in self.cameras])
            sample["images"] = resize_images(images, self.image_size)
        if self.clamp is not None:
            sample.update(self._clamp_sample(f, j, step, seed=i))
        return sample

    def _clamp_sample(self, f, j: int, step: int, seed: int) -> dict[str, torch.Tensor]:
        obs: dict[str, Any] = {}
        if self.clamp["source"] == "depth":
            cams = list(f["observations/depth"])
            for key in ("depth", "intrinsics", "extrinsics"):
                obs[key] = {c: np.asarray(f[f"observations/{key}/{c}"][step]) for c in cams}
        else:
            obs["points"] = np.asarray(f["extras/point_cloud"][step])
            if "extras/point_mask" in f:
                obs["points_mask"] = np.asarray(f["extras/point_mask"][step])
        if "observations/ee_pose" in f:
            obs["ee_pose"] = np.asarray(f["observations/ee_pose"][step])
        h = int(self.clamp["history"])
        prev = self._actions[j][max(0, step - h) : step].numpy()
        return clamp_inputs(obs, prev, self.bounds[j], self.clamp, seed=seed)
