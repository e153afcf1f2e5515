"""FPS and downsampling against a brute-force numpy FPS and against fpsample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.ops import downsample_points, farthest_point_sample
from toolkit.utils.errors import ShapeError


def fps_reference(pts: np.ndarray, n: int, start: int) -> np.ndarray:
    """Textbook FPS: keep each point's squared distance to the chosen set, take the argmax."""
    chosen = [start]
    dist = np.full(len(pts), np.inf, dtype=pts.dtype)
    for _ in range(n - 1):
        dist = np.minimum(dist, ((pts - pts[chosen[-1]]) ** 2).sum(-1))
        chosen.append(int(np.argmax(dist)))
    return np.array(chosen)


@pytest.fixture
def clouds():
    return torch.from_numpy(np.random.default_rng(0).random((3, 400, 3), dtype=np.float32))


@pytest.mark.parametrize("start", [0, 17, 399])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_fps_matches_bruteforce(clouds, start, dtype):
    xyz = clouds.to(dtype)
    idx = farthest_point_sample(xyz, 64, start_idx=start)
    assert idx.shape == (3, 64) and idx.dtype == torch.long
    for b in range(3):
        np.testing.assert_array_equal(idx[b].numpy(), fps_reference(xyz[b].numpy(), 64, start))


def test_extra_channels_are_ignored(clouds):
    feats = torch.cat([clouds, torch.rand(3, 400, 2)], -1)
    assert torch.equal(farthest_point_sample(feats, 32), farthest_point_sample(clouds, 32))


@pytest.mark.parametrize("start", [0, 5])
def test_fpsample_backend_and_library_agree_with_torch(clouds, start):
    fpsample = pytest.importorskip("fpsample")
    ours = farthest_point_sample(clouds, 50, start_idx=start, backend="torch")
    for b in range(3):
        lib = fpsample.fps_sampling(clouds[b].numpy(), 50, start_idx=start)
        np.testing.assert_array_equal(ours[b].numpy(), lib)
    assert torch.equal(farthest_point_sample(clouds, 50, start_idx=start, backend="fpsample"), ours)
    assert torch.equal(farthest_point_sample(clouds, 50, start_idx=start, backend="auto"), ours)


@pytest.mark.parametrize("backend", ["torch", "fpsample"])
def test_mask_excludes_invalid_points(clouds, backend):
    if backend == "fpsample":
        pytest.importorskip("fpsample")
    xyz = clouds.clone()
    mask = torch.rand(3, 400, generator=torch.Generator().manual_seed(1)) > 0.3
    mask[:, 0] = True
    xyz[~mask] = float("nan")  # masked points may hold garbage
    idx = farthest_point_sample(xyz, 40, mask=mask, backend=backend)
    assert mask.gather(1, idx).all()
    for b in range(3):  # same as FPS on the valid subset, mapped back
        valid = torch.nonzero(mask[b]).squeeze(1).numpy()
        ref = valid[fps_reference(clouds[b].numpy()[valid], 40, 0)]
        np.testing.assert_array_equal(idx[b].numpy(), ref)


@pytest.mark.parametrize("backend", ["torch", "fpsample"])
def test_mask_fewer_valid_than_n_and_invalid_start(backend):
    if backend == "fpsample":
        pytest.importorskip("fpsample")
    xyz = torch.rand(3, 20, 3)
    mask = torch.zeros(3, 20, dtype=torch.bool)
    mask[0, [3, 7, 11]] = True  # start 0 invalid: starts at the first valid point (3)
    mask[1, :] = True
    idx = farthest_point_sample(xyz, 6, start_idx=0, mask=mask, backend=backend)
    assert idx[0, 0] == 3 and sorted(idx[0, :3].tolist()) == [3, 7, 11]
    assert (idx[0, 3:] == 3).all()  # padded with the start index
    assert idx[1].unique().numel() == 6
    assert (idx[2] == 0).all()  # no valid point: start_idx everywhere


def test_n_larger_than_cloud_repeats_start():
    xyz = torch.rand(2, 5, 3)
    idx = farthest_point_sample(xyz, 8, start_idx=2)
    assert (idx[:, 0] == 2).all() and (idx[:, 5:] == 2).all()
    assert all(sorted(row[:5].tolist()) == list(range(5)) for row in idx)


def test_bad_arguments():
    xyz = torch.rand(1, 10, 3)
    with pytest.raises(ValueError, match="backend"):
        farthest_point_sample(xyz, 4, backend="cuda")
    with pytest.raises(ValueError, match="start_idx"):
        farthest_point_sample(xyz, 4, start_idx=10)
    with pytest.raises((ImportError, ValueError), match="pointnet2_ops|CUDA"):
        farthest_point_sample(xyz, 4, backend="pointnet2")  # not installed, or a CPU tensor
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        farthest_point_sample(torch.rand(10, 3), 4)
    # shape errors are ShapeError (a ValueError) naming the argument, expected and actual shape
    with pytest.raises(ShapeError, match=r"xyz must be \(B, N, 3\), got \(10, 3\)"):
        farthest_point_sample(torch.rand(10, 3), 4)
    with pytest.raises(ShapeError, match=r"mask must be \(1, 10\), got \(1, 9\)"):
        farthest_point_sample(xyz, 4, mask=torch.ones(1, 9, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"points must be \(N, C>=3\), got \(10, 2\)"):
        downsample_points(torch.rand(10, 2), 4)


def test_downsample_fps_is_exact_and_keeps_channels():
    pts = torch.rand(300, 5)
    out = downsample_points(pts, 32, method="fps")
    ref = fps_reference(pts[:, :3].numpy(), 32, 0)
    assert torch.equal(out, pts[ref])


def test_downsample_bucket_fps_returns_distinct_input_rows():
    pytest.importorskip("fpsample")
    pts = torch.rand(2000, 3)
    out = downsample_points(pts, 256, method="bucket_fps")
    assert out.shape == (256, 3)
    assert torch.unique(out, dim=0).shape[0] == 256
    assert torch.isin(out[:, 0], pts[:, 0]).all()
    # tiny clouds (fpsample needs 2**h <= N) still work
    assert downsample_points(torch.rand(3, 3), 2, method="bucket_fps").shape == (2, 3)


def test_downsample_random_is_reproducible_and_accepts_numpy():
    pts = np.random.default_rng(0).random((100, 3)).astype(np.float32)
    a = downsample_points(pts, 10, method="random", generator=torch.Generator().manual_seed(3))
    b = downsample_points(pts, 10, method="random", generator=torch.Generator().manual_seed(3))
    assert isinstance(a, torch.Tensor) and torch.equal(a, b)
    assert torch.unique(a, dim=0).shape[0] == 10


def test_downsample_small_cloud_raises_or_pads():
    pts = torch.arange(12.0).view(4, 3)
    with pytest.raises(ValueError, match="pad=True"):
        downsample_points(pts, 6)
    out = downsample_points(pts, 6, pad=True)
    assert torch.equal(out, pts[[0, 1, 2, 3, 0, 1]])
    with pytest.raises(ValueError, match="empty"):
        downsample_points(torch.zeros(0, 3), 4, pad=True)


def test_large_cloud_matches_fpsample():
    fpsample = pytest.importorskip("fpsample")
    xyz = torch.rand(2, 8192, 3)
    idx = farthest_point_sample(xyz, 1024, start_idx=123)
    for b in range(2):
        np.testing.assert_array_equal(
            idx[b].numpy(), fpsample.fps_sampling(xyz[b].numpy(), 1024, start_idx=123)
        )
