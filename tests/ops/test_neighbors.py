"""kNN, ball query and grouping against brute-force numpy / per-point loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.ops import (
    ball_query,
    farthest_point_sample,
    group_points,
    knn,
    pairwise_distance,
    sample_and_group,
)


def sq_dists(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    return ((q[:, None, :].astype(np.float64) - r[None, :, :]) ** 2).sum(-1)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.random((2, 300, 3), dtype=np.float32)
    query = rng.random((2, 37, 3), dtype=np.float32)
    return torch.from_numpy(query), torch.from_numpy(ref)


def test_pairwise_distance(pair):
    q, r = pair
    np.testing.assert_allclose(
        pairwise_distance(q, r)[1].numpy(),
        sq_dists(q[1].numpy(), r[1].numpy()),
        rtol=1e-5,
        atol=1e-7,
    )
    l1 = np.abs(q[0].numpy()[:, None] - r[0].numpy()[None]).sum(-1)
    np.testing.assert_allclose(pairwise_distance(q, r, norm=1)[0].numpy(), l1, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("chunk_size", [None, 1, 10])
def test_knn_matches_bruteforce(pair, chunk_size):
    q, r = pair
    k = 8
    dist, idx = knn(q, r, k, chunk_size=chunk_size)
    assert dist.shape == idx.shape == (2, 37, k)
    for b in range(2):
        d = sq_dists(q[b].numpy(), r[b].numpy())
        ref_idx = np.argsort(d, axis=1, kind="stable")
        ref_d = np.take_along_axis(d, ref_idx, 1)
        np.testing.assert_allclose(dist[b].numpy(), ref_d[:, :k], rtol=1e-5, atol=1e-7)
        assert (np.diff(dist[b].numpy(), axis=1) >= 0).all()
        clear = ref_d[:, k] - ref_d[:, k - 1] > 1e-6  # rows without a tie at the k-th place
        for m in np.flatnonzero(clear):
            assert set(idx[b, m].tolist()) == set(ref_idx[m, :k].tolist())


def test_knn_mask_and_grad(pair):
    q, r = pair
    mask = torch.ones(2, 300, dtype=torch.bool)
    mask[:, ::2] = False
    dist, idx = knn(q, r, 5, ref_mask=mask)
    assert mask.gather(1, idx.view(2, -1)).all()
    sub_d, sub_i = knn(q, r[:, 1::2], 5)
    torch.testing.assert_close(dist, sub_d)
    assert torch.equal(idx, sub_i * 2 + 1)
    few = torch.zeros(2, 300, dtype=torch.bool)
    few[:, :3] = True
    d_few, _ = knn(q, r, 5, ref_mask=few)
    assert torch.isinf(d_few[..., 3:]).all() and torch.isfinite(d_few[..., :3]).all()

    qg = q[:1, :3].double().requires_grad_()
    rg = r[:1, :12].double().requires_grad_()
    torch.autograd.gradcheck(lambda a, b: knn(a, b, 3)[0], (qg, rg))


def test_knn_rejects_bad_k(pair):
    q, r = pair
    with pytest.raises(ValueError, match="k"):
        knn(q, r, 301)


def ball_query_loop(q: np.ndarray, r: np.ndarray, radius: float, k: int) -> np.ndarray:
    """PointNet++ semantics, one query point at a time."""
    out = np.zeros((len(q), k), dtype=np.int64)
    for m, p in enumerate(q):
        hits = [j for j in range(len(r)) if ((p - r[j]) ** 2).sum() < radius**2][:k]
        if hits:
            out[m] = hits + [hits[0]] * (k - len(hits))
    return out


@pytest.mark.parametrize("radius,k", [(0.05, 4), (0.2, 16), (0.2, 400)])
def test_ball_query_matches_loop(pair, radius, k):
    q, r = pair
    idx, counts = ball_query(q, r, radius, k, chunk_size=7, return_counts=True)
    assert idx.shape == (2, 37, k)
    for b in range(2):
        ref = ball_query_loop(q[b].numpy(), r[b].numpy(), radius, k)
        np.testing.assert_array_equal(idx[b].numpy(), ref)
        n_in = (sq_dists(q[b].numpy(), r[b].numpy()) < radius**2).sum(1)
        np.testing.assert_array_equal(counts[b].numpy(), np.minimum(n_in, k))


def test_ball_query_no_hit_gives_zero():
    q = torch.full((1, 2, 3), 10.0)
    r = torch.rand(1, 20, 3)
    idx, counts = ball_query(q, r, 0.1, 4, return_counts=True)
    assert (idx == 0).all() and (counts == 0).all()


def test_group_points():
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).view(2, 5, 2)
    idx = torch.tensor([[[0, 4], [1, 1]], [[3, 2], [0, 0]]])
    out = group_points(x, idx)
    assert out.shape == (2, 2, 2, 2)
    for b in range(2):
        assert torch.equal(out[b], x[b][idx[b]])


def test_sample_and_group(pair):
    _, xyz = pair
    feats = torch.rand(2, 300, 6)
    centers, nbhd, idx, gfeats = sample_and_group(xyz, 16, 8, features=feats)
    assert centers.shape == (2, 16, 3) and nbhd.shape == (2, 16, 8, 3) and idx.shape == (2, 16, 8)
    fps = farthest_point_sample(xyz, 16)
    assert torch.equal(centers, group_points(xyz, fps))
    torch.testing.assert_close(nbhd + centers[:, :, None], group_points(xyz, idx))
    assert torch.equal(nbhd[:, :, 0], torch.zeros(2, 16, 3))  # nearest first: the center itself
    assert torch.equal(gfeats, group_points(feats, idx))
    assert len(sample_and_group(xyz, 16, 8)) == 3


def test_sample_and_group_mask():
    xyz = torch.rand(1, 50, 3)
    mask = torch.zeros(1, 50, dtype=torch.bool)
    mask[0, 10:15] = True
    centers, nbhd, idx = sample_and_group(xyz, 3, 8, mask=mask)
    assert mask[0][idx].all()
    assert (idx[..., 5:] == idx[..., :1]).all()  # fewer valid than k: repeat the nearest
