"""Cloud processing (merge, NaN, crop, voxel, pad) and normalisation against numpy loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.ops import (
    EmptyPointCloudError,
    bounds_mask,
    center_and_scale,
    crop_to_bounds,
    drop_nonfinite,
    merge_clouds,
    process_cloud,
    subsample_or_pad,
    voxel_downsample,
    workspace_denormalize,
    workspace_normalize,
)

BOUNDS = [[-0.5, 0.0, 0.1], [0.5, 0.8, 0.6]]


@pytest.fixture
def cloud():
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, (2000, 3)).astype(np.float32)
    rgb = rng.random((2000, 3)).astype(np.float32)
    return np.concatenate([xyz, rgb], 1)


def test_merge_clouds(cloud):
    merged = merge_clouds([cloud[:10], torch.from_numpy(cloud[10:25]), cloud[25:25]])
    assert torch.equal(merged, torch.from_numpy(cloud[:25]))
    with pytest.raises(ValueError, match="channel"):
        merge_clouds([cloud[:3], cloud[:3, :4]])
    with pytest.raises(ValueError, match="no clouds"):
        merge_clouds([])


def test_drop_nonfinite_counts(cloud):
    pts = cloud.copy()
    pts[3, 0] = np.nan
    pts[10, 2] = np.inf
    pts[11, 5] = -np.inf  # a non-finite extra channel also drops the row
    out, n = drop_nonfinite(pts)
    assert n == 3 and out.shape == (1997, 6)
    assert torch.equal(out, torch.from_numpy(np.delete(pts, [3, 10, 11], 0)))
    same, zero = drop_nonfinite(torch.from_numpy(cloud))
    assert zero == 0 and same.shape[0] == 2000


def test_crop_matches_numpy(cloud):
    lo, hi = np.array(BOUNDS[0], np.float32), np.array(BOUNDS[1], np.float32)
    ref = cloud[((cloud[:, :3] >= lo) & (cloud[:, :3] <= hi)).all(1)]
    assert torch.equal(crop_to_bounds(cloud, BOUNDS), torch.from_numpy(ref))
    assert torch.equal(crop_to_bounds(cloud, torch.tensor(BOUNDS)), torch.from_numpy(ref))
    batched = torch.from_numpy(cloud).view(4, 500, 6)
    assert torch.equal(bounds_mask(batched, BOUNDS).view(-1), bounds_mask(cloud, BOUNDS))
    edge = torch.tensor([[0.5, 0.8, 0.6, 0, 0, 0], [float("nan"), 0.1, 0.2, 0, 0, 0]])
    assert bounds_mask(edge, BOUNDS).tolist() == [True, False]  # inclusive; NaN is outside
    with pytest.raises(ValueError, match="min <= max"):
        crop_to_bounds(cloud, [[1, 0, 0], [0, 1, 1]])
    with pytest.raises(ValueError, match="bounds"):
        crop_to_bounds(cloud, [0, 0, 0, 1, 1, 1, 2])


def voxel_reference(pts: np.ndarray, size: float, reduce: str) -> np.ndarray:
    groups: dict[tuple, list] = {}
    for p in pts:
        groups.setdefault(tuple(np.floor(p[:3] / size).astype(np.int64)), []).append(p)
    rows = [np.mean(g, 0) if reduce == "mean" else g[0] for g in groups.values()]
    return np.array(rows)


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


@pytest.mark.parametrize("reduce", ["mean", "first"])
@pytest.mark.parametrize("size", [0.1, 0.37])
def test_voxel_downsample_matches_dict_loop(cloud, reduce, size):
    out = voxel_downsample(cloud, size, reduce=reduce).numpy()
    ref = voxel_reference(cloud, size, reduce)
    assert out.shape == ref.shape
    np.testing.assert_allclose(_sorted_rows(out), _sorted_rows(ref), rtol=1e-5, atol=1e-6)
    assert voxel_downsample(cloud[:0], size).shape == (0, 6)
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_downsample(cloud, 0.0)
    bad = cloud.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        voxel_downsample(bad, size)


def test_subsample_or_pad_semantics(cloud):
    g = torch.Generator().manual_seed(0)
    out, mask = subsample_or_pad(cloud, 100, generator=g)
    assert out.shape == (100, 6) and mask.all()
    rows = torch.from_numpy(cloud)
    pos = [int(torch.nonzero((rows == r).all(1))[0]) for r in out]
    assert pos == sorted(set(pos))  # distinct input rows, in input order

    out, mask = subsample_or_pad(cloud[:30], 50, pad_value=-1.0)
    assert torch.equal(out[:30], rows[:30]) and (out[30:] == -1).all()
    assert mask.tolist() == [True] * 30 + [False] * 20

    out, mask = subsample_or_pad(np.zeros((0, 6), np.float32), 8)
    assert out.shape == (8, 6) and (out == 0).all() and not mask.any()
    with pytest.raises(EmptyPointCloudError):
        subsample_or_pad(np.zeros((0, 6), np.float32), 8, on_empty="raise")
    with pytest.raises(ValueError, match="on_empty"):
        subsample_or_pad(cloud, 8, on_empty="skip")


def test_process_cloud_chain_and_stats(cloud):
    pts = cloud.copy()
    pts[:5, 1] = np.nan
    out, mask, stats = process_cloud(pts, bounds=BOUNDS, voxel_size=0.05, n=64, method="fps")
    cropped = crop_to_bounds(drop_nonfinite(pts)[0], BOUNDS)
    assert stats["n_input"] == 2000 and stats["n_nonfinite"] == 5
    assert stats["n_after_crop"] == cropped.shape[0]
    assert stats["n_after_voxel"] == voxel_downsample(cropped, 0.05).shape[0]
    assert stats["n_valid"] == 64 and out.shape == (64, 6) and mask.all()
    assert bounds_mask(out, BOUNDS).all()

    out, mask, stats = process_cloud(pts, bounds=BOUNDS, n=4096, method="bucket_fps")
    assert stats["n_valid"] == stats["n_after_crop"] == int(mask.sum())
    assert (out[~mask] == 0).all()


def test_process_cloud_empty_after_crop(cloud):
    far = [[5, 5, 5], [6, 6, 6]]
    out, mask, stats = process_cloud(cloud, bounds=far, n=16)
    assert stats["n_after_crop"] == 0 and stats["n_valid"] == 0
    assert out.shape == (16, 6) and (out == 0).all() and not mask.any()
    with pytest.raises(EmptyPointCloudError, match="after crop 0"):
        process_cloud(cloud, bounds=far, n=16, on_empty="raise")


def test_center_and_scale_round_trip():
    pts = torch.rand(2, 3, 100, 4, dtype=torch.float64) * 5 + 2
    norm, center, scale = center_and_scale(pts)
    assert center.shape == (2, 3, 3) and scale.shape == (2, 3, 1)
    torch.testing.assert_close(
        norm[..., :3].mean(-2), torch.zeros(2, 3, 3, dtype=torch.float64), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        norm[..., :3].norm(dim=-1).amax(-1), torch.ones(2, 3, dtype=torch.float64)
    )
    assert torch.equal(norm[..., 3], pts[..., 3])
    torch.testing.assert_close(
        norm[..., :3] * scale[..., None, :] + center[..., None, :], pts[..., :3]
    )


def test_center_and_scale_mask_and_degenerate():
    pts = torch.rand(1, 50, 3)
    mask = torch.zeros(1, 50, dtype=torch.bool)
    mask[0, :20] = True
    pts_pad = pts.masked_fill(~mask[..., None], 100.0)
    norm, center, scale = center_and_scale(pts_pad, mask)
    ref_norm, ref_center, ref_scale = center_and_scale(pts[:, :20])
    torch.testing.assert_close(center, ref_center)
    torch.testing.assert_close(scale, ref_scale)
    torch.testing.assert_close(norm[:, :20], ref_norm)
    _, _, s = center_and_scale(torch.ones(1, 5, 3))
    assert s.item() == 1.0
    _, c, s = center_and_scale(pts, torch.zeros(1, 50, dtype=torch.bool))
    assert (c == 0).all() and s.item() == 1.0


def test_workspace_normalize_round_trip():
    pts = torch.rand(10, 200, 3) * torch.tensor([1.0, 0.8, 0.5]) + torch.tensor([-0.5, 0.0, 0.1])
    unit = workspace_normalize(pts, BOUNDS)
    assert unit.min() >= -1 and unit.max() <= 1
    corners = workspace_normalize(torch.tensor(BOUNDS), BOUNDS)
    torch.testing.assert_close(corners, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    torch.testing.assert_close(workspace_denormalize(unit, BOUNDS), pts)
