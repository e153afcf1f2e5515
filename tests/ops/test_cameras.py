"""Camera math: intrinsics, rigid checks, look-at, unprojection (round trips vs projection)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toolkit.ops.cameras import (
    NotRigidError,
    check_rigid,
    depth_to_points,
    intrinsics_from_fovy,
    invert_rigid,
    look_at,
    project_points,
    unproject_depth,
)
from toolkit.utils.errors import ToolkitError


def random_rigid(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.linalg.det(q)[:, None, None]  # det +1
    T = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    T[:, :3, :3] = q
    T[:, :3, 3] = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return T


def test_intrinsics_optical_axis_hits_image_center():
    K = intrinsics_from_fovy(60.0, 48, 64)
    assert K.shape == (3, 3)
    assert K[0, 0] == K[1, 1] == pytest.approx(24 / math.tan(math.radians(30)))
    uv, z = project_points(torch.tensor([[0.0, 0.0, 2.0]]), K)
    assert uv[0].tolist() == [32.0, 24.0] and z[0] == 2.0
    # The top edge of the vertical field of view maps to v' = 0.
    y = -math.tan(math.radians(30))
    K64 = intrinsics_from_fovy(60.0, 48, 64, dtype=torch.float64)
    uv, _ = project_points(torch.tensor([[0.0, y, 1.0]], dtype=torch.float64), K64)
    assert uv[0, 1].item() == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ToolkitError, match="fovy"):
        intrinsics_from_fovy(180.0, 4, 4)


def test_check_rigid_accepts_rigid_and_rejects_scaled_sheared_reflected():
    T = random_rigid(5)
    check_rigid(T)
    check_rigid(T.float())
    scaled = T.clone()
    scaled[2, :3, :3] *= 1.01
    with pytest.raises(
        NotRigidError, match=r"extrinsics: rotation block is not orthonormal.*index 2"
    ):
        check_rigid(scaled)
    sheared = T[0].clone()
    sheared[0, 1] += 0.05
    with pytest.raises(ValueError, match="scaled or sheared"):
        check_rigid(sheared, name="cam0")
    reflected = T[0].clone()
    reflected[:3, 2] *= -1
    with pytest.raises(ToolkitError, match="determinant"):
        check_rigid(reflected)
    bottom = T[0].clone()
    bottom[3, 0] = 0.2
    with pytest.raises(NotRigidError, match="bottom row"):
        check_rigid(bottom)
    with pytest.raises(NotRigidError, match="shape"):
        check_rigid(torch.eye(3))
    nan = T[0].clone()
    nan[0, 3] = float("nan")
    with pytest.raises(NotRigidError, match="NaN"):
        check_rigid(nan)


def test_invert_rigid():
    T = random_rigid(4, seed=1)
    assert torch.allclose(invert_rigid(T), torch.linalg.inv(T), atol=1e-12)


def test_look_at_is_rigid_and_points_z_at_target():
    g = torch.Generator().manual_seed(2)
    eye = torch.randn(64, 3, generator=g, dtype=torch.float64)
    target = torch.randn(64, 3, generator=g, dtype=torch.float64)
    T = look_at(eye, target)
    check_rigid(T, atol=1e-9)
    d = (target - eye) / (target - eye).norm(dim=-1, keepdim=True)
    assert torch.allclose(T[:, :3, 2], d, atol=1e-12)
    assert torch.allclose(T[:, :3, 3], eye)
    # Target in the camera frame is on the optical axis.
    p_cam = (
        invert_rigid(T) @ torch.cat([target, torch.ones(64, 1, dtype=torch.float64)], -1)[..., None]
    )[:, :3, 0]
    assert torch.allclose(p_cam[:, :2], torch.zeros(64, 2, dtype=torch.float64), atol=1e-12)
    assert (p_cam[:, 2] > 0).all()
    # Up (+z) appears toward the top of the image: camera +y (down) has a negative world z.
    assert (T[:, 2, 1] <= 1e-12).all()


def test_look_at_straight_down_and_broadcast():
    T = look_at(torch.tensor([0.0, 0.0, 2.0]), torch.zeros(3))
    check_rigid(T)
    assert torch.allclose(T[:3, 2], torch.tensor([0.0, 0.0, -1.0]))
    assert torch.allclose(T[:3, 1], torch.tensor([0.0, -1.0, 0.0]))  # image top = world +y
    T2 = look_at(torch.zeros(2, 5, 3) + torch.tensor([1.0, 0, 0]), torch.zeros(3))
    assert T2.shape == (2, 5, 4, 4)
    with pytest.raises(ToolkitError, match="coincide"):
        look_at(torch.zeros(3), torch.zeros(3))


def test_unproject_round_trips_through_projection():
    H, W = 6, 8
    K = torch.tensor([[7.0, 0.3, 3.9], [0.0, 6.5, 3.2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    depth = 0.5 + torch.rand(2, H, W, dtype=torch.float64)
    T = random_rigid(2, seed=3)
    cam = unproject_depth(depth, K)
    assert cam.shape == (2, H, W, 3)
    uv, z = project_points(cam.reshape(2, -1, 3), K)
    v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    centers = torch.stack([u, v], -1).reshape(-1, 2).double() + 0.5
    assert torch.allclose(uv, centers.expand(2, -1, -1), atol=1e-12)
    assert torch.allclose(z, depth.reshape(2, -1))
    world = unproject_depth(depth, K, T)
    back = (world.reshape(2, -1, 3) - T[:, None, :3, 3]) @ T[:, :3, :3]  # R^T (p - t)
    assert torch.allclose(back, cam.reshape(2, -1, 3), atol=1e-12)
    # numpy inputs and a batch of K.
    w2 = unproject_depth(depth.numpy(), np.stack([K.numpy()] * 2), T.numpy())
    assert torch.allclose(w2, world)


def test_unproject_checks_extrinsics():
    with pytest.raises(NotRigidError, match="cam_to_world"):
        unproject_depth(torch.ones(2, 2), torch.eye(3), torch.eye(4) * 2)


def test_depth_to_points_drops_invalid_and_background():
    depth = torch.tensor([[1.0, float("nan"), 0.0], [float("inf"), 50.0, 2.0]])
    K = intrinsics_from_fovy(90.0, 2, 3)
    pts, valid = depth_to_points(depth, K, torch.eye(4), max_depth=10.0)
    assert valid.tolist() == [[True, False, False], [False, False, True]]
    assert pts.shape == (2, 3)
    assert pts[:, 2].tolist() == [1.0, 2.0]
    pts_all, valid_all = depth_to_points(depth, K)
    assert int(valid_all.sum()) == 3 and pts_all.shape == (3, 3)
