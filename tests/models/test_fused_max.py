"""The fused ``Linear -> BatchNorm -> [ReLU] -> max`` of SharedMLP.forward_max against the
plain modules (the reference): identical forward and running statistics, gradients equal up to
float rounding (checked in float64), the documented tie rule, and the fallbacks."""

from __future__ import annotations

import copy

import pytest
import torch

from toolkit.models.layers import SharedMLP
from toolkit.models.layers.fused_max import blocked_amax


def _pair(in_dim: int, dims: tuple[int, ...], last_act: bool, dtype=torch.float64):
    torch.manual_seed(0)
    fused = SharedMLP(in_dim, dims, last_act=last_act).to(dtype).train()
    with torch.no_grad():  # a generic affine state (BatchNorm starts at weight 1, bias 0)
        for p in fused.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return fused, copy.deepcopy(fused)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "lead, k, dims, last_act",
    [
        ((3,), 100, (16, 32), False),  # PointNet: no ReLU after the last layer, K = N
        ((3,), 100, (16, 32), True),
        ((2, 5), 12, (8, 24), True),  # PointNet++ SA: (B, S, K, C), short last block
        ((4,), 64, (24,), True),  # a single block
        ((5,), 3, (16,), False),  # K below the block size
    ],
)
@pytest.mark.parametrize("tokens_loss", [False, True])
def test_forward_identical_and_gradients_match(lead, k, dims, last_act, tokens_loss):
    fused, ref = _pair(6, dims, last_act)
    x = torch.randn(*lead, k, 6, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, pa = fused.forward_max(xa)
    yb = ref(xb)
    pb = yb.amax(-2)
    assert torch.equal(ya, yb) and torch.equal(pa, pb)
    for (name, a), b in zip(fused.named_buffers(), ref.buffers()):
        assert torch.equal(a, b), name  # running statistics and num_batches_tracked
    g = torch.randn_like(pa)
    loss_a, loss_b = (pa * g).sum(), (pb * g).sum()
    if tokens_loss:  # the per-point output is used too: dense backward
        loss_a, loss_b = loss_a + ya.square().mean(), loss_b + yb.square().mean()
    loss_a.backward()
    loss_b.backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-9, atol=1e-12)
    ga, gb = _grads(fused), _grads(ref)
    scale = max(v.abs().max() for v in gb.values())
    for name in gb:
        # the bias before BatchNorm has a zero gradient in exact arithmetic: rounding noise
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-9, atol=1e-10 * scale)


def test_float32_matches_to_rounding():
    fused, ref = _pair(128, (64, 256), False, torch.float32)
    x = torch.randn(4, 512, 128)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    _, pa = fused.forward_max(xa)
    pb = ref(xb).amax(-2)
    assert torch.equal(pa, pb)
    pa.square().sum().backward()
    pb.square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-6)
    ga, gb = _grads(fused), _grads(ref)
    for name in ("0.weight", "1.weight", "3.weight", "4.weight", "4.bias"):  # not 3.bias: ~0
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-4, atol=1e-5 * gb[name].abs().max())


def test_duplicated_rows_get_the_same_total_gradient():
    """Ball query repeats a neighbour: amax splits the gradient, the fused path gives it to the
    first copy; parameters and the summed input gradient agree."""
    fused, ref = _pair(6, (16, 32), True)
    x = torch.randn(8, 10, 6, dtype=torch.float64)
    x[:, 5:] = x[:, :1]  # rows 5..9 copy row 0 in every group
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    _, pa = fused.forward_max(xa)
    pb = ref(xb).amax(-2)
    g = torch.randn_like(pa)
    (pa * g).sum().backward()
    (pb * g).sum().backward()

    def summed(grad: torch.Tensor) -> torch.Tensor:
        return torch.cat([grad[:, :1] + grad[:, 5:].sum(1, keepdim=True), grad[:, 1:5]], 1)

    torch.testing.assert_close(summed(xa.grad), summed(xb.grad), rtol=1e-9, atol=1e-12)
    # the copies after the first get only BatchNorm's dense part: equal to each other, and
    # different from the reference's (which gives each copy a share of the max's gradient)
    torch.testing.assert_close(xa.grad[:, 5:], xa.grad[:, 5:6].expand(-1, 5, -1))
    assert not torch.allclose(xa.grad[:, 5:], xb.grad[:, 5:])
    ga, gb = _grads(fused), _grads(ref)
    scale = max(v.abs().max() for v in gb.values())
    for name in gb:
        torch.testing.assert_close(ga[name], gb[name], rtol=1e-9, atol=1e-10 * scale)


def test_eval_and_no_grad_use_the_plain_modules():
    fused, ref = _pair(6, (16, 32), False)
    x = torch.randn(3, 50, 6, dtype=torch.float64)
    with torch.no_grad():
        y, p = fused.forward_max(x)
        torch.testing.assert_close(p, ref(x).amax(-2), rtol=0, atol=0)
    fused.eval()
    ref.eval()
    y, p = fused.forward_max(x)
    assert p.grad_fn is not None and "LinearBNMax" not in type(p.grad_fn).__name__
    torch.testing.assert_close(y, ref(x), rtol=0, atol=0)


def test_momentum_none_counts_batches_like_batchnorm():
    fused, ref = _pair(6, (16, 32), False)
    for m in (fused[-1], ref[-1]):
        m.momentum = None
    for _ in range(3):
        x = torch.randn(2, 20, 6, dtype=torch.float64)
        fused.forward_max(x.requires_grad_())
        ref(x)
    for (name, a), b in zip(fused.named_buffers(), ref.buffers()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("k, block", [(64, 8), (70, 8), (5, 1), (1, 1)])
def test_blocked_amax_is_amax(k, block):
    y = torch.randn(3, k, 7)
    pooled, bm = blocked_amax(y, block)
    assert torch.equal(pooled, y.amax(1))
    assert bm.shape == (3, -(-k // block), 7)
