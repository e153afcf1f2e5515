"""Chamfer distance against numpy brute force; chunking invariance; gradients; masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.ops import chamfer_distance
from toolkit.utils.errors import ShapeError


def chamfer_reference(
    a: np.ndarray, b: np.ndarray, norm: int, squared: bool, reduction: str
) -> float:
    diff = a[:, None, :].astype(np.float64) - b[None, :, :]
    d = np.sqrt((diff**2).sum(-1)) if norm == 2 else np.abs(diff).sum(-1)
    if squared:
        d = d**2
    red = np.mean if reduction == "mean" else np.sum
    return red(d.min(1)) + red(d.min(0))


@pytest.fixture
def clouds():
    rng = np.random.default_rng(0)
    return rng.random((3, 60, 3)), rng.random((3, 45, 3))


@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_bruteforce(clouds, norm, squared, reduction):
    a, b = clouds
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        out = chamfer_distance(
            torch.from_numpy(a).to(dtype),
            torch.from_numpy(b).to(dtype),
            norm=norm,
            squared=squared,
            reduction=reduction,
        )
        assert out.shape == (3,) and out.dtype == dtype
        ref = [chamfer_reference(a[i], b[i], norm, squared, reduction) for i in range(3)]
        np.testing.assert_allclose(out.numpy(), ref, rtol=tol)


def test_default_is_point_mae_l2(clouds):
    a, b = (torch.from_numpy(x).float() for x in clouds)
    d = torch.cdist(a, b) ** 2
    expected = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    torch.testing.assert_close(chamfer_distance(a, b), expected)


@pytest.mark.parametrize("norm", [1, 2])
def test_chunking_invariance(clouds, norm):
    a, b = (torch.from_numpy(x).float() for x in clouds)
    full = chamfer_distance(a, b, norm=norm, chunk_size=10_000)
    for chunk in (1, 7, 32, None):
        torch.testing.assert_close(
            chamfer_distance(a, b, norm=norm, chunk_size=chunk), full, rtol=0, atol=0
        )


@pytest.mark.parametrize("norm,squared", [(2, True), (2, False), (1, True), (1, False)])
def test_gradcheck(norm, squared):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 6, 3, dtype=torch.float64, generator=g).requires_grad_()
    b = torch.rand(1, 4, 3, dtype=torch.float64, generator=g).requires_grad_()
    torch.autograd.gradcheck(
        lambda x, y: chamfer_distance(x, y, norm=norm, squared=squared, chunk_size=3), (a, b)
    )


def test_identical_clouds_are_zero_with_finite_grad():
    a = torch.rand(2, 20, 3, requires_grad=True)
    for squared in (True, False):
        out = chamfer_distance(a, a.detach().clone(), squared=squared)
        assert torch.equal(out, torch.zeros(2))
        (grad,) = torch.autograd.grad(out.sum(), a)
        assert torch.isfinite(grad).all()


def test_masks_equal_chamfer_of_valid_subsets(clouds):
    a, b = (torch.from_numpy(x).float() for x in clouds)
    a_mask = torch.zeros(3, 60, dtype=torch.bool)
    b_mask = torch.zeros(3, 45, dtype=torch.bool)
    lengths_a, lengths_b = [60, 31, 5], [45, 12, 40]
    for i in range(3):
        a_mask[i, : lengths_a[i]] = True
        b_mask[i, : lengths_b[i]] = True
    padded_a = a.masked_fill(~a_mask[..., None], float("nan")).requires_grad_()
    padded_b = b.masked_fill(~b_mask[..., None], 0.0).requires_grad_()
    for reduction in ("mean", "sum"):
        out = chamfer_distance(
            padded_a, padded_b, reduction=reduction, a_mask=a_mask, b_mask=b_mask, chunk_size=4
        )
        for i in range(3):
            ref = chamfer_distance(
                a[i : i + 1, : lengths_a[i]], b[i : i + 1, : lengths_b[i]], reduction=reduction
            )
            torch.testing.assert_close(out[i : i + 1], ref)
    grad_a, grad_b = torch.autograd.grad(out.sum(), (padded_a, padded_b))
    assert torch.isfinite(grad_a).all() and torch.isfinite(grad_b).all()
    assert (grad_a[~a_mask] == 0).all() and (grad_b[~b_mask] == 0).all()


def test_empty_masked_sample_raises(clouds):
    a, b = (torch.from_numpy(x).float() for x in clouds)
    mask = torch.ones(3, 60, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match="no valid point"):
        chamfer_distance(a, b, a_mask=mask)


def test_bad_arguments(clouds):
    a, b = (torch.from_numpy(x).float() for x in clouds)
    with pytest.raises(ValueError, match="norm"):
        chamfer_distance(a, b, norm=3)
    with pytest.raises(ValueError, match="reduction"):
        chamfer_distance(a, b, reduction="none")
    # a (B, 1) mask would broadcast silently: it must be rejected, naming the argument
    with pytest.raises(ShapeError, match=r"a_mask must be \(B, N\) = \(3, 60\), got \(3, 1\)"):
        chamfer_distance(a, b, a_mask=torch.ones(3, 1, dtype=torch.bool))
    with pytest.raises(ShapeError, match=r"b \(3, 45, 2\)"):
        chamfer_distance(a, b[..., :2])
