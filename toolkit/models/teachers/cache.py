"""Per-frame cache of image-teacher outputs, so pretraining need not rerun the 2D encoder.

Layout: ``<cache_dir>/<teacher fingerprint>/<episode path relative to data_root, minus .hdf5>
.<camera>.h5`` holding ``embedding`` (T, E) float16, ``feature_map`` (T, C, h, w) float16 and
``done`` (T,) bool, plus attributes that tie the file to its teacher, episode and camera. Files
are only ever replaced whole (temporary file + ``os.replace``), so a reader never sees a
half-written file; a damaged one (truncated copy, disk error) is detected and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import h5py
import numpy as np
import torch

from toolkit.utils.errors import ConfigError, ToolkitError
from toolkit.utils.io import atomic_write

logger = logging.getLogger("toolkit.models.teachers")

CACHE_FORMAT = "toolkit-teacher-cache"
CACHE_VERSION = 1
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
_FP16_MAX = float(np.finfo(np.float16).max)

#: ``rgb_loader(episode_path, camera) -> frames`` where ``len(frames) == T`` and
#: ``frames[slice or sorted int array]`` is (n, H, W, 3) uint8; ``frames.close()`` is called if
#: present. The default reads ``/observations/images/<camera>`` of a toolkit episode file.
RGBLoader = Callable[[str, str], Any]


class EpisodeFrames:
    """The RGB frames of one camera of a toolkit episode file (the default ``rgb_loader``)."""

    def __init__(self, episode_path: str, camera: str):
        from toolkit.data.episodes import Episode  # noqa: PLC0415 - data stack only when used

        self.episode = Episode(episode_path)
        self.camera = camera
        if camera not in self.episode.rgb_cameras:
            self.episode.close()
            raise ConfigError(
                f"{episode_path}: camera {camera!r} has no RGB images; RGB cameras: "
                f"{self.episode.rgb_cameras}"
            )

    def __len__(self) -> int:
        return len(self.episode)

    def __getitem__(self, idx: slice | np.ndarray) -> np.ndarray:
        if isinstance(idx, slice):
            return self.episode.rgb(self.camera, idx)
        idx = np.asarray(idx)
        if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # contiguous: one slice read
            return self.episode.rgb(self.camera, slice(int(idx[0]), int(idx[-1]) + 1))
        return np.stack([self.episode.rgb(self.camera, int(i)) for i in idx])

    def close(self) -> None:
        self.episode.close()


def _close(frames: Any) -> None:
    close = getattr(frames, "close", None)
    if callable(close):
        close()


def _read_rows(ds: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``ds[rows]`` for sorted unique ``rows``: one slice read per contiguous run (h5py point
    selections are about 10x slower than a few slices)."""
    if not len(rows):
        return ds[:0]
    runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    return np.concatenate([ds[int(r[0]) : int(r[-1]) + 1] for r in runs])


def _step_indices(
    steps: int | slice | Sequence[int] | np.ndarray | None, length: int
) -> np.ndarray:
    if steps is None:
        return np.arange(length)
    if isinstance(steps, slice):
        return np.arange(*steps.indices(length))
    idx = np.asarray(steps, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < -length or idx.max() >= length):
        raise IndexError(f"steps {idx.tolist()[:8]} out of range for an episode of {length} steps")
    return idx % max(length, 1)


class TeacherFeatureCache:
    """Cached ``embedding`` / ``feature_map`` of an image teacher, per (episode, step, camera).

    Args:
        cache_dir: Root of all caches; this teacher's files live in ``cache_dir/fingerprint``.
        fingerprint: The teacher's ``fingerprint`` (changes with its weights / config).
        data_root: Episodes are keyed by their path relative to this folder, so a dataset can
            move (with its cache) without invalidating it.

    Safe to pickle into DataLoader workers (it holds only paths; files are opened per call).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        fingerprint: str,
        data_root: str | os.PathLike,
        rgb_loader: RGBLoader | None = None,
    ):
        if not _SAFE.match(fingerprint):
            raise ConfigError(f"fingerprint: expected [A-Za-z0-9_.-]+, got {fingerprint!r}")
        self.cache_dir, self.data_root = os.fspath(cache_dir), os.fspath(data_root)
        self.fingerprint = fingerprint
        self.root = os.path.join(self.cache_dir, fingerprint)
        self.rgb_loader: RGBLoader = rgb_loader or EpisodeFrames
        # (episode, camera) -> (stat, source id) already re-verified in this process
        self._verified: dict[tuple[str, str], tuple[tuple[int, int], str]] = {}
        # cache file -> (stat key, done (T,) bool or None when invalid), see get()
        self._checked: dict[str, tuple[tuple, np.ndarray | None]] = {}

    @classmethod
    def for_teacher(
        cls,
        teacher: Any,
        cache_dir: str | os.PathLike,
        data_root: str | os.PathLike,
        rgb_loader: RGBLoader | None = None,
    ) -> TeacherFeatureCache:
        return cls(cache_dir, teacher.fingerprint, data_root, rgb_loader)

    def __repr__(self) -> str:
        return f"TeacherFeatureCache({self.root!r}, data_root={self.data_root!r})"

    # -- keys -----------------------------------------------------------------------------------

    def relative_path(self, episode_path: str | os.PathLike) -> str:
        """``episode_path`` relative to ``data_root`` (ConfigError when outside it)."""
        for norm in (os.path.abspath, os.path.realpath):
            rel = os.path.relpath(norm(os.fspath(episode_path)), norm(self.data_root))
            if not rel.startswith(os.pardir + os.sep) and rel != os.pardir:
                return rel
        raise ConfigError(
            f"episode {episode_path} is not inside the cache's data_root {self.data_root}"
        )

    def path_for(self, episode_path: str | os.PathLike, camera: str) -> str:
        """The cache file of (episode, camera)."""
        if not _SAFE.match(camera):
            raise ConfigError(f"camera: expected [A-Za-z0-9_.-]+, got {camera!r}")
        stem, ext = os.path.splitext(self.relative_path(episode_path))
        stem = stem if ext in (".hdf5", ".h5") else stem + ext
        return os.path.join(self.root, f"{stem}.{camera}.h5")

    # -- validation -----------------------------------------------------------------------------

    def _problem(self, f: h5py.File, episode_path: str, camera: str) -> str | None:
        """Why the open cache file ``f`` cannot serve (episode, camera); None when it can."""
        a = f.attrs
        expect = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "fingerprint": self.fingerprint,
            "camera": camera,
            "episode": self.relative_path(episode_path),
        }
        for key, want in expect.items():
            got = a.get(key)
            got = got.decode() if isinstance(got, bytes) else got
            if got != want:
                return f"attribute {key}: expected {want!r}, found {got!r}"
        if not self._same_source(a, episode_path, camera):
            return "the episode file changed since its features were cached"
        length = int(a.get("length", -1))
        shapes = {
            k: f[k].shape if isinstance(f.get(k), h5py.Dataset) else None
            for k in ("embedding", "feature_map", "done")
        }
        ndim = {"embedding": 2, "feature_map": 4, "done": 1}
        for k, shape in shapes.items():
            if shape is None or len(shape) != ndim[k] or shape[0] != length:
                return f"dataset {k}: expected {ndim[k]}-D with {length} rows, found {shape}"
        return None

    @staticmethod
    def _stat(episode_path: str) -> tuple[int, int]:
        st = os.stat(episode_path)
        return int(st.st_size), int(st.st_mtime_ns)

    @staticmethod
    def source_id(frames: Any) -> str:
        """Content id of an episode camera: its length and first / middle / last frames."""
        n = len(frames)
        h = hashlib.sha256(f"{n}".encode())
        if n:
            picks = np.array(sorted({0, n // 2, n - 1}))
            arr = np.ascontiguousarray(frames[picks])
            h.update(f"{arr.shape}|{arr.dtype}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()[:32]

    def _same_source(self, attrs: Any, episode_path: str, camera: str) -> bool:
        """Whether the cached file was computed from this episode file.

        Cheap path: the episode's (size, mtime) equal the recorded ones. Otherwise (a copy, a
        touch, or a regenerated episode) the content id is recomputed from three frames and
        compared; a match is remembered for this process.
        """
        if not os.path.isfile(episode_path):
            return True  # a custom loader's key, not a file: nothing to compare
        stat = self._stat(episode_path)
        recorded = (int(attrs.get("source_size", -1)), int(attrs.get("source_mtime_ns", -1)))
        sid = attrs.get("source_id", "")
        sid = sid.decode() if isinstance(sid, bytes) else str(sid)
        key = (os.path.abspath(episode_path), camera)
        if stat == recorded or self._verified.get(key) == (stat, sid):
            return True
        try:
            frames = self.rgb_loader(episode_path, camera)
        except (ToolkitError, KeyError, OSError):  # e.g. regenerated without this camera
            return False
        try:
            same = self.source_id(frames) == sid
        finally:
            _close(frames)
        if same:
            self._verified[key] = (stat, sid)
        return same

    def status(self, episode_path: str | os.PathLike, camera: str) -> tuple[np.ndarray | None, str]:
        """``(done (T,) bool, "ok")`` for a usable file, else ``(None, reason)``."""
        path, episode_path = self.path_for(episode_path, camera), os.fspath(episode_path)
        if not os.path.isfile(path):
            return None, "missing"
        try:
            with h5py.File(path, "r") as f:
                problem = self._problem(f, episode_path, camera)
                if problem is not None:
                    return None, problem
                return f["done"][()].astype(bool), "ok"
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            return None, f"unreadable ({type(exc).__name__}: {exc})"

    # -- reading --------------------------------------------------------------------------------

    def get(
        self,
        episode_path: str | os.PathLike,
        steps: int | slice | Sequence[int] | np.ndarray,
        camera: str,
        dtype: torch.dtype = torch.float32,
    ) -> dict[str, torch.Tensor] | None:
        """Cached features of ``steps``, or None when any of them is not (validly) cached.

        Returns ``dict(embedding (S, E), feature_map (S, C, h, w))`` for a sequence / slice of
        steps, ``(E,)`` / ``(C, h, w)`` for one int step; as ``dtype`` (stored as float16).
        """
        path, episode_path = self.path_for(episode_path, camera), os.fspath(episode_path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        # files are only replaced whole, so (inode, size, mtime) + the episode's stat identify a
        # file already validated by this process: later reads skip the attribute checks
        key = (
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            self._stat(episode_path) if os.path.isfile(episode_path) else None,
        )
        memo = self._checked.get(path)
        if memo is not None and memo[0] == key and memo[1] is None:
            return None  # known bad: warned once already
        try:
            with h5py.File(path, "r") as f:
                if memo is None or memo[0] != key:
                    problem = self._problem(f, episode_path, camera)
                    if problem is not None:
                        logger.warning("teacher cache %s ignored: %s", path, problem)
                        self._checked[path] = (key, None)
                        return None
                    memo = self._checked[path] = (key, f["done"][()].astype(bool))
                done = memo[1]
                idx = _step_indices(steps, len(done))
                uniq, inverse = np.unique(idx, return_inverse=True)
                if not done[uniq].all():
                    return None
                emb, fmap = _read_rows(f["embedding"], uniq), _read_rows(f["feature_map"], uniq)
        except (OSError, KeyError, RuntimeError) as exc:  # damaged chunks surface on read
            logger.warning("teacher cache %s unreadable (%s): ignored", path, exc)
            self._checked[path] = (key, None)
            return None
        out = {
            "embedding": torch.from_numpy(emb[inverse]).to(dtype),
            "feature_map": torch.from_numpy(fmap[inverse]).to(dtype),
        }
        if isinstance(steps, (int, np.integer)):
            out = {k: v[0] for k, v in out.items()}
        return out

    # -- writing --------------------------------------------------------------------------------

    def _write(
        self, path: str, episode_path: str, camera: str, arrays: dict[str, np.ndarray], sid: str
    ) -> None:
        length = len(arrays["done"])
        size, mtime = self._stat(episode_path) if os.path.isfile(episode_path) else (-1, -1)

        def write(tmp: str) -> None:
            with h5py.File(tmp, "w") as f:
                f.attrs.update(
                    format=CACHE_FORMAT,
                    version=CACHE_VERSION,
                    fingerprint=self.fingerprint,
                    camera=camera,
                    episode=self.relative_path(episode_path),
                    length=length,
                    source_size=size,
                    source_mtime_ns=mtime,
                    source_id=sid,
                )
                emb, fmap = arrays["embedding"], arrays["feature_map"]
                f.create_dataset(
                    "embedding", data=emb, chunks=(max(1, min(length, 256)),) + emb.shape[1:]
                )
                # one chunk per step: training reads single frames at random
                f.create_dataset("feature_map", data=fmap, chunks=(1,) + fmap.shape[1:])
                f.create_dataset("done", data=arrays["done"])

        atomic_write(path, write)

    def fill_episode(
        self,
        teacher: Any,
        episode_path: str | os.PathLike,
        camera: str,
        batch_size: int = 32,
        rgb_loader: RGBLoader | None = None,
        steps: Sequence[int] | np.ndarray | None = None,
        force: bool = False,
    ) -> int:
        """Compute and store the teacher's outputs for ``steps`` (default: every step).

        Steps already cached in a valid file are skipped (``force`` recomputes them). A partial
        fill merges into the existing file and rewrites it whole (atomically): do not fill the
        same (episode, camera) from two processes at once. Returns the number of frames computed.
        """
        fp = getattr(teacher, "fingerprint", None)
        if fp != self.fingerprint:
            raise ConfigError(
                f"teacher fingerprint {fp!r} does not match this cache's {self.fingerprint!r}"
            )
        path, episode_path = self.path_for(episode_path, camera), os.fspath(episode_path)
        frames = (rgb_loader or self.rgb_loader)(episode_path, camera)
        try:
            length = len(frames)
            want = np.unique(_step_indices(steps, length))
            done, reason = self.status(episode_path, camera) if not force else (None, "forced")
            if done is not None and len(done) != length:
                done, reason = None, f"length {len(done)} != episode length {length}"
            if done is None and reason not in ("missing", "forced"):
                logger.warning("teacher cache %s is rebuilt: %s", path, reason)
            todo = want if done is None else want[~done[want]]
            if len(todo) == 0:
                return 0
            arrays = None
            if done is not None:  # merge: keep the rows already cached
                try:
                    with h5py.File(path, "r") as f:
                        arrays = {k: f[k][()] for k in ("embedding", "feature_map", "done")}
                except (OSError, KeyError, RuntimeError) as exc:  # damaged data chunks
                    logger.warning("teacher cache %s is rebuilt: unreadable (%s)", path, exc)
                    todo = want
            for start in range(0, len(todo), max(1, int(batch_size))):
                chunk = todo[start : start + batch_size]
                out = teacher(frames[chunk])
                emb = out["embedding"].float().cpu().numpy()
                fmap = out["feature_map"].float().cpu().numpy()
                if max(np.abs(emb).max(initial=0), np.abs(fmap).max(initial=0)) > _FP16_MAX:
                    raise ToolkitError(f"{episode_path}: teacher outputs exceed the float16 range")
                if arrays is None:
                    arrays = {
                        "embedding": np.zeros((length, *emb.shape[1:]), np.float16),
                        "feature_map": np.zeros((length, *fmap.shape[1:]), np.float16),
                        "done": np.zeros(length, bool),
                    }
                arrays["embedding"][chunk] = emb
                arrays["feature_map"][chunk] = fmap
                arrays["done"][chunk] = True
            self._write(path, episode_path, camera, arrays, self.source_id(frames))
            return len(todo)
        finally:
            _close(frames)


def precompute_teacher_cache(
    teacher: Any,
    episode_paths: Iterable[str | os.PathLike],
    camera: str | Sequence[str],
    cache_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    batch_size: int = 32,
    rgb_loader: RGBLoader | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fill the cache of ``teacher`` for every episode and camera (tqdm progress).

    Returns ``dict(cache=TeacherFeatureCache, episodes=N, filled=K, frames=F)``: K (episode,
    camera) files written, F frames computed (0 on a rerun over a complete cache).
    """
    from tqdm import tqdm  # noqa: PLC0415

    cache = TeacherFeatureCache.for_teacher(teacher, cache_dir, data_root)
    paths = [os.fspath(p) for p in episode_paths]
    cams = [camera] if isinstance(camera, str) else list(camera)
    filled = frames = 0
    bar = tqdm(
        total=len(paths) * len(cams),
        desc=f"teacher cache {cache.fingerprint}",
        disable=not progress,
        unit="ep",
    )
    with bar:
        for path in paths:
            for cam in cams:
                n = cache.fill_episode(teacher, path, cam, batch_size, rgb_loader)
                filled, frames = filled + (n > 0), frames + n
                bar.update(1)
                bar.set_postfix(frames=frames)
    logger.info(
        "teacher cache %s: %d episodes, %d files written, %d frames computed",
        cache.root,
        len(paths),
        filled,
        frames,
    )
    return {"cache": cache, "episodes": len(paths), "filled": filled, "frames": frames}
