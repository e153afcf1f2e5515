"""Episode files: writer, reader, checker, directory index and `toolkit data`."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from toolkit.cli import main as cli
from toolkit.data.episodes import (
    SCHEMA_VERSION,
    Episode,
    EpisodeFileError,
    EpisodeIndex,
    EpisodeWriter,
    check_episode,
)


def make_steps(T: int, *, h: int = 8, w: int = 10, seed: int = 0) -> list[dict]:
    """``T`` steps of every field: camera 'corner' (RGB + depth), 'wrist' (depth only)."""
    rng = np.random.default_rng(seed)
    steps = []
    for t in range(T):
        pose = np.eye(4)
        pose[:3, 3] = rng.normal(size=3)
        k = np.array([[20.0 + t, 0, w / 2], [0, 20.0, h / 2], [0, 0, 1]])
        steps.append(
            dict(
                rgb={"corner": rng.integers(0, 256, (h, w, 3), dtype=np.uint8)},
                depth={
                    "corner": rng.uniform(0.1, 3, (h, w)).astype(np.float32),
                    "wrist": rng.uniform(0.1, 3, (h, w)).astype(np.float32),
                },
                intrinsics={"corner": k, "wrist": k * 2},
                extrinsics={"corner": pose, "wrist": pose @ pose},
                qpos=rng.normal(size=7),
                action=rng.normal(size=4).astype(np.float32),
                proprio=rng.normal(size=9),
                ee_pose=np.stack([pose, np.eye(4)]),
                state={
                    "task": "hammer the nail",
                    "stage": t // 3,
                    "objects": {"hammer": rng.normal(size=3)},
                },
                success=t >= T - 2,
                extras={"point_cloud": rng.normal(size=(16, 3)).astype(np.float32)},
            )
        )
    return steps


def write_episode(path, T: int = 10, *, task: str = "hammer", seed: int = 3, steps=None, **kw):
    steps = make_steps(T, seed=seed) if steps is None else steps
    with EpisodeWriter(
        path,
        suite="metaworld",
        task=task,
        seed=seed,
        config={"cameras": ["corner", "wrist"], "fps": 10},
        cameras={"corner": (8, 10), "wrist": (8, 10)},
        chunk_steps=4,
        **kw,
    ) as w:
        for s in steps:
            w.add_step(**s)
        w.finish(extra_attrs={"fovy": {"corner": 45.0}, "generator": "test"})
    return steps


def write_tiny(path, T: int = 3, task: str = "reach", success: bool = True) -> None:
    with EpisodeWriter(
        path,
        suite="metaworld",
        task=task,
        seed=0,
        cameras={"c": (2, 2)},
        fsync=False,
        meta_block_size=4096,  # tiny files: no need to reserve room for big chunk indices
    ) as w:
        for t in range(T):
            w.add_step(
                depth={"c": np.full((2, 2), t, np.float32)},
                intrinsics={"c": np.eye(3)},
                extrinsics={"c": np.eye(4)},
                qpos=np.zeros(2),
                action=np.full(2, t),
            )
        w.finish(success=success)


@pytest.fixture
def episode(tmp_path):
    path = tmp_path / "ep.hdf5"
    steps = write_episode(path)
    return path, steps


# -- round trip -------------------------------------------------------------------------------


def test_round_trip_values_exact(episode):
    path, steps = episode
    with Episode(path) as ep:
        assert len(ep) == 10
        assert ep.cameras == ["corner", "wrist"]
        assert ep.rgb_cameras == ["corner"] and ep.depth_cameras == ["corner", "wrist"]
        a = ep.attrs
        assert (a["suite"], a["task"], a["seed"], a["length"]) == ("metaworld", "hammer", 3, 10)
        assert a["success"] is True and a["schema_version"] == SCHEMA_VERSION
        assert a["config"] == {"cameras": ["corner", "wrist"], "fps": 10}
        assert a["fovy"] == {"corner": 45.0} and a["generator"] == "test"
        for t, want in enumerate(steps):
            got = ep.step(t)
            np.testing.assert_array_equal(got["rgb"]["corner"], want["rgb"]["corner"])
            assert set(got["rgb"]) == {"corner"}
            for key in ("depth", "intrinsics", "extrinsics"):
                for cam in ("corner", "wrist"):
                    np.testing.assert_array_equal(got[key][cam], want[key][cam])
            for key in ("qpos", "action", "proprio", "ee_pose"):
                np.testing.assert_array_equal(got[key], want[key])
                assert got[key].dtype == np.asarray(want[key]).dtype
            assert got["state"]["stage"] == want["state"]["stage"]
            assert got["state"]["objects"]["hammer"] == want["state"]["objects"]["hammer"].tolist()
            assert got["success"] is want["success"]
            np.testing.assert_array_equal(
                got["extras"]["point_cloud"], want["extras"]["point_cloud"]
            )
        np.testing.assert_array_equal(ep.actions(), np.stack([s["action"] for s in steps]))
        np.testing.assert_array_equal(ep.qpos(), np.stack([s["qpos"] for s in steps]))
        np.testing.assert_array_equal(ep.proprio(), np.stack([s["proprio"] for s in steps]))
        np.testing.assert_array_equal(ep.extra("point_cloud")[4], steps[4]["extras"]["point_cloud"])
        np.testing.assert_array_equal(ep.rgb("corner", -1), steps[-1]["rgb"]["corner"])
        np.testing.assert_array_equal(ep.depth("wrist", 2), steps[2]["depth"]["wrist"])
        assert ep.rgb("corner", slice(2, 5)).shape == (3, 8, 10, 3)
        np.testing.assert_array_equal(ep.extrinsics("wrist")[1], steps[1]["extrinsics"]["wrist"])
        assert ep.successes().tolist() == [s["success"] for s in steps]
        assert ep.step(0, keys=["action"]).keys() == {"step", "action"}
        with pytest.raises(IndexError, match="out of range"):
            ep.step(10)
        with pytest.raises(KeyError, match="no RGB"):
            ep.rgb("wrist", 0)
        with pytest.raises(KeyError, match="point_cloud"):
            ep.extra("nope")
    assert check_episode(path) == []


def test_optional_fields_absent(tmp_path):
    path = tmp_path / "ep.hdf5"
    write_tiny(path)
    with Episode(path) as ep:
        s = ep.step(1)
        assert s["proprio"] is None and s["ee_pose"] is None
        assert s["state"] == {} and s["rgb"] == {} and s["extras"] == {}
        assert ep.proprio() is None and ep.states() == [{}, {}, {}]


def test_aloha_style_reader_reads_our_files(episode):
    path, steps = episode
    with h5py.File(path, "r") as root:  # what ALOHA / ACT's loaders do
        assert root.attrs["sim"]
        qpos = root["/observations/qpos"][()]
        qvel = root["/observations/qvel"][()]
        image = root["/observations/images/corner"][3]
        action = root["/action"][()]
    assert qpos.shape == (10, 7) and qvel.shape == (10, 7) and not qvel.any()
    np.testing.assert_array_equal(image, steps[3]["rgb"]["corner"])
    np.testing.assert_array_equal(action, np.stack([s["action"] for s in steps]))


def test_pickle_and_fork_reopen(episode):
    path, steps = episode
    ep = Episode(path)
    ep.step(0)
    clone = pickle.loads(pickle.dumps(ep))
    assert clone._file is None  # handle dropped, re-opened lazily
    np.testing.assert_array_equal(clone.step(5)["action"], steps[5]["action"])
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=lambda: queue.put(ep.step(7)["qpos"].tolist()))
    child.start()
    got = queue.get(timeout=20)
    child.join(20)
    assert child.exitcode == 0
    np.testing.assert_array_equal(got, steps[7]["qpos"])
    ep.close()
    clone.close()


# -- writer -----------------------------------------------------------------------------------


def test_streaming_holds_at_most_one_chunk(tmp_path):
    path = tmp_path / "long.hdf5"
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    depth = rng.random((64, 64), dtype=np.float32)
    per_step = img.nbytes + depth.nbytes
    with EpisodeWriter(
        path, suite="s", task="t", seed=0, cameras={"c": (64, 64)}, chunk_steps=8, compression=None
    ) as w:
        for t in range(500):
            if t == 300:  # memory held while writing 100 more steps: about one chunk, not 100 steps
                tracemalloc.start()
            w.add_step(
                rgb={"c": img.copy()},
                depth={"c": depth.copy()},
                intrinsics={"c": np.eye(3)},
                extrinsics={"c": np.eye(4)},
                qpos=np.zeros(3),
                action=np.full(2, t, np.float32),
            )
            assert w._buffered < 8  # flushed every chunk_steps steps
            on_disk = w._file["action"].shape[0] if "action" in w._file else 0
            assert on_disk == len(w) - w._buffered  # the rest is already in the file
            if t == 400:
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
        w.finish()
    assert peak < 20 * per_step, (peak, per_step)
    with Episode(path) as ep:
        assert len(ep) == 500 and ep.actions()[499, 0] == 499


def test_exception_inside_with_leaves_no_file(tmp_path):
    path = tmp_path / "ep.hdf5"
    with pytest.raises(RuntimeError, match="boom"):
        with EpisodeWriter(path, suite="s", task="t", seed=0) as w:
            w.add_step(
                depth={"c": np.ones((2, 2))},
                intrinsics={"c": np.eye(3)},
                extrinsics={"c": np.eye(4)},
                qpos=np.zeros(2),
                action=np.zeros(2),
            )
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.warns(RuntimeWarning, match="without finish"):
        with EpisodeWriter(path, suite="s", task="t", seed=0):
            pass
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_rewrite(tmp_path):
    path = tmp_path / "ep.hdf5"
    write_tiny(path, T=3)
    with pytest.raises(ValueError):
        with EpisodeWriter(path, suite="s", task="t", seed=0) as w:
            w.add_step(
                depth={"c": np.ones((2, 2))},
                intrinsics={"c": np.eye(3)},
                extrinsics={"c": np.eye(4)},
                qpos=np.zeros(2),
                action=np.zeros(2),
            )
            w.finish(extra_attrs={"length": 5})  # reserved name
    assert len(Episode(path)) == 3 and sorted(os.listdir(tmp_path)) == ["ep.hdf5"]


def test_writer_rejects_bad_steps(tmp_path):
    def step(**kw):
        base = dict(
            depth={"c": np.ones((2, 2))},
            intrinsics={"c": np.eye(3)},
            extrinsics={"c": np.eye(4)},
            qpos=np.zeros(2),
            action=np.zeros(2),
        )
        return {**base, **kw}

    with EpisodeWriter(tmp_path / "a.hdf5", suite="s", task="t", seed=0) as w:
        w.add_step(**step())
        with pytest.raises(ValueError, match=r"/action: expected shape \(2,\)"):
            w.add_step(**step(action=np.zeros(3)))
        with pytest.raises(ValueError, match="finite"):
            w.add_step(**step(action=np.array([0.0, np.nan])))
        with pytest.raises(ValueError, match="fields differ"):
            w.add_step(**step(proprio=np.zeros(3)))
        with pytest.raises(ValueError, match="unknown cameras"):
            w.add_step(**step(depth={"c": np.ones((2, 2)), "x": np.ones((2, 2))}))
        with pytest.raises(ValueError, match="uint8"):
            w.add_step(**step(rgb={"c": np.zeros((2, 2, 3), np.float32)}))
        with pytest.raises(ValueError, match="JSON"):
            EpisodeWriter(tmp_path / "b.hdf5", suite="s", task="t", seed=0, config={"f": object()})
        w.abort()


def test_killed_writer_leaves_only_a_temp_file(tmp_path, capsys):
    write_tiny(tmp_path / "good.hdf5")
    pid = os.fork()  # a writer process killed mid-episode
    if pid == 0:
        try:
            w = EpisodeWriter(tmp_path / "killed.hdf5", suite="s", task="t", seed=0)
            for _ in range(10):
                w.add_step(
                    depth={"c": np.ones((2, 2))},
                    intrinsics={"c": np.eye(3)},
                    extrinsics={"c": np.eye(4)},
                    qpos=np.zeros(2),
                    action=np.zeros(2),
                )
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    names = sorted(os.listdir(tmp_path))
    assert "killed.hdf5" not in names and any(n.endswith(".partial") for n in names)
    idx = EpisodeIndex(tmp_path)
    assert [Path(r.path).name for r in idx.episodes] == ["good.hdf5"]
    assert cli(["data", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "incomplete temporary file" in out and "killed.hdf5." in out and "good.hdf5" not in out


# -- bad files: the checker and the reader name file + dataset + expected + found -------------


def _both(path) -> tuple[list[str], str]:
    problems = check_episode(path)
    with pytest.raises(EpisodeFileError) as info:
        Episode(path)
    return problems, str(info.value)


def test_truncated_file_names_the_short_dataset(episode, tmp_path):
    path, _ = episode
    cut = tmp_path / "cut.hdf5"
    shutil.copy(path, cut)
    with open(cut, "r+b") as fh:
        fh.truncate(int(os.path.getsize(path) * 0.6))
    problems, error = _both(cut)
    text = "\n".join(problems)
    assert str(cut) in text and "truncated" in text
    assert "/observations/" in text and "lie past the end of the file" in text
    assert error == text


def test_missing_dataset(episode):
    path, _ = episode
    with h5py.File(path, "a") as f:
        del f["observations/qpos"]
    problems, error = _both(path)
    assert problems == [
        f"{path}: dataset /observations/qpos: expected a dataset, found nothing (missing)"
    ]
    assert error == problems[0]


def test_inconsistent_lengths(episode):
    path, _ = episode
    with h5py.File(path, "a") as f:
        f["action"].resize(9, axis=0)
    problems, error = _both(path)
    assert problems == [f"{path}: dataset /action: expected 10 steps (attribute length), found 9"]
    assert error == problems[0]


def test_wrong_schema_version(episode):
    path, _ = episode
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    problems, error = _both(path)
    assert len(problems) == 1 and error == problems[0]
    assert problems[0].startswith(
        f"{path}: attribute 'schema_version': expected {SCHEMA_VERSION}, found {SCHEMA_VERSION + 1}"
    )


def test_missing_attribute(episode):
    path, _ = episode
    with h5py.File(path, "a") as f:
        del f.attrs["task"]
    problems, _ = _both(path)
    assert problems == [f"{path}: attribute 'task': expected a string, found nothing (missing)"]


@pytest.mark.parametrize("content", [b"", os.urandom(3000), b"ALOHA? no, a text file\n"])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "ep.hdf5"
    path.write_bytes(content)
    problems, error = _both(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: file")
    assert ("empty file" if not content else "not an HDF5 file") in problems[0]
    assert error == problems[0]


def test_nan_actions(episode):
    path, _ = episode
    with h5py.File(path, "a") as f:
        f["action"][3, 1] = np.nan
        f["action"][4, 0] = np.inf
    assert check_episode(path) == [
        f"{path}: dataset /action: expected finite values, found NaN/inf at steps 3-4"
    ]
    ep = Episode(path)  # the structure is fine; reading the bad values raises
    ep.step(2)
    with pytest.raises(EpisodeFileError, match=r"/action: expected finite values.*steps 3"):
        ep.step(3)
    with pytest.raises(EpisodeFileError, match=r"/action: expected finite values.*steps 3-4"):
        ep.actions()
    ep.close()


def test_corrupt_chunk_and_bad_pose_reported(episode):
    path, _ = episode
    with h5py.File(path, "a") as f:
        f["observations/extrinsics/wrist"][2, 3, 0] = 0.5
        f["state"][1] = "not json"
        info = f["observations/images/corner"].id.get_chunk_info(1)
    with open(path, "r+b") as fh:  # overwrite one compressed image chunk with garbage
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)
    problems = "\n".join(check_episode(path))
    assert "/observations/images/corner: expected readable data at steps" in problems
    assert "/observations/extrinsics/wrist: expected 4x4 rigid transforms" in problems
    assert "/state: expected a JSON object per step" in problems
    assert check_episode(path, deep=False) == []


# -- directory index --------------------------------------------------------------------------


def _forbid_h5py(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError(f"h5py.File opened {args[:1]}")

    monkeypatch.setattr(h5py, "File", fail)


def test_index_manifest_cache_and_invalidation(tmp_path, monkeypatch):
    root, templates = tmp_path / "eps", tmp_path / "templates"
    for i in range(12):  # episode i is a copy of template i % 12: task i % 2, length 1 + i % 4
        write_tiny(templates / f"{i}.hdf5", T=1 + i % 4, task=f"task{i % 2}", success=i % 3 > 0)
    for i in range(200):
        (root / f"task{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(templates / f"{i % 12}.hdf5", root / f"task{i % 2}" / f"ep_{i:03d}.hdf5")
    t0 = time.perf_counter()
    idx = EpisodeIndex(root)
    t1 = time.perf_counter()
    assert idx.num_episodes == 200 and len(idx) == sum(1 + i % 4 for i in range(200))
    assert idx.manifest_path == str(root / ".toolkit_episode_index.json")
    first = idx.records()
    assert idx.locate(0) == (0, 0) and idx.locate(len(idx) - 1)[0] == 199
    j, s = idx.locate(7)
    assert sum(r.length for r in idx.episodes[:j]) + s == 7
    assert idx.step(7)["action"][0] == s
    assert idx.episode(j) is idx.episode(j)  # cached handle
    assert idx.tasks == ["task0", "task1"]
    sub = idx.filter(task="task1", success=True)
    assert sub.num_episodes == sum(1 for i in range(200) if i % 2 and i % 12 % 3)
    assert all(r["task"] == "task1" and r.success for r in sub.episodes)
    assert idx.filter(lambda r: r.length == 4, task=["task0", "task1"]).num_episodes == 50
    idx.close()

    with monkeypatch.context() as m:  # the second open reads only the manifest
        _forbid_h5py(m)
        t2 = time.perf_counter()
        again = EpisodeIndex(root)
        t3 = time.perf_counter()
        assert again.records() == first
        print(f"index of 200 episodes: built in {t1 - t0:.3f} s, from the cache in {t3 - t2:.3f} s")
        assert pickle.loads(pickle.dumps(again)).num_episodes == 200

    opened = []
    real_file = h5py.File

    def counting(path, *a, **k):
        opened.append(os.path.basename(os.fspath(path)))
        return real_file(path, *a, **k)

    monkeypatch.setattr(h5py, "File", counting)
    write_tiny(root / "task0" / "ep_new.hdf5", T=5)  # the writer's own h5py.File calls
    opened.clear()
    idx = EpisodeIndex(root)
    assert opened == ["ep_new.hdf5"] and idx.num_episodes == 201
    write_tiny(root / "task1" / "ep_001.hdf5", T=9)  # changed in place
    opened.clear()
    idx = EpisodeIndex(root)
    assert opened == ["ep_001.hdf5"]
    assert next(r for r in idx.episodes if r.path.endswith("ep_001.hdf5")).length == 9
    os.remove(root / "task0" / "ep_000.hdf5")  # removed
    opened.clear()
    idx = EpisodeIndex(root)
    assert opened == [] and idx.num_episodes == 200
    assert len(EpisodeIndex(root, cache=False).records()) == 200


def test_index_falls_back_to_user_cache(tmp_path, monkeypatch):
    root = tmp_path / "eps"
    write_tiny(root / "a.hdf5")
    (root / ".toolkit_episode_index.json").mkdir()  # stands in for a read-only directory
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    idx = EpisodeIndex(root)
    assert idx.manifest_path.startswith(str(tmp_path / "cache"))
    _forbid_h5py(monkeypatch)
    assert EpisodeIndex(root).num_episodes == 1


def test_index_reports_bad_files(tmp_path):
    write_tiny(tmp_path / "a.hdf5")
    (tmp_path / "b.hdf5").write_bytes(b"garbage")
    with pytest.raises(EpisodeFileError, match=r"(?s)1 unreadable.*b\.hdf5: file header"):
        EpisodeIndex(tmp_path)
    idx = EpisodeIndex(tmp_path, on_error="skip")
    assert idx.num_episodes == 1 and list(idx.errors) == [str(tmp_path / "b.hdf5")]


# -- command line -----------------------------------------------------------------------------


def test_cli_data_check(tmp_path, capsys):
    write_tiny(tmp_path / "good.hdf5")
    assert cli(["data", "check", str(tmp_path)]) == 0
    assert "1 ok, 0 with problems" in capsys.readouterr().out
    (tmp_path / "junk.hdf5").write_bytes(b"junk")
    write_tiny(tmp_path / "sub" / "nan.hdf5")
    with h5py.File(tmp_path / "sub" / "nan.hdf5", "a") as f:
        f["action"][1] = np.nan
    assert cli(["data", "check", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'junk.hdf5'}: file header" in out
    assert f"{tmp_path / 'sub' / 'nan.hdf5'}: dataset /action: expected finite values" in out
    assert "good.hdf5" not in out and "1 ok, 2 with problems" in err
    assert cli(["data", "check", str(tmp_path), "--json", "-j", "2"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["checked"], report["ok"], report["bad"]) == (3, 1, 2)
    assert cli(["data", "check", str(tmp_path / "missing")]) == 2


def test_cli_data_info(episode, capsys):
    path, _ = episode
    assert cli(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "/observations/images/corner" in out and 'task: "hammer"' in out
    assert cli(["data", "info", str(path.parent), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 1 and summary["tasks"]["hammer"]["steps"] == 10


@pytest.mark.slow
def test_index_benchmark(tmp_path):
    """Prints how long indexing a few thousand tiny episodes takes, cold and cached."""
    n = 3000
    for i in range(4):
        write_tiny(tmp_path / f"template{i}.hdf5", T=1 + i)
    for i in range(n):
        (tmp_path / "eps" / f"{i // 1000}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(
            tmp_path / f"template{i % 4}.hdf5", tmp_path / "eps" / f"{i // 1000}" / f"{i}.hdf5"
        )
    t0 = time.perf_counter()
    assert EpisodeIndex(tmp_path / "eps").num_episodes == n
    t1 = time.perf_counter()
    assert EpisodeIndex(tmp_path / "eps").num_episodes == n
    t2 = time.perf_counter()
    assert EpisodeIndex(tmp_path / "eps", cache=False, workers=2).num_episodes == n
    t3 = time.perf_counter()
    print(
        f"\nindex of {n} episodes: built in {t1 - t0:.2f} s, from the cache in {t2 - t1:.3f} s, "
        f"built with 2 workers in {t3 - t2:.2f} s"
    )
    assert t2 - t1 < t1 - t0
