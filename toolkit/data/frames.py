"""What the frame-level datasets share: choosing episodes, and HDF5 handles per worker."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import h5py

from toolkit.data.episodes import EpisodeIndex, EpisodeRecord
from toolkit.utils.errors import ConfigError

__all__ = ["LazyEpisodeFiles", "select_episodes"]


def select_episodes(
    data_root: str,
    tasks: Sequence[str] | None,
    split: str | None,
    successful_only: bool = True,
    episodes: Sequence[int] | None = None,
) -> tuple[str, list[str], list[EpisodeRecord]]:
    """``(root, tasks, records)``: the episodes of ``tasks`` (None: all found) in sub-folder
    ``split`` (None: any), sorted by (task, seed); ``episodes=(start, stop)`` slices each
    task's list. Clear errors for a missing directory, unknown tasks or an empty selection."""
    if not os.path.isdir(data_root):
        raise ConfigError(
            f"data directory not found: {data_root} (generate it with `toolkit gen ...`)"
        )
    index = EpisodeIndex(data_root)
    root = index.directory
    records = [
        r
        for r in index
        if (split is None or split in os.path.relpath(r.path, root).split(os.sep)[:-1])
        and (r.success or not successful_only)
    ]
    index.close()
    found = sorted({r.task for r in records})
    chosen = list(tasks) if tasks is not None else found
    missing = [t for t in chosen if t not in found]
    if missing:
        raise ConfigError(
            f"{data_root}: no '{split}' episodes for task(s) {missing}; found tasks {found}"
        )
    records = sorted((r for r in records if r.task in chosen), key=lambda r: (r.task, r.seed))
    if episodes is not None:
        lo, hi = int(episodes[0]), int(episodes[1])
        by_task: dict[str, list[EpisodeRecord]] = {}
        for r in records:
            by_task.setdefault(r.task, []).append(r)
        records = [r for t in sorted(by_task) for r in by_task[t][lo:hi]]
    if not records:
        raise ConfigError(
            f"{data_root}: no episodes selected (tasks={tasks}, split={split}, episodes={episodes})"
        )
    return root, chosen, records


class LazyEpisodeFiles:
    """Read-only HDF5 handles of ``self.paths``, opened on first use in each process (h5py
    handles must not cross a DataLoader fork) and never pickled."""

    paths: list[str]

    def _file(self, j: int) -> h5py.File:
        pid = os.getpid()
        if getattr(self, "_pid", None) != pid:
            self._files: dict[int, h5py.File] = {}
            self._pid = pid
        if j not in self._files:
            self._files[j] = h5py.File(self.paths[j], "r")
        return self._files[j]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_files", "_pid")}
