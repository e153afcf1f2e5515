"""Unprojection conventions against a real MuJoCo scene: rendered metric depth, unprojected with
our intrinsics / extrinsics, must land on the surfaces that ``mujoco.mj_ray`` hits; and our
renderer must reproduce the depth image from the unprojected cloud."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco's GL context

import numpy as np
import pytest
import torch

from toolkit.ops.cameras import (
    check_rigid,
    depth_to_points,
    look_at,
    mujoco_cam_to_world,
    mujoco_intrinsics,
    unproject_depth,
)
from toolkit.ops.render import VirtualCameras, render_views
from toolkit.utils.errors import ToolkitError

try:  # with MUJOCO_GL=egl, importing mujoco already loads the EGL bindings
    import mujoco
except Exception as exc:  # noqa: BLE001 - ImportError, or a GL library error
    pytest.skip(f"mujoco unavailable: {exc}", allow_module_level=True)

H, W = 96, 128  # not square: catches H/W mix-ups


def _mj_camera_xyaxes() -> str:
    """MuJoCo xyaxes of a camera at EYE looking at the scene, rolled by 20 degrees."""
    T = look_at(
        torch.tensor(EYE, dtype=torch.float64), torch.tensor([0.0, 0.05, 0.1], dtype=torch.float64)
    )
    R = T[:3, :3].numpy()
    a = np.radians(20.0)
    roll = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    R = R @ roll  # rotate about the optical axis
    x_mj, y_mj = R[:, 0], -R[:, 1]  # OpenCV -> MuJoCo: y up
    return " ".join(f"{v:.9f}" for v in (*x_mj, *y_mj))


EYE = (0.75, -0.6, 0.65)


def scene_xml() -> str:
    return f"""
<mujoco>
  <visual><map znear="0.01" zfar="20"/></visual>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="3 3 0.1"/>
    <geom type="box" pos="0.15 0.1 0.1" size="0.1 0.06 0.1" euler="0 0 30"/>
    <geom type="sphere" pos="-0.2 0.2 0.12" size="0.12"/>
    <geom type="capsule" fromto="-0.15 -0.25 0.05 0.2 -0.1 0.22" size="0.04"/>
    <geom type="cylinder" pos="0.3 -0.2 0.08" size="0.05 0.08" euler="40 0 0"/>
    <body name="mount" pos="0.1 0 0" euler="0 0 0">
      <camera name="cam" pos="{EYE[0] - 0.1} {EYE[1]} {EYE[2]}" xyaxes="{_mj_camera_xyaxes()}" fovy="52"/>
    </body>
  </worldbody>
</mujoco>
"""


@pytest.fixture(scope="module")
def scene():
    model = mujoco.MjModel.from_xml_string(scene_xml())
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    try:
        renderer = mujoco.Renderer(model, height=H, width=W)
    except Exception as exc:  # no EGL / GL context on this machine
        pytest.skip(
            f"MuJoCo offscreen rendering unavailable (MUJOCO_GL={os.environ.get('MUJOCO_GL')}): {exc}"
        )
    renderer.enable_depth_rendering()
    renderer.update_scene(data, camera="cam")
    depth = renderer.render().copy()
    renderer.close()
    far = model.vis.map.zfar * model.stat.extent
    return model, data, depth, far


def test_mujoco_camera_conventions(scene):
    model, data, _, _ = scene
    T = mujoco_cam_to_world(model, data, "cam")
    check_rigid(T, atol=1e-9)
    assert np.allclose(T[:3, 3], EYE)
    # The OpenCV +z axis is MuJoCo's viewing direction (-z of cam_xmat).
    assert np.allclose(T[:3, 2], -data.cam_xmat[0].reshape(3, 3)[:, 2])
    assert np.allclose(mujoco_cam_to_world(model, data, 0), T)
    K = mujoco_intrinsics(model, "cam", H, W)
    assert np.allclose(K[:2, 2], [W / 2, H / 2])
    assert np.isclose(K[1, 1], 0.5 * H / np.tan(np.radians(52) / 2))
    with pytest.raises(ToolkitError, match="no camera named"):
        mujoco_cam_to_world(model, data, "nope")


def test_unprojected_depth_lies_on_mj_ray_hits(scene):
    model, data, depth, far = scene
    T = mujoco_cam_to_world(model, data, "cam")
    K = mujoco_intrinsics(model, "cam", H, W)
    pts = unproject_depth(
        torch.from_numpy(depth).double(), torch.from_numpy(K), torch.from_numpy(T)
    ).numpy()
    valid = depth < 0.99 * far
    assert 0.5 < valid.mean() < 1.0  # some background too
    origin = T[:3, 3]
    errors = []
    geomid = np.zeros(1, dtype=np.int32)
    for v in range(2, H, 7):
        for u in range(3, W, 7):
            if not valid[v, u]:
                continue
            p = pts[v, u]
            ray = p - origin
            dist = np.linalg.norm(ray)
            hit = mujoco.mj_ray(model, data, origin, ray / dist, None, 1, -1, geomid)
            assert hit > 0, f"mj_ray missed the scene at pixel {(u, v)}"
            errors.append(abs(hit - dist))
    errors = np.array(errors)
    assert len(errors) > 150
    assert np.median(errors) < 1e-3, f"median error {np.median(errors) * 1e3:.3f} mm"
    assert np.percentile(errors, 90) < 5e-3


def test_renderer_reproduces_the_depth_image(scene):
    model, data, depth, far = scene
    T = torch.from_numpy(mujoco_cam_to_world(model, data, "cam"))
    K = torch.from_numpy(mujoco_intrinsics(model, "cam", H, W))
    pts, valid = depth_to_points(torch.from_numpy(depth).double(), K, T, max_depth=0.99 * far)
    assert int(valid.sum()) == pts.shape[0]
    cams = VirtualCameras(T[None], H, W, K=K[None])
    for dtype, min_agree in ((torch.float64, 1.0), (torch.float32, 0.999)):
        out = render_views(pts[None].to(dtype), cams)[0, 0]
        got = out[0] > 0
        assert (got == valid).float().mean() >= min_agree
        both = got & valid
        rel = (out[0][both].double() - torch.from_numpy(depth).double()[both]).abs() / out[0][
            both
        ].double()
        assert rel.max() < 1e-5
