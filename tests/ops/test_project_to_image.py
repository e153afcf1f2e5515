"""project_to_image: normalized image coordinates of world points through a known camera."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from toolkit.ops.cameras import intrinsics_from_fovy, look_at, project_to_image, unproject_depth
from toolkit.utils.errors import ShapeError


def camera(H: int = 48, W: int = 64, eye=(1.0, -2.0, 1.5), target=(0.1, 0.2, 0.0)):
    K = intrinsics_from_fovy(60.0, H, W, dtype=torch.float64)
    T = look_at(torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64))
    return K, T


def test_optical_axis_lands_at_image_center():
    K, T = camera()
    eye, target = T[:3, 3], torch.tensor([0.1, 0.2, 0.0], dtype=torch.float64)
    on_axis = torch.stack([target, eye + 0.3 * (target - eye), eye + 5.0 * (target - eye)])
    uv, depth, inside = project_to_image(on_axis, K, T, (48, 64))
    assert torch.allclose(uv, torch.full_like(uv, 0.5), atol=1e-12)
    dist = (target - eye).norm()
    assert torch.allclose(depth, torch.stack([dist, 0.3 * dist, 5.0 * dist]))
    assert inside.all()


def test_behind_and_outside_the_frustum_are_not_inside():
    H, W = 48, 64
    K, T = camera(H, W)
    R, eye = T[:3, :3], T[:3, 3]
    x_axis, y_axis, z_axis = R[:, 0], R[:, 1], R[:, 2]
    half_w = math.atan(0.5 * W / K[0, 0].item())  # horizontal half field of view
    pts = torch.stack(
        [
            eye - 2.0 * z_axis,  # behind the camera, on the axis
            eye - 2.0 * z_axis + 0.1 * x_axis,  # behind, off axis
            eye,  # at the camera center (z = 0)
            eye + z_axis + 1.05 * math.tan(half_w) * x_axis,  # just right of the frustum
            eye + z_axis - 1.05 * math.tan(half_w) * x_axis,  # just left
            eye + z_axis + 0.95 * math.tan(half_w) * x_axis,  # just inside, right
            eye + z_axis - 0.55 * y_axis,  # up, inside (tan(fovy / 2) = .577)
            eye + z_axis - 0.60 * y_axis,  # up, above the top edge
        ]
    )
    uv, depth, inside = project_to_image(pts, K, T, (H, W))
    assert inside.tolist() == [False, False, False, False, False, True, True, False]
    assert (depth[:2] < 0).all() and depth[2].abs() < 1e-12
    assert uv[3, 0] > 1 and uv[4, 0] < 0 and 0.9 < uv[5, 0] < 1
    assert uv[6, 1] > 0 and uv[7, 1] < 0


def test_pixel_centers_and_right_open_border():
    """Pixel (i, j) center at ((i + .5) / W, (j + .5) / H); u = W itself is outside."""
    H, W = 4, 6
    K = torch.tensor([[10.0, 0.0, 3.0], [0.0, 10.0, 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)
    # camera frame == world frame: pixel coordinate u' = 10 x / z + 3
    us = torch.tensor([0.0, 0.5, 5.5, 6.0], dtype=torch.float64)
    pts = torch.stack([(us - 3.0) / 10.0, torch.zeros(4, dtype=torch.float64), torch.ones(4)], -1)
    uv, _, inside = project_to_image(pts, K, T, (H, W))
    assert torch.allclose(uv[:, 0], us / W)
    assert torch.allclose(uv[:, 1], torch.full((4,), 0.5, dtype=torch.float64))
    assert inside.tolist() == [True, True, True, False]


def test_round_trip_with_unproject_depth_and_grid_sample():
    """Unprojected pixel centers project back onto themselves; grid_sample reads the pixel."""
    H, W = 12, 16
    K, T = camera(H, W)
    g = torch.Generator().manual_seed(0)
    depth = 1.0 + torch.rand(H, W, generator=g, dtype=torch.float64)
    pts = unproject_depth(depth, K, T).reshape(-1, 3)
    uv, z, inside = project_to_image(pts, K, T, (H, W))
    jj, ii = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    expected = torch.stack([(ii + 0.5) / W, (jj + 0.5) / H], -1).reshape(-1, 2).double()
    assert torch.allclose(uv, expected, atol=1e-9)
    assert torch.allclose(z, depth.reshape(-1), atol=1e-9)
    assert inside.all()
    # the align_corners=False convention: sampling the depth image at uv returns the pixel
    grid = (2 * uv - 1).view(1, 1, -1, 2)
    sampled = F.grid_sample(depth[None, None], grid, mode="bilinear", align_corners=False)
    assert torch.allclose(sampled.reshape(-1), depth.reshape(-1), atol=1e-9)


def test_batched_leading_dims_broadcast():
    H, W = 48, 64
    K1, T1 = camera(H, W)
    K2, T2 = camera(H, W, eye=(-1.0, 1.0, 2.0), target=(0.0, 0.0, 0.3))
    K = torch.stack([K1, K2])
    T = torch.stack([T1, T2])
    pts = torch.randn(2, 5, 3, dtype=torch.float64) * 0.3
    uv, z, inside = project_to_image(pts, K, T, (H, W))
    assert uv.shape == (2, 5, 2) and z.shape == (2, 5) and inside.shape == (2, 5)
    for b, (Kb, Tb) in enumerate([(K1, T1), (K2, T2)]):
        uvb, zb, ib = project_to_image(pts[b], Kb, Tb, (H, W))
        assert torch.allclose(uv[b], uvb) and torch.allclose(z[b], zb)
        assert torch.equal(inside[b], ib)


def test_bad_shapes_raise():
    K, T = camera()
    with pytest.raises(ShapeError, match="points_world"):
        project_to_image(torch.zeros(4, 2, dtype=torch.float64), K, T, (48, 64))
    with pytest.raises(ShapeError, match="cam_to_world"):
        project_to_image(torch.zeros(4, 3, dtype=torch.float64), K, T[:3], (48, 64))
    with pytest.raises(ShapeError, match="image_hw"):
        project_to_image(torch.zeros(4, 3, dtype=torch.float64), K, T, (0, 64))
