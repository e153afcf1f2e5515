"""The generation speed paths of the MuJoCo camera rig give the arrays of the straightforward ones.

- :meth:`MujocoRig.rgbd` (one render pass, both buffers read) against :meth:`MujocoRig.rgb` +
  :meth:`MujocoRig.depth` (two passes, :class:`mujoco.Renderer`'s depth mode), on ALOHA (upright
  cameras, several sizes) and MetaWorld (180-degree-rolled cameras, rotated back);
- the fallback to two passes when a visible geom is semi-transparent (such geoms write no depth
  in a normal render: checked on a scene built for it);
- ``RigObservations.point_cloud`` / ``merged_points`` against
  :func:`toolkit.ops.cameras.depth_to_points` + :func:`toolkit.ops.pointcloud.process_cloud`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.envs import get_suite
from toolkit.envs.base import CameraSpec
from toolkit.envs.metaworld.cameras import MujocoRig
from toolkit.envs.rig_env import to_numpy
from toolkit.ops.cameras import depth_to_points
from toolkit.ops.pointcloud import crop_to_bounds, process_cloud

#: Depth from one pass vs the depth-mode pass: the same buffer and arithmetic, so equal; the
#: tolerance (0.01 mm) only leaves room for a GL driver that rasterizes the passes differently.
DEPTH_ATOL = 1e-5


def _reference_cloud(env, depth):
    """The cloud as the generic ops build it (every pixel unprojected, torch crop + sampling)."""
    parts = []
    for cam in env.point_cameras:
        K, T = env.camera_params(cam)
        pts, _ = depth_to_points(depth[cam], K, T, max_depth=env.max_depth)
        parts.append(to_numpy(pts).astype(np.float32, copy=False))
    merged = np.concatenate(parts, axis=0)
    pts, mask, stats = process_cloud(
        merged,
        bounds=env.bounds,
        voxel_size=env.voxel_size,
        n=env.num_points,
        method=env.sample_method,
        on_empty="pad",
    )
    return merged, to_numpy(pts), to_numpy(mask), stats


def _check_rgbd(env, names):
    for cam in names:
        rgb2, depth2 = env.rig.rgb(env.data, cam), env.rig.depth(env.data, cam)
        rgb1, depth1 = env.rig.rgbd(env.data, cam)
        assert rgb1.dtype == np.uint8 and depth1.dtype == np.float32
        assert rgb1.shape == rgb2.shape and depth1.shape == depth2.shape
        assert rgb1.flags.c_contiguous and depth1.flags.c_contiguous
        np.testing.assert_array_equal(rgb1, rgb2, err_msg=cam)
        np.testing.assert_allclose(depth1, depth2, rtol=0, atol=DEPTH_ATOL, err_msg=cam)
        # the image is not trivially empty: near geometry and background both present
        assert depth2.min() < 2.0 and depth2.max() > 10.0


def _check_cloud(env, depth):
    merged_ref, pts_ref, mask_ref, stats_ref = _reference_cloud(env, depth)
    merged = env.merged_points(depth)
    assert merged.dtype == np.float32 and merged.shape == merged_ref.shape
    # same float32 operations in the same order: equal (tolerance: 1 um, float32 rounding)
    np.testing.assert_allclose(merged, merged_ref, rtol=0, atol=1e-6)
    cropped = env.merged_points(depth, env.bounds)  # the crop fused into the unprojection
    cropped_ref = crop_to_bounds(merged_ref, env.bounds).numpy()
    assert cropped.dtype == np.float32 and cropped.shape == cropped_ref.shape
    assert 0 < len(cropped) < len(merged)  # the crop really drops points
    np.testing.assert_allclose(cropped, cropped_ref, rtol=0, atol=1e-6)
    pts, mask, stats = env.point_cloud(depth)
    assert pts.dtype == np.float32 and mask.dtype == bool
    if np.array_equal(merged, merged_ref):  # bit-equal input: the sampler picks the same points
        np.testing.assert_array_equal(pts, pts_ref)
        np.testing.assert_array_equal(mask, mask_ref)
    assert stats == stats_ref


@pytest.fixture(scope="module")
def aloha_env():
    pytest.importorskip("gym_aloha")
    cams = {"front_left": (48, 64), "back_right": (64, 64), "left_wrist": (64, 64)}
    env = get_suite("aloha").make_env("drawer_open", cameras=cams, num_points=512)
    yield env
    env.close()


def test_aloha_one_pass_rgbd_equals_two_passes(aloha_env):
    env = aloha_env
    obs = env.reset(seed=1)
    assert env.rig.one_pass  # the ALOHA scenes are opaque
    _check_rgbd(env, [c.name for c in env.cameras])
    # the observation (one pass per camera) holds the two-pass images
    for cam in obs["rgb"]:
        np.testing.assert_array_equal(obs["rgb"][cam], env.rig.rgb(env.data, cam))
        np.testing.assert_allclose(
            obs["depth"][cam], env.rig.depth(env.data, cam), rtol=0, atol=DEPTH_ATOL
        )
    assert list(obs["rgb"]) == list(obs["depth"]) == [c.name for c in env.cameras]


def test_aloha_cloud_equals_generic_ops(aloha_env):
    env = aloha_env
    obs = env.reset(seed=2)
    _check_cloud(env, obs["depth"])
    # after some motion too (the wrist camera moves)
    target = obs["qpos"].copy()
    target[:6] += 0.2
    for _ in range(5):
        obs, *_ = env.step(target)
    _check_cloud(env, obs["depth"])


def test_aloha_depth_only_and_rgb_only_observations(aloha_env):
    """Cameras that need one image only are rendered in one (plain) pass each."""
    env = aloha_env
    env.reset(seed=0)
    names = [c.name for c in env.cameras]
    rgb, depth = env.render_images(names[:1], names[1:])
    assert list(rgb) == names[:1] and list(depth) == names[1:]
    np.testing.assert_array_equal(rgb[names[0]], env.rig.rgb(env.data, names[0]))
    np.testing.assert_array_equal(depth[names[1]], env.rig.depth(env.data, names[1]))
    assert env.render_images([], []) == ({}, {})


def test_metaworld_skybox_falls_back_and_cloud():
    """MetaWorld's skybox writes depth in a lit render: its rig renders twice, same arrays."""
    pytest.importorskip("metaworld")
    env = get_suite("metaworld").make_env("reach", cameras={"corner": (64, 64)}, num_points=256)
    try:
        obs = env.reset(seed=0)
        assert env.rig.flipped(env.data, "corner")  # the 180-degree-rolled camera
        assert not env.rig.one_pass
        _check_rgbd(env, ["corner"])
        _check_cloud(env, obs["depth"])
    finally:
        env.close()


_SCENE = """<mujoco><visual><global offwidth="64" offheight="64"/></visual><worldbody>
<light pos="0 0 3"/>
<geom type="plane" size="2 2 .1" rgba=".5 .5 .5 1"/>
<geom name="box" type="box" pos="0 0 0.5" size=".3 .3 .3" rgba="1 0 0 {alpha}"/>
<camera name="top" pos="0 0 2"/>
<camera name="rolled" pos="0 -2 0.5" xyaxes="-1 0 0 0 0 -1"/>
</worldbody>{extra}</mujoco>"""


def _rig(xml: str, upright: bool = False):
    import mujoco

    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    cams = (CameraSpec("top", 32, 32), CameraSpec("rolled", 24, 40))
    return MujocoRig(model, cams, upright=upright), data


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_semi_transparent_geoms_fall_back_to_two_passes(alpha):
    rig, data = _rig(_SCENE.format(alpha=alpha, extra=""))
    try:
        assert rig.one_pass == (alpha == 1.0)
        rgb1, depth1 = rig.rgbd(data, "top")
        np.testing.assert_array_equal(rgb1, rig.rgb(data, "top"))
        np.testing.assert_array_equal(depth1, rig.depth(data, "top"))
        # the box's top face (z = 0.8) is 1.2 m below the camera, seen in depth either way
        assert abs(float(depth1[16, 16]) - 1.2) < 1e-3
    finally:
        rig.close()


def test_one_pass_on_a_rolled_upright_camera():
    """A camera whose image up points down is rotated by 180 degrees in both paths."""
    rig, data = _rig(_SCENE.format(alpha=1.0, extra=""), upright=True)
    try:
        assert rig.one_pass and rig.flipped(data, "rolled") and not rig.flipped(data, "top")
        for cam in ("rolled", "top"):
            rgb1, depth1 = rig.rgbd(data, cam)
            np.testing.assert_array_equal(rgb1, rig.rgb(data, cam))
            np.testing.assert_array_equal(depth1, rig.depth(data, cam))
        # upright: the floor (near) fills the bottom rows of the rolled view, the sky the top
        d = rig.depth(data, "rolled")
        assert d[-1].mean() < d[0].mean()
    finally:
        rig.close()


def test_skybox_falls_back_to_two_passes():
    sky = '<asset><texture type="skybox" builtin="gradient" width="16" height="16"/></asset>'
    rig, data = _rig(_SCENE.format(alpha=1.0, extra=sky))
    try:
        assert not rig.one_pass
        rgb1, depth1 = rig.rgbd(data, "rolled")
        np.testing.assert_array_equal(depth1, rig.depth(data, "rolled"))
        assert depth1.max() > 10.0  # the sky reads as the far plane, as in the depth mode
    finally:
        rig.close()


def test_one_pass_depth_ignores_hidden_and_invisible_geoms():
    """Semi-transparent geoms in hidden groups (3-5) or fully transparent ones are not drawn
    in either mode: they keep the one-pass path."""
    xml = _SCENE.replace(
        "</worldbody>",
        '<geom type="sphere" size=".1" pos="1 0 1" rgba="0 1 0 0.5" group="3"/>'
        '<geom type="sphere" size=".1" pos="-1 0 1" rgba="0 1 0 0"/></worldbody>',
    ).format(alpha=1.0, extra="")
    rig, _data = _rig(xml)
    try:
        assert rig.one_pass
    finally:
        rig.close()


def test_unit_rays_match_unproject_depth(aloha_env):
    """The cached rays are the per-pixel factors of toolkit.ops.cameras.unproject_depth."""
    from toolkit.ops.cameras import unproject_depth

    env = aloha_env
    K = env.rig.intrinsics("front_left")
    xn, yn = env._rays("front_left", K, (48, 64))
    d = torch.full((48, 64), 2.0)
    ref = unproject_depth(d, K).numpy()
    np.testing.assert_array_equal(xn * np.float32(2.0), ref[..., 0])
    np.testing.assert_array_equal(yn * np.float32(2.0), ref[..., 1])
