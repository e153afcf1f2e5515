"""MetaWorld suite: observations, cameras and point clouds against MuJoCo itself, seeds,
experts, errors, and `toolkit gen` (resumable, crash-safe, failures skipped)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("metaworld")

from _helpers import REPO  # noqa: E402

from toolkit.envs import MissingSuiteDependencyError, UnknownTaskError, get_suite  # noqa: E402
from toolkit.envs.metaworld import seeds as S  # noqa: E402
from toolkit.envs.metaworld import tasks as T  # noqa: E402
from toolkit.envs.metaworld.cameras import WORKSPACE_BOUNDS  # noqa: E402
from toolkit.registry import SUITES  # noqa: E402

SIZE = 96  # small images keep these tests fast; the geometry does not depend on the size


@pytest.fixture(scope="module")
def suite():
    return get_suite("metaworld")


@pytest.fixture(scope="module")
def env(suite):
    env = suite.make_env(
        "reach", cameras={"corner": (SIZE, SIZE), "corner2": (SIZE, SIZE)}, point_cameras=["corner"]
    )
    yield env
    env.close()


@pytest.fixture(scope="module")
def obs(env):
    return env.reset(seed=3)


def test_registry_and_task_lists(suite):
    assert SUITES.build(dict(type="MetaWorldSuite")).name == "metaworld"
    assert len(T.CLAR_TASKS) == 15 and len(set(T.CLAR_TASKS)) == 15
    assert set(T.EASY) | set(T.MEDIUM) | set(T.HARD) == set(T.CLAR_TASKS)
    assert "button-press" in suite.tasks and set(T.MULTITASK) <= set(suite.tasks)
    assert T.expand_tasks(["easy", "hammer,reach"]) == [*T.EASY, "hammer"]
    assert all(suite.description(t) for t in suite.tasks)


def test_unknown_task_lists_valid_ones(suite):
    with pytest.raises(UnknownTaskError) as err:
        suite.make_env("hamer")
    msg = str(err.value)
    assert "hammer" in msg and all(t in msg for t in T.TASKS)


def test_missing_metaworld_names_the_extra(monkeypatch, suite):
    for mod in ("metaworld", "metaworld.env_dict", "metaworld.policies"):
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as if not installed
    with pytest.raises(MissingSuiteDependencyError, match=r"pip install -e \.\[metaworld\]"):
        suite.make_env("reach")


def test_observation_layout(env, obs):
    assert obs["points"].shape == (1024, 3) and obs["points"].dtype == np.float32
    assert obs["points_mask"].shape == (1024,) and obs["points_mask"].all()
    assert obs["proprio"].shape == (4,) and obs["proprio"].dtype == np.float32
    assert obs["state"].shape == (39,)
    np.testing.assert_allclose(obs["proprio"], obs["state"][:4], rtol=1e-6)
    # proprio = end-effector position + gripper opening
    np.testing.assert_allclose(obs["proprio"][:3], env.data.body("hand").xpos, atol=1e-6)
    np.testing.assert_allclose(obs["ee_pose"][0, :3, 3], env.data.body("hand").xpos)
    for cam in ("corner", "corner2"):
        assert obs["rgb"][cam].shape == (SIZE, SIZE, 3) and obs["rgb"][cam].dtype == np.uint8
        assert obs["depth"][cam].shape == (SIZE, SIZE) and obs["depth"][cam].dtype == np.float32
        assert obs["intrinsics"][cam].shape == (3, 3)
        R = obs["extrinsics"][cam][:3, :3]
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-9)
        assert np.linalg.det(R) == pytest.approx(1.0)


def test_points_cropped_and_on_real_geometry(env, obs):
    import mujoco

    pts = obs["points"].astype(np.float64)
    lo, hi = WORKSPACE_BOUNDS
    assert (pts >= lo - 1e-6).all() and (pts <= hi + 1e-6).all()
    # The table top is the box 'tablelink' geom whose top face is z = 0.
    on_table = np.abs(pts[:, 2]) < 0.003
    assert on_table.mean() > 0.3
    # Independent reference: a ray from the camera through each point hits the first visible
    # surface at the point's distance (depth is z along the axis, mj_ray measures along rays).
    origin = env.data.cam_xpos[env.model.camera("corner").id].copy()
    groups = np.array([1, 1, 1, 0, 0, 0], dtype=np.uint8)  # rendered geom groups
    geom = np.zeros(1, dtype=np.int32)
    rng = np.random.default_rng(0)
    errs = []
    for p in pts[rng.choice(len(pts), 60, replace=False)]:
        vec = p - origin
        dist = np.linalg.norm(vec)
        hit = mujoco.mj_ray(env.model, env.data, origin, vec / dist, groups, 1, -1, geom)
        errs.append(abs(hit - dist))
    assert np.median(errs) < 1e-3 and np.quantile(errs, 0.9) < 5e-3


def test_images_agree_with_camera_pose(env, obs):
    """Upright corner images: world points project back onto pixels of matching depth."""
    for cam in ("corner", "corner2"):
        K, T_cw = obs["intrinsics"][cam], obs["extrinsics"][cam]
        world = obs["points"].astype(np.float64)
        p_cam = (np.linalg.inv(T_cw) @ np.c_[world, np.ones(len(world))].T).T[:, :3]
        front = p_cam[:, 2] > 0.05
        uv = (K @ p_cam[front].T).T
        u, v = (uv[:, 0] / uv[:, 2]).astype(int), (uv[:, 1] / uv[:, 2]).astype(int)
        ok = (u >= 0) & (u < SIZE) & (v >= 0) & (v < SIZE)
        d = obs["depth"][cam][v[ok], u[ok]]
        close = np.abs(d - p_cam[front][ok, 2]) < 0.02
        if cam == "corner":  # the cloud comes from this camera: every point is on its image
            assert ok.all() and close.mean() > 0.95
        else:  # another view: most visible points are not occluded
            assert close.mean() > 0.5
    # Upright: world "up" points up in the corner images (OpenCV image y points down).
    for cam in ("corner", "corner2"):
        R = obs["extrinsics"][cam][:3, :3]
        assert -(R.T @ np.array([0.0, 0.0, 1.0]))[1] > 0.5


def test_same_seed_same_layout_other_seed_other_layout(suite, env):
    a = env.reset(seed=11)
    env.step(np.array([1.0, 0.0, 0.0, 0.0]))
    b = env.reset(seed=11)
    np.testing.assert_array_equal(a["state"], b["state"])
    np.testing.assert_array_equal(a["points"], b["points"])
    c = env.reset(seed=12)
    assert np.abs(c["state"][-3:] - a["state"][-3:]).max() > 1e-3  # reach: the goal moves
    other = suite.make_env("reach", rgb=False, depth=False, points=False)
    try:
        np.testing.assert_array_equal(other.reset(seed=11)["state"], a["state"])
    finally:
        other.close()


def test_step_contract(env):
    env.reset(seed=0)
    obs, reward, done, info = env.step(np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32))
    assert isinstance(reward, float) and done is False and isinstance(info["success"], bool)
    assert obs["t"] == 1
    with pytest.raises(Exception, match="got shape"):
        env.step(np.zeros(3))
    with pytest.raises(Exception, match="non-finite"):
        env.step(np.array([np.nan, 0, 0, 0]))


def test_seed_ranges_disjoint():
    ranges = [S.TRAIN_SEEDS, S.VAL_SEEDS, S.PRETRAIN_SEEDS]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert a.stop <= b.start
    assert S.PRETRAIN_SEEDS.start >= 10_000 and S.EVAL_SEED_OFFSET >= S.PRETRAIN_SEEDS.stop
    assert S.split_of(3) == "train" and S.split_of(5003) == "val" and S.split_of(10**6) == "eval"


@pytest.mark.parametrize("task", ["reach", "hammer", "box-close"])
def test_expert_succeeds(suite, task):
    env = suite.make_env(task, rgb=False, depth=False, points=False)
    expert = suite.expert(task)
    try:
        obs = env.reset(seed=0)
        expert.reset()
        for _ in range(200):
            obs, _, done, info = env.step(expert.select_action(obs))
            if info["success"] or done:
                break
        assert info["success"]
    finally:
        env.close()


# --------------------------------------------------------------------------------------------
# toolkit gen datasets/metaworld_clar.py
# --------------------------------------------------------------------------------------------

GEN = ["-m", "toolkit", "gen", str(REPO / "datasets" / "metaworld_clar.py")]
# Tiny images and clouds; reach's expert succeeds within 51 steps on the seeds used here.
SMALL = ["--cameras", "corner:48", "--num-points", "128", "--max-steps", "60", "--no-progress"]


def _gen(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`toolkit gen` in a fresh process (the CLI path end to end)."""
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *GEN, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _gen_inline(capsys, *args: str) -> tuple[int, str, str]:
    """The same recipe run in this process (faster: no interpreter start-up)."""
    from toolkit.commands.gen import load_recipe

    rc = load_recipe(str(REPO / "datasets" / "metaworld_clar.py"))(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_gen_writes_resumes_and_skips(tmp_path, capsys):
    from toolkit.data.episodes import Episode, check_episode

    out = tmp_path / "mw"
    args = ["--tasks", "reach", "--episodes", "2", "--val", "1", "--out", str(out), *SMALL]
    r = _gen(*args)
    assert r.returncode == 0, r.stderr
    files = sorted(out.rglob("*.hdf5"))
    assert [f.relative_to(out).as_posix() for f in files] == [
        "reach/train/ep_0.hdf5",
        "reach/val/ep_5000.hdf5",
    ]
    assert json.loads((out / "splits.json").read_text()) == {"reach": {"train": [0], "val": [5000]}}
    for f in files:
        assert check_episode(f) == []
    with Episode(files[0]) as ep:
        assert ep.attrs["split"] == "train" and ep.attrs["success"] and len(ep) == 60
        assert ep.extra("point_cloud").shape == (60, 128, 3)
        assert ep.extra("low_dim_state").shape == (60, 39)
        assert ep.states()[0]["description"] == T.DESCRIPTIONS["reach"]
        np.testing.assert_allclose(ep.proprio()[:, :3], ep.extra("low_dim_state")[:, :3], atol=1e-6)
    mtimes = [f.stat().st_mtime_ns for f in files]

    rc, stdout, _ = _gen_inline(capsys, *args)
    assert rc == 0
    assert "0 episodes written, 2 already there" in stdout
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_gen_failed_seeds_are_reported_and_never_retried(tmp_path, capsys):
    out = tmp_path / "mw"
    args = ["--tasks", "reach", "--episodes", "1", "--val", "0", "--out", str(out), *SMALL]
    args += ["--max-steps", "3", "--max-failures", "2"]  # too short for any success
    rc, stdout, stderr = _gen_inline(capsys, *args)
    assert rc == 1  # short of the requested episodes, and says so
    assert "2 new expert failures" in stdout and "reach/train" in stderr
    assert sorted(p.name for p in (out / "reach" / "train").iterdir()) == [
        "ep_0.failed.json",
        "ep_1.failed.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"]["reach"]["train"]["failed_seeds"] == [0, 1]
    rc, stdout, _ = _gen_inline(capsys, *args)  # the failure budget is spent: no retry
    assert rc == 1 and "0 new expert failures" in stdout
    assert len(list((out / "reach" / "train").iterdir())) == 2


def test_gen_killed_run_leaves_no_corrupt_file(tmp_path, capsys):
    from toolkit.data.episodes import check_episode

    out = tmp_path / "mw"
    args = ["--tasks", "reach", "--episodes", "3", "--val", "0", "--out", str(out), *SMALL]
    env = dict(os.environ, MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, *GEN, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list(out.rglob("*.partial")):
            time.sleep(0.02)
        assert list(out.rglob("*.partial")), "the generator never started an episode"
        time.sleep(0.2)  # mid-episode
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (out / ".toolkit_gen.lock").exists()  # stale lock of the killed run
    for f in out.rglob("*.hdf5"):
        assert check_episode(f) == [], f  # only complete episodes carry the final name
    rc, _, _ = _gen_inline(capsys, *args)
    assert rc == 0
    assert not list(out.rglob("*.partial")) and not (out / ".toolkit_gen.lock").exists()
    files = sorted(out.rglob("*.hdf5"))
    assert len(files) == 3 and all(check_episode(f) == [] for f in files)
