"""RLBench datasets read without RLBench: restricted unpickler, images, cameras, keyframes, errors.

Fixtures are written in RLBench 1.2's exact on-disk format by tests/rlbench_fixtures.py; values
are checked against independent references (RLBench's depth encoder, PyRep's unprojection, the
ARM / PerAct keyframe heuristic over observation objects).
"""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
import rlbench_fixtures as fx
from PIL import Image

from toolkit.data.rlbench import (
    RLBenchDataError,
    RLBenchDemo,
    RLBenchEpisode,
    RLBenchObservation,
    RLBenchPickleError,
    find_episodes,
    keypoint_discovery,
    load_pickle,
    to_opencv,
)
from toolkit.data.rlbench.images import decode_depth

CAMS = ("front", "overhead")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlbench_src")
    truths = fx.write_dataset(str(root), variations=2, episodes=2, cameras=CAMS)
    return root, truths


def _fresh(tmp_path, **kw):
    truths = fx.write_dataset(str(tmp_path), variations=1, episodes=1, **kw)
    return truths[0]


# ----------------------------------------------------------------------------- unpickling
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_demo_pickle_loads_into_our_records_for_every_protocol(tmp_path, protocol):
    obs = fx.Observation(*([None] * 30))
    obs.gripper_pose = np.arange(7.0)
    obs.gripper_open = np.float64(1.0)
    obs.misc = {"front_camera_near": 0.01, "joint_poses": [np.ones(7, np.float32)], "v": {1, 2}}
    obs.ignore_collisions = True  # a fork's extra field survives
    demo = fx.Demo([obs, obs], random_seed=np.random.RandomState(3).get_state())
    path = tmp_path / "low_dim_obs.pkl"
    fx.dump_rlbench_pickle(demo, str(path), protocol=protocol)
    assert "rlbench" not in sys.modules  # the stand-in modules were only there while pickling
    loaded = load_pickle(path)
    assert isinstance(loaded, RLBenchDemo) and len(loaded) == 2
    o = loaded[0]
    assert isinstance(o, RLBenchObservation)
    np.testing.assert_array_equal(o.gripper_pose, np.arange(7.0))
    assert o.gripper_open == 1.0 and o.front_rgb is None and o.ignore_collisions is True
    assert o.misc["joint_poses"][0].dtype == np.float32 and o.misc["v"] == {1, 2}
    assert o.not_a_field is None  # fields a version did not record read as None
    state = loaded.random_seed
    assert state[0] == "MT19937" and state[1].dtype == np.uint32 and state[1].shape == (624,)


def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "low_dim_obs.pkl"
    fx.write_malicious_pickle(str(path), str(marker))
    with pytest.raises(RLBenchPickleError) as err:
        load_pickle(path)
    msg = str(err.value)
    assert str(path) in msg and "system" in msg and "nothing was executed" in msg
    assert not marker.exists()
    # the same object through plain pickle WOULD run the command: the test is meaningful
    with fx.rlbench_modules():
        pickle.loads(path.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize(
    "payload, name",
    [
        ((eval, ("1+1",)), "builtins.eval"),
        ((getattr, ([], "append")), "builtins.getattr"),
        ((__import__("subprocess").Popen, (["true"],)), "subprocess.Popen"),
    ],
)
def test_other_dangerous_globals_are_refused(tmp_path, payload, name):
    class Evil:
        def __reduce__(self):
            return payload

    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"misc": Evil()}))
    with pytest.raises(RLBenchPickleError, match=rf"x\.pkl: refusing to load global '{name}'"):
        load_pickle(path)


def test_unexpected_rlbench_class_and_wrong_top_level_object(tmp_path):
    # a class that only pretends to live in rlbench's modules is refused by name
    with fx.rlbench_modules():
        import rlbench.backend.observation as mod

        class Scene:  # not Demo / Observation
            pass

        Scene.__module__, Scene.__qualname__ = "rlbench.backend.observation", "Scene"
        mod.Scene = Scene
        data = pickle.dumps(Scene())
    path = tmp_path / "low_dim_obs.pkl"
    path.write_bytes(data)
    with pytest.raises(RLBenchPickleError, match="rlbench.backend.observation.Scene"):
        load_pickle(path)
    # an allowed but wrong object where the demo should be: named in the error
    ep_dir = tmp_path / "close_box" / "variation0" / "episodes" / "episode0"
    ep_dir.mkdir(parents=True)
    (ep_dir / "low_dim_obs.pkl").write_bytes(pickle.dumps({"not": "a demo"}))
    (ep_dir.parents[1] / "variation_descriptions.pkl").write_bytes(pickle.dumps(["close box"]))
    with pytest.raises(
        RLBenchDataError, match=r"low_dim_obs\.pkl: expected an rlbench\.demo\.Demo, found dict"
    ):
        RLBenchEpisode(str(ep_dir), cameras=[])


def test_corrupt_truncated_and_empty_pickles_name_the_file(tmp_path):
    truth = _fresh(tmp_path, cameras=("front",))
    pkl = os.path.join(truth.path, "low_dim_obs.pkl")
    data = open(pkl, "rb").read()
    open(pkl, "wb").write(data[: len(data) // 2])
    with pytest.raises(
        RLBenchDataError, match=r"low_dim_obs\.pkl: corrupt or truncated RLBench demo"
    ):
        RLBenchEpisode(truth.path, cameras=["front"])
    open(pkl, "wb").write(b"")
    with pytest.raises(RLBenchDataError, match=r"low_dim_obs\.pkl: .*empty file"):
        RLBenchEpisode(truth.path)
    open(pkl, "wb").write(b"\x80\x04garbage that is no pickle")
    with pytest.raises(RLBenchDataError, match=r"low_dim_obs\.pkl: corrupt"):
        RLBenchEpisode(truth.path)
    os.remove(pkl)
    with pytest.raises(
        RLBenchDataError, match=r"low_dim_obs\.pkl: expected the RLBench demo.*missing"
    ):
        RLBenchEpisode(truth.path)


# ----------------------------------------------------------------------------- layout
def test_find_episodes_orders_like_rlbench_and_checks_tasks(dataset):
    root, _ = dataset
    refs = find_episodes(root)
    assert [(r.episode, r.variation) for r in refs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert {r.task for r in refs} == {"close_box"}
    assert find_episodes(root / "close_box")[0].path == refs[0].path  # a task folder works too
    assert len(find_episodes(root, tasks=["close-box"])) == 4
    with pytest.raises(
        RLBenchDataError,
        match=r"no episodes of task\(s\) \['open_drawer'\]; found tasks \['close_box'\]",
    ):
        find_episodes(root, tasks=["open_drawer"])
    with pytest.raises(RLBenchDataError, match="found nothing"):
        find_episodes(root / "nope")


def test_all_variations_layout_reads_episode_level_descriptions(tmp_path):
    truths = fx.write_dataset(
        str(tmp_path), variations=2, episodes=1, layout="all_variations", cameras=("front",)
    )
    refs = find_episodes(tmp_path)
    assert [r.layout for r in refs] == ["all_variations"] * 2
    ep = RLBenchEpisode(refs[1], cameras=["front"])
    assert ep.variation == truths[1].variation == 1
    assert ep.instruction == "close box 1" and len(ep.descriptions) == 2


# ----------------------------------------------------------------------------- values
def test_low_dim_fields_and_instruction(dataset):
    root, truths = dataset
    ref = find_episodes(root)[1]  # episode 0 of variation 1
    truth = next(t for t in truths if (t.episode, t.variation) == (ref.episode, ref.variation))
    ep = RLBenchEpisode(ref, cameras=list(CAMS))
    assert len(ep) == len(truth.gripper_pose) and ep.variation == 1
    assert ep.instruction == "close box 1"
    np.testing.assert_array_equal(ep.gripper_pose, truth.gripper_pose)
    np.testing.assert_array_equal(ep.gripper_open, truth.gripper_open)
    np.testing.assert_array_equal(ep.joint_velocities, truth.joint_velocities)
    assert ep.joint_positions.shape == (len(ep), 7) and ep.image_size("front") == (48, 64)


def test_depth_png_round_trip_matches_rlbench_encoding(dataset, tmp_path):
    # RLBench's encoder -> our decoder: within half a quantization step (+ float32 rounding)
    rng = np.random.default_rng(1)
    d01 = rng.uniform(0, 1, size=(7, 9))
    d01[0, 0], d01[0, 1] = 0.0, 1.0
    fx.float_array_to_rgb_image(d01).save(tmp_path / "d.png")
    back = decode_depth(np.asarray(Image.open(tmp_path / "d.png")))
    assert np.abs(back - d01).max() <= 0.5 / fx.DEPTH_SCALE + 1e-15
    assert back[0, 0] == 0.0 and back[0, 1] == 1.0
    # through the reader: metres between the clipping planes
    root, truths = dataset
    ep = RLBenchEpisode(find_episodes(root)[0], cameras=list(CAMS))
    for cam in CAMS:
        got = ep.depth(cam, 4)
        want = truths[0].depth[cam][4]
        step = (fx.FAR - fx.NEAR) / fx.DEPTH_SCALE
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() <= 0.5 * step + 4 * np.finfo(np.float32).eps * fx.FAR
        assert ep.clipping_planes(cam, 4) == (fx.NEAR, fx.FAR)
    np.testing.assert_array_equal(ep.mask("front", 4), truths[0].handles["front"][4])
    rgb = ep.rgb("front", 4)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)


def test_point_cloud_equals_pyrep_unprojection(dataset):
    root, truths = dataset
    ep = RLBenchEpisode(find_episodes(root)[0], cameras=list(CAMS))
    for cam in CAMS:
        K, E = truths[0].cameras[cam]
        depth = ep.depth(cam, 2).astype(np.float64)
        want = fx.pyrep_pointcloud(depth, E, K)
        got = ep.point_cloud(cam, 2)
        assert got.shape == (48, 64, 3)
        np.testing.assert_allclose(got, want, atol=1e-9)
    # the box is where the ray caster put it: the points of box pixels lie on its surface
    K, E = truths[0].cameras["front"]
    box = truths[0].handles["front"][2] == 5000
    pts = ep.point_cloud("front", 2)[box]
    lo = truths[0].box_center - [0.08, 0.08, 0.08]
    hi = truths[0].box_center + [0.08, 0.08, 0.08]
    assert box.sum() > 3 and np.all((pts >= lo - 1e-4) & (pts <= hi + 1e-4))


def test_opencv_conversion_reproduces_pyrep_for_random_cameras():
    import torch

    from toolkit.ops.cameras import check_rigid, project_points, unproject_depth

    rng = np.random.default_rng(0)
    for _ in range(5):
        h, w = rng.integers(5, 40, size=2)
        fov = rng.uniform(20, 90)
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        x, y, z, s = q
        R = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * s), 2 * (x * z + y * s)],
                [2 * (x * y + z * s), 1 - 2 * (x * x + z * z), 2 * (y * z - x * s)],
                [2 * (x * z - y * s), 2 * (y * z + x * s), 1 - 2 * (x * x + y * y)],
            ]
        )
        E = np.eye(4)
        E[:3, :3], E[:3, 3] = R, rng.normal(size=3)
        f = -w / (2 * np.tan(np.radians(fov) / 2))
        K = np.array([[f, 0, w / 2], [0, f * rng.uniform(0.8, 1.2), h / 2], [0, 0, 1.0]])
        depth = rng.uniform(0.2, 3.0, size=(h, w))
        K_cv, E_cv = to_opencv(K, E)
        assert K_cv[0, 0] > 0 and K_cv[1, 1] > 0
        check_rigid(E_cv)
        got = unproject_depth(torch.as_tensor(depth), torch.as_tensor(K_cv), torch.as_tensor(E_cv))
        np.testing.assert_allclose(got.numpy(), fx.pyrep_pointcloud(depth, E, K), atol=1e-9)
        # and projecting back lands on the pixel centres (OpenCV convention)
        cam = (got.reshape(-1, 3) - torch.as_tensor(E_cv[:3, 3])) @ torch.as_tensor(E_cv[:3, :3])
        uv, z_ = project_points(cam, torch.as_tensor(K_cv))
        v_idx, u_idx = np.mgrid[0:h, 0:w]
        np.testing.assert_allclose(
            uv.numpy(), np.stack([u_idx, v_idx], -1).reshape(-1, 2) + 0.5, atol=1e-7
        )
    with pytest.raises(RLBenchDataError, match="focal lengths of one sign"):
        to_opencv(np.diag([-5.0, 5.0, 1.0]), np.eye(4))


# ----------------------------------------------------------------------------- keyframes
def test_keyframes_match_the_perac_heuristic(dataset):
    root, _ = dataset
    ep = RLBenchEpisode(find_episodes(root)[0], cameras=[])
    assert ep.keyframes() == fx.reference_keypoint_discovery(ep.observations) == [5, 10, 16]
    rng = np.random.default_rng(0)
    for trial in range(300):
        T = int(rng.integers(1, 40))
        gopen = (rng.random(T) < rng.uniform(0.1, 0.9)).astype(float)
        if trial % 2:  # long runs of one state, as real demos have
            gopen = np.repeat(gopen[: max(1, T // 6)], 6)[:T]
            T = len(gopen)
        vel = rng.normal(scale=0.2, size=(T, 7)) * (rng.random((T, 1)) < 0.6)
        demo = [
            fx.Observation(
                *([None] * 20), vel[i], None, None, gopen[i], None, None, None, None, None, None
            )
            for i in range(T)
        ]
        assert keypoint_discovery(gopen, vel) == fx.reference_keypoint_discovery(demo), trial


# ----------------------------------------------------------------------------- bad frames
def test_missing_frame_wrong_size_and_missing_camera_parameters(tmp_path):
    truth = _fresh(tmp_path, cameras=("front",))
    os.remove(os.path.join(truth.path, "front_rgb", "3.png"))
    with pytest.raises(
        RLBenchDataError, match=r"front_rgb: expected frames 0\.\.16 .*missing 3\.png"
    ):
        RLBenchEpisode(truth.path, cameras=["front"])
    Image.new("RGB", (64, 48)).save(os.path.join(truth.path, "front_rgb", "3.png"))
    os.rename(os.path.join(truth.path, "front_depth"), os.path.join(truth.path, "x"))
    with pytest.raises(
        RLBenchDataError,
        match=r"front_depth: expected the front camera's depth frames, found no folder",
    ):
        RLBenchEpisode(truth.path, cameras=["front"])
    os.rename(os.path.join(truth.path, "x"), os.path.join(truth.path, "front_depth"))
    ep = RLBenchEpisode(truth.path, cameras=["front"])
    bad = os.path.join(truth.path, "front_depth", "5.png")
    Image.new("RGB", (16, 16)).save(bad)
    with pytest.raises(
        RLBenchDataError,
        match=rf"{bad}: expected the front depth frame 5 of size \(48, 64\).*found \(16, 16\)",
    ):
        ep.depth("front", 5)
    Image.new("L", (64, 48)).save(bad)
    with pytest.raises(
        RLBenchDataError,
        match=r"5\.png: expected the front depth frame 5 as an 8-bit RGB image, found mode L",
    ):
        ep.depth("front", 5)
    open(bad, "wb").write(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(
        RLBenchDataError,
        match=r"5\.png: expected the front depth frame 5 as a PNG, found an unreadable image",
    ):
        ep.depth("front", 5)
    # an older dataset without camera parameters in misc
    demo = load_pickle(os.path.join(truth.path, "low_dim_obs.pkl"))
    for o in demo.observations:
        o.misc.pop("front_camera_near")
        o.__class__ = fx.Observation
    fx.dump_rlbench_pickle(fx.Demo(demo.observations), os.path.join(truth.path, "low_dim_obs.pkl"))
    with pytest.raises(
        RLBenchDataError, match=r"step 0: misc: expected \['front_camera_near'\] \(RLBench >= 1\.0"
    ):
        RLBenchEpisode(truth.path, cameras=["front"])
