"""ALOHA suite: scenes on gym-aloha's ViperX, cameras and clouds against MuJoCo's own geometry,
action convention, IK, layouts, success checks both ways, and the scripted experts through the
evaluation harness."""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gym_aloha")

from toolkit.data.clamp_dataset import state_text  # noqa: E402
from toolkit.engine.rollout import evaluate  # noqa: E402
from toolkit.envs import MissingSuiteDependencyError, UnknownTaskError, get_suite  # noqa: E402
from toolkit.envs.aloha.cameras import CAMERA_NAMES, WORKSPACE_BOUNDS  # noqa: E402
from toolkit.envs.aloha.env import UnknownCameraError  # noqa: E402
from toolkit.envs.aloha.ik import (  # noqa: E402
    ArmIK,
    Motion,
    RobotKinematics,
    pick_frame,
    rotation_error,
)
from toolkit.envs.aloha.objects import BUILDERS  # noqa: E402
from toolkit.envs.aloha.scene import SceneBuilder, aloha_assets_dir  # noqa: E402
from toolkit.envs.aloha.sim import gripper_from_finger  # noqa: E402
from toolkit.envs.aloha.tasks import TASKS, make_task  # noqa: E402
from toolkit.ops.cameras import check_rigid, unproject_depth  # noqa: E402
from toolkit.registry import SUITES  # noqa: E402

SIZE = 96  # small images keep these tests fast; the geometry does not depend on the size
FIXED = ("mug_on_plate", "drawer_open")


@pytest.fixture(scope="module")
def suite():
    return get_suite("aloha")


@pytest.fixture(scope="module")
def env(suite):
    cams = {
        c: (SIZE, SIZE)
        for c in ("front_left", "back_right", "left_wrist", "right_wrist", "overhead")
    }
    env = suite.make_env("mug_on_plate", cameras=cams, num_points=2048)
    yield env
    env.close()


@pytest.fixture(scope="module")
def obs(env):
    return env.reset(seed=3)


def _state_env(suite, task):
    return suite.make_env(task, rgb=False, depth=False, points=False)


# --------------------------------------------------------------------------------------------
# Registry, names, dependencies
# --------------------------------------------------------------------------------------------


def test_registry_tasks_and_cameras(suite):
    assert SUITES.build(dict(type="AlohaSuite")).name == "aloha"
    assert set(FIXED) <= set(suite.tasks) == set(TASKS)
    assert all(suite.description(t) for t in suite.tasks)
    assert set(suite.camera_rig) == set(CAMERA_NAMES)
    assert [c.name for c in suite.default_cameras] == [
        "front_left",
        "back_right",
        "left_wrist",
        "right_wrist",
    ]
    assert suite.action_dim == 14 and suite.proprio_dim == 14


def test_unknown_task_and_camera_list_the_valid_ones(suite):
    with pytest.raises(UnknownTaskError) as err:
        suite.make_env("mug_on_plat")
    msg = str(err.value)
    assert "mug_on_plate" in msg and all(t in msg for t in suite.tasks)
    with pytest.raises(UnknownCameraError) as err:
        suite.make_env("drawer_open", cameras=["front", "left_wrist"])
    assert "'front'" in str(err.value) and all(c in str(err.value) for c in CAMERA_NAMES)


def test_missing_gym_aloha_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gym_aloha", None)  # find_spec fails as if not installed
    with pytest.raises(MissingSuiteDependencyError, match=r"pip install -e \.\[aloha\]"):
        aloha_assets_dir()


def test_scene_builds_every_object_from_the_installed_assets():
    import mujoco

    sb = SceneBuilder()
    for kind in BUILDERS:
        sb.add(kind)
    model = sb.compile()
    # The robot comes from the installed package; the repository holds no copy of its assets.
    assert (aloha_assets_dir() / "vx300s_left.xml").is_file()
    package = Path(__file__).resolve().parents[2] / "toolkit" / "envs" / "aloha"
    assert not [p for p in package.rglob("*") if p.suffix in (".stl", ".xml", ".obj")]
    for name, info in sb.objects.items():
        body = model.body(name)
        if info.kind == "free":
            assert 0.005 < float(body.mass[0]) < 1.0, name
        else:
            assert model.body_mocapid[body.id] >= 0, name
        assert info.geoms and all(model.geom(g).id >= 0 for g in info.geoms)
    slide = model.joint("drawer/bottom_slide")
    assert int(slide.type[0]) == mujoco.mjtJoint.mjJNT_SLIDE and slide.range[1] == pytest.approx(
        0.12
    )
    assert {"left", "right"} <= set(sb.objects["caddy"].sites) and len(
        sb.objects["rack"].sites
    ) == 5
    assert {model.camera(i).name for i in range(model.ncam)} == set(CAMERA_NAMES)


# --------------------------------------------------------------------------------------------
# Observations, cameras, point cloud
# --------------------------------------------------------------------------------------------


def test_observation_layout(env, obs):
    assert obs["qpos"].shape == (14,) and obs["proprio"].dtype == np.float32
    np.testing.assert_allclose(obs["proprio"], obs["qpos"], rtol=1e-6)
    np.testing.assert_allclose(obs["qpos"], env.sim.qpos14())
    assert obs["ee_pose"].shape == (2, 4, 4)
    np.testing.assert_allclose(obs["ee_pose"][0][:3, 3], env.data.site("vx300s_left/tcp").xpos)
    assert obs["points"].shape == (2048, 3) and obs["points"].dtype == np.float32
    assert obs["points_mask"].all()
    lo, hi = WORKSPACE_BOUNDS
    assert (obs["points"] >= lo - 1e-5).all() and (obs["points"] <= hi + 1e-5).all()
    for cam in env.cameras:
        assert (
            obs["rgb"][cam.name].shape == (SIZE, SIZE, 3) and obs["rgb"][cam.name].dtype == np.uint8
        )
        assert (
            obs["depth"][cam.name].shape == (SIZE, SIZE)
            and obs["depth"][cam.name].dtype == np.float32
        )
        assert obs["intrinsics"][cam.name].shape == (3, 3)
        check_rigid(obs["extrinsics"][cam.name])
    # CLAMP's text metadata: JSON-able, objects normalized to the workspace, integer stage.
    state = json.loads(json.dumps(obs["state"]))
    assert state["description"] == env.description and state["stage"] == 0
    assert set(state["objects"]) == set(TASKS["mug_on_plate"].objects)
    for pos in state["objects"].values():
        assert len(pos) == 3 and all(0.0 <= v <= 1.0 for v in pos)
    text = state_text(state)  # positions are already normalized: no bounds
    assert text.startswith(env.description) and text.endswith("stage 0.")
    mug = state["objects"]["mug"]
    assert f"mug at ({mug[0]:.2f}, {mug[1]:.2f}, {mug[2]:.2f})" in text


def test_layouts_are_reproducible_and_follow_the_paper(suite):
    env = _state_env(suite, "mug_on_plate")
    try:
        a = env.reset(seed=11)["object_poses"]
        b = env.reset(seed=12)["object_poses"]
        c = env.reset(seed=11)["object_poses"]
        assert not env.sim.overlapping_objects()
    finally:
        env.close()
    assert all(np.array_equal(a[k], c[k]) for k in a)
    assert any(not np.allclose(a[k], b[k]) for k in a)
    task = make_task("mug_on_plate")
    yaws = []
    for seed in range(30):
        lay = task.sample_layout(np.random.default_rng(seed))
        top = {round(lay[n].xy[1], 2) for n in task.top}
        bottom = {round(lay[n].xy[1], 2) for n in task.bottom}
        assert len({round(lay[n].xy[0], 1) for n in task.top}) == 3  # one object per slot
        assert min(top) > max(bottom)  # plate/bowl/container behind mug/pen/banana
        yaws += [lay[n].yaw for n in lay]
    assert min(yaws) < -2.5 and max(yaws) > 2.5  # +-180 degrees
    drawer = make_task("drawer_open")
    dy = [drawer.sample_layout(np.random.default_rng(s))["drawer"].yaw for s in range(50)]
    assert max(abs(y) for y in dy) <= math.radians(45) and max(dy) - min(dy) > math.radians(60)


def _surface_distance(model, data, gid: int, pts: np.ndarray) -> np.ndarray:
    """Distance of world points to the surface of primitive geom ``gid`` (independent of
    the env: analytic box / cylinder / capsule / plane formulas on MuJoCo's geom state)."""
    import mujoco

    R = data.geom_xmat[gid].reshape(3, 3)
    p = (pts - data.geom_xpos[gid]) @ R
    size = model.geom_size[gid]
    t = int(model.geom_type[gid])
    if t == mujoco.mjtGeom.mjGEOM_BOX:
        q = np.abs(p) - size
    elif t == mujoco.mjtGeom.mjGEOM_CYLINDER:
        q = np.stack([np.linalg.norm(p[:, :2], axis=1) - size[0], np.abs(p[:, 2]) - size[1]], 1)
    elif t == mujoco.mjtGeom.mjGEOM_CAPSULE:
        z = np.clip(p[:, 2], -size[1], size[1])
        return np.abs(np.linalg.norm(p - np.stack([0 * z, 0 * z, z], 1), axis=1) - size[0])
    elif t == mujoco.mjtGeom.mjGEOM_PLANE:
        return np.abs(p[:, 2])
    else:
        raise AssertionError(f"geom type {t} has no analytic distance here")
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    inside = np.minimum(q.max(axis=1), 0.0)
    return np.abs(outside + inside)


def test_depth_and_merged_cloud_agree_with_sim_geometry(env, obs):
    """Every depth pixel on an object unprojects within 1 cm of that object's surface
    (segmentation from MuJoCo's own renderer says which geom the pixel sees), and so does
    every point of the merged, cropped, resampled cloud that lies near an object."""
    import mujoco

    model, data = env.model, env.data
    object_geoms = {g for ids in env.sim.geom_ids.values() for g in ids}
    seg = mujoco.Renderer(model, SIZE, SIZE)
    seg.enable_segmentation_rendering()
    checked = 0
    try:
        for cam in ("front_left", "back_right", "overhead"):
            seg.update_scene(data, camera=cam)
            ids = seg.render()
            geom = np.where(ids[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, ids[..., 0], -1)
            pts = unproject_depth(
                obs["depth"][cam], obs["intrinsics"][cam], obs["extrinsics"][cam]
            ).numpy()
            for gid in set(np.unique(geom).tolist()) & object_geoms:
                d = _surface_distance(model, data, gid, pts[geom == gid])
                assert d.max() < 0.01, (cam, model.geom(gid).name, float(d.max()))
                assert np.median(d) < 1e-3
                checked += d.size
    finally:
        seg.close()
    assert checked > 300  # the objects are really seen

    cloud = obs["points"]
    near = np.zeros(len(cloud), dtype=bool)
    dist = np.full(len(cloud), np.inf)
    for name, ids in env.sim.geom_ids.items():
        info = env.sim.objects[name]
        c = env.sim.body_pose(name)[:3]
        top = c[2] - info.base_z + info.height + 0.01
        sel = np.linalg.norm(cloud[:, :2] - c[:2], axis=1) < info.radius + 0.01
        sel &= (cloud[:, 2] > 0.004) & (cloud[:, 2] < top)  # off the table, below the arms
        near |= sel
        for gid in ids:
            dist[sel] = np.minimum(dist[sel], _surface_distance(model, data, gid, cloud[sel]))
    assert near.sum() > 50
    assert dist[near].max() < 0.01, float(dist[near].max())


def test_wrist_extrinsics_move_with_the_gripper(suite):
    env = suite.make_env(
        "drawer_open", cameras={"left_wrist": (32, 32), "front_left": (32, 32)}, points=False
    )

    def gripper_pose() -> np.ndarray:
        b = env.data.body("vx300s_left/gripper_link")
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = np.asarray(b.xmat).reshape(3, 3), b.xpos
        return T

    try:
        obs0 = env.reset(seed=0)
        g0 = gripper_pose()
        target = obs0["qpos"].copy()
        target[:6] = [0.4, -0.3, 0.5, 0.3, 0.6, -0.5]
        for _ in range(40):
            obs1, *_ = env.step(target)
        g1 = gripper_pose()
        T0, T1 = obs0["extrinsics"]["left_wrist"], obs1["extrinsics"]["left_wrist"]
        assert np.linalg.norm(T1[:3, 3] - T0[:3, 3]) > 0.05
        np.testing.assert_allclose(
            obs1["extrinsics"]["front_left"], obs0["extrinsics"]["front_left"]
        )
        # The camera is fixed on the gripper: its pose in the gripper frame never changes.
        np.testing.assert_allclose(np.linalg.inv(g0) @ T0, np.linalg.inv(g1) @ T1, atol=1e-9)
    finally:
        env.close()


# --------------------------------------------------------------------------------------------
# Actions and IK
# --------------------------------------------------------------------------------------------


def test_action_convention_joint_targets_and_normalized_gripper(suite):
    env = _state_env(suite, "drawer_open")
    try:
        obs = env.reset(seed=0)
        a = obs["qpos"].copy()
        a[0:6] = [0.3, -0.5, 0.6, 0.0, 0.4, 0.2]
        a[6], a[13] = 1.0, 0.0  # left open, right closed
        for _ in range(60):
            obs, *_ = env.step(a)
        np.testing.assert_allclose(obs["qpos"][0:6], a[0:6], atol=0.03)
        # The finger actuators clip their targets to [0.021, 0.057] m (gym-aloha's model).
        assert obs["qpos"][6] == pytest.approx(float(gripper_from_finger(0.057)), abs=0.02)
        assert obs["qpos"][13] == pytest.approx(float(gripper_from_finger(0.021)), abs=0.02)
        with pytest.raises(Exception, match=r"\(14,\)"):
            env.step(np.zeros(7))
        with pytest.raises(Exception, match="non-finite"):
            env.step(np.full(14, np.nan))
    finally:
        env.close()


def test_ik_reaches_poses_and_wrist_twins_agree():
    kin = RobotKinematics()
    start = np.zeros(14)
    start[0:6] = start[7:13] = [0.0, -0.96, 1.16, 0.0, -0.3, 0.0]
    motion = Motion(start, kin)
    for arm in ("left", "right"):
        ik: ArmIK = kin[arm]
        for point in ((0.0, 0.5, 0.1), (0.1, 0.62, 0.06), (-0.12, 0.42, 0.15)):
            R, _ = pick_frame(ik.base[:2], point, finger_yaw=0.7)
            q = motion.goal(arm, point, R, symmetric=False)  # multi-start DLS, unwound wrist
            p, Rq = ik.fk(q)
            assert np.linalg.norm(p - point) < 1e-3, (arm, point)
            assert np.linalg.norm(rotation_error(R, Rq)) < 1e-2, (arm, point)
            assert np.all(q >= ik.lo) and np.all(q <= ik.hi) and abs(q[3]) < math.pi / 2
            # Warm-started tracking of a 1 cm step converges in a few iterations.
            res = ik.solve(p + [0.0, 0.01, 0.0], Rq, q)
            assert res.ok and res.iterations < 20
            twin = ik.wrist_twin(q)
            if twin is not None:
                p2, R2 = ik.fk(twin)
                np.testing.assert_allclose(p2, p, atol=1e-9)
                np.testing.assert_allclose(R2, Rq, atol=1e-9)
    assert motion.ik_failures == 0


# --------------------------------------------------------------------------------------------
# Success checks, both ways
# --------------------------------------------------------------------------------------------


def test_mug_on_plate_success_both_ways(suite):
    env = _state_env(suite, "mug_on_plate")
    task, sim = env.task_spec, env.sim
    try:
        env.reset(seed=0)
        plate = sim.body_pose("plate")[:3]
        top = plate[2] + sim.objects["plate"].dims["top"]
        on_z = top + sim.objects["mug"].base_z + 0.001
        sim.place("mug", plate[:2] + [0.01, 0.0], 0.3, z=on_z)
        sim.settle(10)
        assert task.success(sim) and task.progress(sim) == 4
        # Near misses: beside the plate, hovering above it, lying on it.
        sim.place("mug", plate[:2] + [0.0, 0.075], 0.3)
        sim.settle(10)
        assert not task.success(sim) and task.progress(sim) == 0
        sim.place("mug", plate[:2], 0.3, z=on_z + 0.03)
        sim.forward()
        assert not task.success(sim)
        adr = sim._free_adr["mug"]
        sim.place("mug", plate[:2], 0.0, z=top + 0.025)
        sim.data.qpos[adr + 3 : adr + 7] = [math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0]
        sim.settle(5)
        assert not task.success(sim)
    finally:
        env.close()


def test_drawer_open_success_both_ways(suite):
    env = _state_env(suite, "drawer_open")
    task, sim = env.task_spec, env.sim
    try:
        env.reset(seed=0)
        assert task.progress(sim) == 0 and not task.success(sim)
        sim.set_joint("drawer/bottom_slide", 0.03)
        sim.forward()
        assert task.progress(sim) == 2 and not task.success(sim)
        sim.set_joint("drawer/bottom_slide", 0.068)  # a near miss: 57% of the travel
        sim.forward()
        assert not task.success(sim)
        sim.set_joint("drawer/bottom_slide", 0.0)
        sim.set_joint("drawer/top_slide", 0.12)  # the wrong drawer
        sim.forward()
        assert not task.success(sim)
        sim.set_joint("drawer/bottom_slide", 0.09)
        sim.forward()
        assert task.success(sim) and task.progress(sim) == 3
    finally:
        env.close()


# --------------------------------------------------------------------------------------------
# Experts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", FIXED)
def test_expert_succeeds_through_the_harness(suite, task, tmp_path):
    res = evaluate(
        suite,
        task,
        suite.expert(task),
        num_episodes=2,
        out_dir=str(tmp_path),
        progress=False,
        rgb=False,
        depth=False,
        points=False,
    )
    assert res["success_rate"] == 1.0, res["episodes"]
    assert all((tmp_path / f"episode_{s}.json").exists() for s in res["seeds"])
    # partial success: every rollout reached the last stage, so every stage is reached by all
    last = len(TASKS[task].stages) - 1
    assert [e["max_stage"] for e in res["episodes"]] == [last] * len(res["episodes"])
    assert res["stage_reached"] == dict.fromkeys(range(1, last + 1), 1.0)


def test_expert_is_deterministic_and_reports_stages(suite):
    env = _state_env(suite, "drawer_open")
    try:
        runs = []
        for _ in range(2):
            expert = suite.expert("drawer_open")
            obs = env.reset(seed=5)
            actions, stages = [], []
            for _ in range(160):
                a = expert.select_action(obs)
                obs, _r, _done, info = env.step(a)
                actions.append(a)
                stages.append(expert.stage)
            runs.append((np.stack(actions), stages, info["success"]))
        np.testing.assert_array_equal(runs[0][0], runs[1][0])
        assert runs[0][2] and runs[0][1][0] == 0 and runs[0][1][-1] == 3
        assert all(b >= a for a, b in zip(runs[0][1], runs[0][1][1:], strict=False))
        assert runs[0][0].shape == (160, 14) and runs[0][0].dtype == np.float32
    finally:
        env.close()


def test_generation_recipe_writes_episodes_with_text_and_stages(tmp_path):
    """`toolkit gen datasets/aloha_finetune.py` through its main(): one tiny episode."""
    import h5py

    from toolkit.data.episodes import check_episode

    recipe = runpy.run_path(
        str(Path(__file__).resolve().parents[2] / "datasets" / "aloha_finetune.py")
    )
    out = tmp_path / "gen"
    args = ["--out", str(out), "--tasks", "drawer_open", "--episodes", "1", "--val", "0"]
    args += [
        "--cameras",
        "front_left:32",
        "left_wrist:32",
        "--num-points",
        "256",
        "--max-steps",
        "160",
    ]
    assert recipe["main"]([*args, "--no-progress"]) == 0
    path = out / "drawer_open" / "train" / "ep_0.hdf5"
    assert not check_episode(str(path))
    with h5py.File(path, "r") as f:
        assert f["action"].shape == (160, 14) and f["observations/qpos"].shape == (160, 14)
        assert f["extras/point_cloud"].shape == (160, 256, 3)
        assert f["observations/extrinsics/left_wrist"].shape == (160, 4, 4)
        states = [json.loads(s) for s in f["state"][:]]
    stages = [s["stage"] for s in states]
    assert stages[0] == 0 and stages[-1] == 3 and stages == sorted(stages)
    assert states[0]["description"] == "open the bottom drawer"
    # The moving drawer is in the text: its position changes as it opens.
    assert states[-1]["objects"]["drawer bottom"][1] < states[0]["objects"]["drawer bottom"][1]


@pytest.mark.slow
@pytest.mark.parametrize("task", FIXED)
def test_expert_success_rate_over_20_seeds(suite, task):
    res = evaluate(
        suite,
        task,
        suite.expert(task),
        num_episodes=20,
        progress=False,
        rgb=False,
        depth=False,
        points=False,
    )
    assert res["success_rate"] >= 0.8, [e for e in res["episodes"] if not e["success"]]
