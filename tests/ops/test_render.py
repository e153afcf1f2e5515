"""Virtual-view renderer vs an independent per-point Python z-buffer, rigs, patches, tiling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from toolkit.ops.cameras import check_rigid, intrinsics_from_fovy, look_at
from toolkit.ops.render import (
    VirtualCameras,
    clamp_cameras,
    clamp_fixed_cameras,
    dome_cameras,
    orthogonal_cameras,
    patch_coordinates,
    render_views,
    tile_views,
    untile_views,
    valid_pixels,
    wrist_cameras,
)
from toolkit.utils.errors import ShapeError, ToolkitError

BOUNDS = [[-0.3, -0.2, 0.0], [0.3, 0.4, 0.5]]


def reference_render(points, cameras: VirtualCameras, mask=None, fill=0.0, radius=0):
    """Loop z-buffer in float64 numpy straight from cam_to_world and K / extent.

    A point at z-depth z (> near) lands in pixel (floor(v'), floor(u')); the kept point of a
    pixel is the one with the smallest (float32(z), index)."""
    pts = np.asarray(points, dtype=np.float64)
    B, N, _ = pts.shape
    cams = cameras.expand(B)
    c2w = cams.cam_to_world.double().numpy()
    V, H, W = c2w.shape[1], cameras.height, cameras.width
    out = np.full((B, V, 4, H, W), fill, dtype=np.float64)
    for b in range(B):
        for v in range(V):
            w2c = np.linalg.inv(c2w[b, v])
            best: dict[tuple[int, int], tuple[np.float32, int, float]] = {}
            for n in range(N):
                if mask is not None and not mask[b, n]:
                    continue
                x, y, z = w2c[:3, :3] @ pts[b, n] + w2c[:3, 3]
                if not z > cameras.near:
                    continue
                if cameras.projection == "perspective":
                    K = cams.K[b, v].double().numpy()
                    uvw = K @ np.array([x, y, z])
                    u, vv = uvw[0] / uvw[2], uvw[1] / uvw[2]
                else:
                    ew, eh = cams.ortho_extent[b, v].double().numpy()
                    u, vv = (x / ew + 0.5) * W, (y / eh + 0.5) * H
                if not (0 <= u < W and 0 <= vv < H):
                    continue
                r0, c0 = math.floor(vv), math.floor(u)
                for r in range(r0 - radius, r0 + radius + 1):
                    for c in range(c0 - radius, c0 + radius + 1):
                        if 0 <= r < H and 0 <= c < W:
                            cand = (np.float32(z), n, z)
                            if (r, c) not in best or cand[:2] < best[(r, c)][:2]:
                                best[(r, c)] = cand
            for (r, c), (_, n, z) in best.items():
                out[b, v, 0, r, c] = z
                out[b, v, 1:, r, c] = pts[b, n]
    return out


def random_clouds(B=2, N=400, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(BOUNDS[0]), torch.tensor(BOUNDS[1])
    return (lo + (hi - lo) * torch.rand(B, N, 3, generator=g)).to(dtype)


def assert_matches(out, ref):
    out = out.numpy()
    np.testing.assert_array_equal(out[:, :, 1:], ref[:, :, 1:])  # same winning point
    np.testing.assert_allclose(out[:, :, 0], ref[:, :, 0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("radius", [0, 1])
def test_perspective_matches_loop_reference(radius):
    pts = random_clouds()
    cams = clamp_fixed_cameras(torch.tensor(BOUNDS, dtype=torch.float64), image_size=(24, 32))
    out = render_views(pts, cams, splat_radius=radius)
    assert out.shape == (2, 3, 4, 24, 32) and out.dtype == torch.float64
    ref = reference_render(pts, cams, radius=radius)
    assert (ref[:, :, 0] > 0).sum() > 200  # the test sees something
    assert_matches(out, ref)


def test_orthographic_matches_loop_reference():
    pts = random_clouds(seed=1)
    cams = orthogonal_cameras(torch.tensor(BOUNDS, dtype=torch.float64), image_size=(20, 16))
    out = render_views(pts, cams)
    ref = reference_render(pts, cams)
    assert (ref[:, :, 0] > 0).sum() > 200
    assert_matches(out, ref)


def test_per_cloud_cameras_mask_and_fill():
    pts = random_clouds(B=3, N=300, seed=2)
    g = torch.Generator().manual_seed(3)
    mask = torch.rand(3, 300, generator=g) > 0.4
    poses = torch.eye(4, dtype=torch.float64).repeat(3, 2, 1, 1)
    poses[:, :, :3, 3] = torch.tensor([[0.0, 0.1, 0.6], [0.1, 0.0, 0.7]], dtype=torch.float64)
    poses[1, :, :3, 3] += 0.05
    poses[:, :, :3, :3] = torch.diag(
        torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    )  # look down
    cams = clamp_cameras(poses, torch.tensor(BOUNDS, dtype=torch.float64), image_size=16)
    assert cams.cam_to_world.shape == (3, 5, 4, 4) and cams.names[-2:] == (
        "wrist_left",
        "wrist_right",
    )
    out = render_views(pts, cams, mask=mask, fill_value=-1.0)
    ref = reference_render(pts, cams, mask=mask.numpy(), fill=-1.0)
    assert_matches(out, ref)
    assert (out[:, :, 0] == -1).any() and (out[:, :, 0] > 0).any()
    # Masked-out points never appear.
    shown = out[:, :, 1:].permute(0, 1, 3, 4, 2).reshape(3, -1, 3)
    for b in range(3):
        hidden = pts[b][~mask[b]]
        assert not (shown[b][:, None, :] == hidden[None]).all(-1).any()


def test_ties_go_to_lowest_index_and_nearest_wins():
    # Camera at the origin looking along +z (identity rotation: depths are computed exactly).
    K = intrinsics_from_fovy(90.0, 4, 4, dtype=torch.float64)
    cams = VirtualCameras(torch.eye(4, dtype=torch.float64)[None], 4, 4, K=K[None])
    # Pixel (row 2, col 2) covers x/z, y/z in [0, 0.5): three points in it.
    pts = torch.tensor(
        [[[0.30, 0.1, 1.0], [0.10, 0.1, 1.0], [0.2, 0.2, 2.0], [0.05, 0.05, 1.0]]],
        dtype=torch.float64,
    )
    out = render_views(pts, cams)
    assert out[0, 0, 0, 2, 2] == 1.0
    assert out[0, 0, 1:, 2, 2].tolist() == [0.30, 0.1, 1.0]  # index 0 beats 1 and 3 (same depth)
    pts2 = pts.clone()
    pts2[0, 3, 2] = 0.999  # now strictly nearer
    assert render_views(pts2, cams)[0, 0, 1:, 2, 2].tolist() == [0.05, 0.05, 0.999]


def test_float32_agrees_with_float64_and_compiled_matches_eager():
    pts = random_clouds(B=2, N=3000, seed=4)
    cams = clamp_fixed_cameras(BOUNDS, image_size=32)
    ref = render_views(pts, cams)
    out32 = render_views(pts.float(), cams)
    assert out32.dtype == torch.float32
    same = (out32[:, :, 1:] == ref[:, :, 1:].float()).all(dim=2)
    assert same.float().mean() > 0.995
    # A cloud renders the same whatever batch it comes in.
    assert torch.equal(render_views(pts[1:].float(), cams), out32[1:])
    # Empty clouds / all-masked clouds give fill everywhere.
    empty = render_views(
        pts.float(), cams, mask=torch.zeros(2, 3000, dtype=torch.bool), fill_value=-1.0
    )
    assert (empty == -1).all()
    assert render_views(pts[:0], cams).shape == (0, 3, 4, 32, 32)


@pytest.mark.slow
def test_compiled_matches_eager():
    pts = random_clouds(B=2, N=3000, seed=5, dtype=torch.float32)
    mask = torch.rand(2, 3000, generator=torch.Generator().manual_seed(0)) > 0.2
    cams = clamp_fixed_cameras(BOUNDS, image_size=32)
    assert torch.equal(render_views(pts, cams, mask, compile=True), render_views(pts, cams, mask))
    ortho = orthogonal_cameras(BOUNDS, image_size=24)
    assert torch.equal(
        render_views(pts, ortho, splat_radius=1, compile=True),
        render_views(pts, ortho, splat_radius=1),
    )


def test_splat_radius_closes_holes():
    # A sparse grid on a plane facing a camera: one point per ~2 pixels leaves holes at r=0.
    xs = torch.linspace(-0.5, 0.5, 24, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.full_like(gx, 2.0)], -1).reshape(1, -1, 3)
    K = intrinsics_from_fovy(30.0, 48, 48, dtype=torch.float64)
    cams = VirtualCameras(torch.eye(4, dtype=torch.float64)[None], 48, 48, K=K[None])
    inner = (slice(14, 34), slice(14, 34))
    holes0 = (render_views(pts, cams)[0, 0, 0][inner] == 0).float().mean()
    holes1 = (render_views(pts, cams, splat_radius=1)[0, 0, 0][inner] == 0).float().mean()
    assert holes0 > 0.5 and holes1 == 0


def test_render_rejects_bad_input():
    cams = clamp_fixed_cameras(BOUNDS, image_size=8)
    bad = VirtualCameras(cams.cam_to_world * 1.1, 8, 8, K=cams.K)
    bad.cam_to_world[:, 3, 3] = 1
    with pytest.raises(ToolkitError, match="not orthonormal"):
        render_views(torch.zeros(1, 5, 3), bad)
    with pytest.raises(ToolkitError, match=r"\(B, N, 3\)"):
        render_views(torch.zeros(5, 3), cams)
    with pytest.raises(ToolkitError, match="needs K"):
        VirtualCameras(cams.cam_to_world, 8, 8)
    # shape errors are ShapeError (a ToolkitError and a ValueError) naming the argument
    with pytest.raises(ShapeError, match=r"points must be \(B, N, 3\), got \(5, 3\)"):
        render_views(torch.zeros(5, 3), cams)
    with pytest.raises(ShapeError, match=r"mask must be \(B, N\) = \(1, 5\), got \(1, 4\)"):
        render_views(torch.zeros(1, 5, 3), cams, mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"workspace_bounds must be .*got shape \(3,\)"):
        clamp_fixed_cameras([0.0, 0.0, 0.0])


def test_patch_coordinates_matches_numpy_loop():
    pts = random_clouds(B=2, N=500, seed=6)
    views = render_views(pts, clamp_fixed_cameras(BOUNDS, image_size=(16, 24)), fill_value=-1.0)
    coords, valid = patch_coordinates(views, 4, fill_value=-1.0)
    assert coords.shape == (2, 3, 4, 6, 3) and valid.shape == (2, 3, 4, 6)
    v = views.numpy()
    for b in range(2):
        for k in range(3):
            for i in range(4):
                for j in range(6):
                    d = v[b, k, 0, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
                    xyz = v[b, k, 1:, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].reshape(3, -1)
                    sel = d.reshape(-1) != -1.0
                    assert bool(valid[b, k, i, j]) == bool(sel.any())
                    want = xyz[:, sel].mean(axis=1) if sel.any() else np.zeros(3)
                    np.testing.assert_allclose(coords[b, k, i, j].numpy(), want, atol=1e-12)
    assert (~valid).any() and valid.any()
    with pytest.raises(ToolkitError, match="divisible"):
        patch_coordinates(views, 5)


def test_valid_pixels_with_nan_fill():
    pts = random_clouds(B=1, N=200, seed=7)
    cams = clamp_fixed_cameras(BOUNDS, image_size=16)
    v0 = valid_pixels(render_views(pts, cams, fill_value=0.0))
    vn = valid_pixels(render_views(pts, cams, fill_value=float("nan")), float("nan"))
    assert torch.equal(v0, vn) and v0.any() and not v0.all()


def test_tile_untile_round_trip():
    x = torch.randn(2, 5, 4, 6, 7)
    t = tile_views(x)
    assert t.shape == (2, 4, 6, 35)
    assert torch.equal(t[:, :, :, 14:21], x[:, 2])  # view 2 is the third block
    assert torch.equal(untile_views(t, 5), x)


def test_rigs_are_rigid_and_look_at_the_workspace():
    b = torch.tensor(BOUNDS)
    center = b.mean(0)
    for cams in (clamp_fixed_cameras(b), orthogonal_cameras(b), dome_cameras(16, b)):
        check_rigid(cams.cam_to_world)
        to_center = center - cams.cam_to_world[..., :3, 3]
        cos = torch.nn.functional.cosine_similarity(
            to_center, cams.cam_to_world[..., :3, 2], dim=-1
        )
        assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)
    # All 8 corners of the workspace are inside every view and in front of it (orthographic
    # views along an axis see them in pairs).
    corners = torch.cartesian_prod(*[b[:, i] for i in range(3)])
    for cams, seen in (
        (clamp_fixed_cameras(b), 8),
        (dome_cameras(16, b), 8),
        (orthogonal_cameras(b), 4),
    ):
        out = render_views(corners[None], cams)
        assert ((out[0, :, 0] > 0).sum(dim=(-2, -1)) == seen).all()
    dome = dome_cameras(16, b)
    assert dome.num_views == 16 and dome.height == 96
    assert (dome.cam_to_world[:, 2, 3] > center[2]).all()


def test_overhead_and_orthographic_orientation():
    # Overhead / top views: world +y (back) toward the top of the image, +x to the right.
    b = torch.tensor(BOUNDS)
    back, right = [0.0, 0.35, 0.25], [0.25, 0.1, 0.25]
    for cams in (clamp_fixed_cameras(b), orthogonal_cameras(b)):
        H, W = cams.height, cams.width
        r, _ = torch.nonzero(render_views(torch.tensor([[back]]), cams)[0, 0, 0] > 0)[0]
        assert r < H // 2
        _, c = torch.nonzero(render_views(torch.tensor([[right]]), cams)[0, 0, 0] > 0)[0]
        assert c > W // 2


def test_wrist_camera_offsets():
    pose = torch.eye(4)[None, None].repeat(1, 2, 1, 1)
    pose[0, 1, :3, 3] = torch.tensor([0.5, 0.0, 0.0])
    off = look_at(torch.tensor([0.0, 0.0, -0.1]), torch.zeros(3))
    cams = wrist_cameras(pose, off, image_size=16)
    assert torch.allclose(cams.cam_to_world, pose @ off)
    cams3 = wrist_cameras(pose, (0.0, 0.0, -0.1), image_size=16, target=(0, 0, 0), up=(0, 1, 0))
    assert torch.allclose(cams3.cam_to_world[..., :3, 2], cams.cam_to_world[..., :3, 2], atol=1e-6)
    assert torch.allclose(cams3.cam_to_world[..., :3, 3], cams.cam_to_world[..., :3, 3])
    with pytest.raises(ToolkitError, match="gripper_poses"):
        wrist_cameras(pose * 2, off)


def _tiny_episode(path, with_ee_pose=True):
    """Two cameras looking down at a 0.6 m square table with a 0.2 m box on it."""
    from toolkit.data.episodes import EpisodeWriter

    H = W = 40
    K = intrinsics_from_fovy(60.0, H, W, dtype=torch.float64)
    cams = {}
    for name, eye in (("a", (0.0, -0.6, 0.8)), ("b", (0.5, 0.4, 0.9))):
        T = look_at(torch.tensor(eye, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
        # Ray-cast the scene: plane z=0 inside |x|,|y| < 0.3 (else background at 50 m), box top z=0.2.
        v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        d = torch.stack(
            [(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], torch.ones(H, W)], -1
        )
        rays = d.double() @ T[:3, :3].T
        depth = torch.full((H, W), 50.0, dtype=torch.float64)
        for z0, half in ((0.0, 0.3), (0.2, 0.1)):
            t = (z0 - T[2, 3]) / rays[..., 2]
            hit = T[:3, 3] + t[..., None] * rays
            ok = (hit[..., 0].abs() < half) & (hit[..., 1].abs() < half) & (t > 0)
            depth = torch.where(ok & (t < depth), t, depth)  # z-depth == t since d_z = 1
        cams[name] = (depth.float().numpy(), K.numpy(), T.numpy())
    ee = np.stack([np.eye(4), np.eye(4)])
    ee[:, :3, 3] = [[-0.1, 0.0, 0.3], [0.1, 0.0, 0.3]]
    with EpisodeWriter(
        path, suite="test", task="tiny", seed=0, cameras={"a": (H, W), "b": (H, W)}
    ) as w:
        for _ in range(2):
            w.add_step(
                depth={c: v[0] for c, v in cams.items()},
                intrinsics={c: v[1] for c, v in cams.items()},
                extrinsics={c: v[2] for c, v in cams.items()},
                qpos=np.zeros(3),
                action=np.zeros(2),
                ee_pose=ee if with_ee_pose else None,
            )
        w.finish(success=True)


@pytest.mark.parametrize("views", ["clamp", "orthogonal"])
def test_render_command_writes_a_picture(tmp_path, views, capsys):
    from toolkit.cli import main

    ep = tmp_path / "ep.hdf5"
    _tiny_episode(ep)
    out = tmp_path / f"{views}.png"
    args = ["render", str(ep), "--step", "1", "--out", str(out), "--views", views]
    args += ["--n-points", "3000", "--image-size", "32", "--dpi", "40"]
    assert main(args + ["--bounds", "-0.35", "-0.35", "-0.05", "0.35", "0.35", "0.3"]) == 0
    assert out.stat().st_size > 1000
    assert f"5 {views} views" in capsys.readouterr().out


def test_render_command_without_bounds_or_grippers(tmp_path, capsys):
    from toolkit.cli import main

    ep = tmp_path / "ep.hdf5"
    _tiny_episode(ep, with_ee_pose=False)
    out = tmp_path / "x.png"
    args = ["render", str(ep), "--out", str(out), "--n-points", "3000", "--image-size", "32"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3 clamp views (overhead, front_left, back_right)" in text and "no ee_pose" in text
