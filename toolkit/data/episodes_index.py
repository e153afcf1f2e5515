"""A directory of episode files as one indexable sequence of steps, with a cached manifest.

The manifest (lengths, tasks, cameras, ... of every episode) is built once by opening each file,
then cached as JSON: in the directory (``.toolkit_episode_index.json``) or, where the directory
is read-only, under ``$TOOLKIT_CACHE_DIR`` (default ``~/.cache/toolkit``). A later open only
lists and stats the files: an entry is reused while the file's name, size and mtime match, and
only new or changed files are opened again.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.data.episodes_check import open_episode_file
from toolkit.data.episodes_reader import Episode
from toolkit.data.episodes_schema import EPISODE_SUFFIXES, SCHEMA_VERSION, record_from_layout
from toolkit.utils.errors import EpisodeFileError

MANIFEST_NAME = ".toolkit_episode_index.json"
MANIFEST_FORMAT = "toolkit-episode-index"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode's summary. Fields read as attributes or items (``r.task == r["task"]``)."""

    path: str
    suite: str
    task: str
    seed: int
    length: int
    success: bool
    cameras: list[str]
    image_size: dict[str, list[int]] = field(default_factory=dict)
    action_dim: int = 0
    qpos_dim: int = 0
    extras: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


def find_episode_files(directory: str) -> list[str]:
    """Episode files under ``directory`` (recursive, sorted; hidden entries and writers'
    ``.partial`` temporary files skipped), as paths relative to ``directory``."""
    found: list[str] = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    walk(entry.path, f"{prefix}{entry.name}/")
                elif entry.name.endswith(EPISODE_SUFFIXES):
                    found.append(prefix + entry.name)

    walk(directory, "")
    return sorted(found)


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _summarize(path: str) -> dict[str, Any]:
    """Manifest entry of one file: its record, or the error that makes it unreadable."""
    try:
        f, layout = open_episode_file(path)
    except EpisodeFileError as exc:
        return {"error": str(exc)}
    f.close()
    record = record_from_layout(layout, path)
    record.pop("path")
    return {"record": record}


def cache_dir() -> str:
    return os.environ.get("TOOLKIT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "toolkit"
    )


class EpisodeIndex:
    """All episodes under ``directory``; ``len(idx)`` is the total number of steps.

    Args:
        directory: folder of episode files (searched recursively).
        cache: read / write the cached manifest (``False``: always open every file).
        on_error: ``"raise"`` (default): an unreadable file raises
            :class:`~toolkit.utils.errors.EpisodeFileError` naming every bad file;
            ``"skip"``: leave bad files out (see ``idx.errors``).
        max_open: open HDF5 handles kept by :meth:`episode` (least recently used closed first).
        workers: processes used to open new files when building the manifest (0: none).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        cache: bool = True,
        *,
        on_error: str = "raise",
        max_open: int = 32,
        workers: int = 0,
    ):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        self.directory = os.path.realpath(os.fspath(directory))
        if not os.path.isdir(self.directory):
            raise EpisodeFileError(
                f"{self.directory}: expected a directory of episode files, "
                f"found {'a file' if os.path.exists(self.directory) else 'nothing'}"
            )
        self.max_open = max_open
        entries = self._load_manifest(cache, workers)
        self.errors = {
            os.path.join(self.directory, r): e["error"] for r, e in entries.items() if "error" in e
        }
        if self.errors and on_error == "raise":
            shown = "\n".join(list(self.errors.values())[:10])
            more = f"\n... and {len(self.errors) - 10} more" if len(self.errors) > 10 else ""
            raise EpisodeFileError(
                f"{len(self.errors)} unreadable episode file(s) under {self.directory} (run "
                f"`toolkit data check {self.directory}`, or pass on_error='skip'):\n{shown}{more}"
            )
        records = [
            EpisodeRecord(path=os.path.join(self.directory, rel), **e["record"])
            for rel, e in entries.items()
            if "record" in e
        ]
        self._set_records(records)

    # -- manifest -------------------------------------------------------------------------------

    def manifest_paths(self) -> list[str]:
        """Where the manifest is looked for: in the directory, then in the user cache."""
        digest = hashlib.sha1(self.directory.encode()).hexdigest()[:16]
        return [
            os.path.join(self.directory, MANIFEST_NAME),
            os.path.join(cache_dir(), "episode_index", f"{digest}.json"),
        ]

    def _load_manifest(self, cache: bool, workers: int) -> dict[str, dict[str, Any]]:
        rels = find_episode_files(self.directory)
        stats = {rel: _stat_key(os.path.join(self.directory, rel)) for rel in rels}
        cached: dict[str, dict[str, Any]] = {}
        if cache:
            for path in self.manifest_paths():
                cached = self._read_manifest(path)
                if cached:
                    break
        entries, todo = {}, []
        for rel in rels:
            old = cached.get(rel)
            if old is not None and old.get("stat") == stats[rel]:
                entries[rel] = old
            else:
                todo.append(rel)
        if todo:
            paths = [os.path.join(self.directory, rel) for rel in todo]
            if workers and len(todo) > 1:
                with ProcessPoolExecutor(workers) as pool:
                    results = list(pool.map(_summarize, paths, chunksize=64))
            else:
                results = [_summarize(p) for p in paths]
            for rel, result in zip(todo, results):
                entries[rel] = {"stat": stats[rel], **result}
            entries = {rel: entries[rel] for rel in rels}
        if cache and (todo or len(cached) != len(entries)):
            self._write_manifest(entries)
        return entries

    @staticmethod
    def _read_manifest(path: str) -> dict[str, dict[str, Any]]:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        ok = (
            isinstance(data, dict)
            and data.get("format") == MANIFEST_FORMAT
            and data.get("version") == MANIFEST_VERSION
            and data.get("schema_version") == SCHEMA_VERSION
        )
        return data.get("files", {}) if ok else {}

    def _write_manifest(self, entries: dict[str, dict[str, Any]]) -> None:
        data = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "schema_version": SCHEMA_VERSION,
            "files": entries,
        }
        text = json.dumps(data, separators=(",", ":"))
        for path in self.manifest_paths():
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, path)
                self.manifest_path = path
                return
            except OSError:  # read-only directory: try the user cache
                if os.path.exists(tmp):
                    os.remove(tmp)
        self.manifest_path = None

    # -- records and steps ----------------------------------------------------------------------

    def _set_records(self, records: list[EpisodeRecord]) -> None:
        self.episodes: list[EpisodeRecord] = records
        self._ends = list(itertools.accumulate(r.length for r in records))
        self._open: OrderedDict[int, Episode] = OrderedDict()

    def __len__(self) -> int:
        """Total number of steps over all episodes."""
        return self._ends[-1] if self._ends else 0

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def tasks(self) -> list[str]:
        return sorted({r.task for r in self.episodes})

    def __iter__(self) -> Iterator[EpisodeRecord]:
        return iter(self.episodes)

    def locate(self, global_step: int) -> tuple[int, int]:
        """``(episode_idx, step)`` of the ``global_step``-th step of the concatenated episodes."""
        n = len(self)
        if not -n <= global_step < n:
            raise IndexError(
                f"step {global_step} out of range for {n} steps "
                f"({self.num_episodes} episodes) under {self.directory}"
            )
        global_step %= n
        j = bisect.bisect_right(self._ends, global_step)
        return j, global_step - (self._ends[j - 1] if j else 0)

    def episode(self, j: int) -> Episode:
        """The ``j``-th episode, opened lazily (handles cached, least recently used closed)."""
        ep = self._open.get(j)
        if ep is not None:
            self._open.move_to_end(j)
            return ep
        ep = self._open[j] = Episode(self.episodes[j].path)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)[1].close()
        return ep

    def step(self, global_step: int, keys: Iterable[str] | None = None) -> dict[str, Any]:
        """``episode(j).step(i)`` for the ``global_step``-th step."""
        j, i = self.locate(global_step)
        return self.episode(j).step(i, keys)

    def filter(
        self, predicate: Callable[[EpisodeRecord], bool] | None = None, **fields: Any
    ) -> EpisodeIndex:
        """The episodes whose record matches every ``field=value`` (a list / tuple / set value
        matches any member) and ``predicate``, as a new index (no file is opened)."""
        unknown = set(fields) - set(EpisodeRecord.__dataclass_fields__)
        if unknown:
            raise KeyError(
                f"filter: unknown fields {sorted(unknown)}; "
                f"known: {list(EpisodeRecord.__dataclass_fields__)}"
            )

        def match(r: EpisodeRecord) -> bool:
            for key, want in fields.items():
                value = getattr(r, key)
                if isinstance(want, (list, tuple, set, frozenset)):
                    if value not in want:
                        return False
                elif value != want:
                    return False
            return predicate is None or bool(predicate(r))

        sub = object.__new__(EpisodeIndex)
        sub.directory, sub.max_open, sub.errors = self.directory, self.max_open, self.errors
        sub.manifest_path = getattr(self, "manifest_path", None)
        sub._set_records([r for r in self.episodes if match(r)])
        return sub

    def summary(self) -> dict[str, Any]:
        """Per-task episode / step counts and success rates, cameras and suites."""
        tasks: dict[str, dict[str, Any]] = {}
        for r in self.episodes:
            t = tasks.setdefault(
                r.task, {"suite": r.suite, "episodes": 0, "steps": 0, "successes": 0}
            )
            t["episodes"] += 1
            t["steps"] += r.length
            t["successes"] += int(r.success)
        for t in tasks.values():
            t["success_rate"] = t.pop("successes") / t["episodes"]
        return {
            "directory": self.directory,
            "episodes": self.num_episodes,
            "steps": len(self),
            "suites": sorted({r.suite for r in self.episodes}),
            "cameras": sorted({c for r in self.episodes for c in r.cameras}),
            "tasks": dict(sorted(tasks.items())),
            "unreadable": len(self.errors),
        }

    def records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.episodes]

    def close(self) -> None:
        for ep in self._open.values():
            ep.close()
        self._open.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # handles are per process
        return state

    def __repr__(self) -> str:
        return (
            f"EpisodeIndex({self.directory!r}, episodes={self.num_episodes}, steps={len(self)}, "
            f"tasks={len(self.tasks)})"
        )
