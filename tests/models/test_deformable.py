"""DeformableCrossAttention vs an explicit bilinear reference of Deformable-DETR's formula."""

from __future__ import annotations

import math

import pytest
import torch

from toolkit.models.layers import DeformableCrossAttention
from toolkit.utils.errors import ShapeError


def bilinear(img: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """``img (C, h, w)`` at normalized ``(x, y)``; pixel centers at ``(i + .5) / w``; zeros outside."""
    C, h, w = img.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(C, dtype=img.dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - abs(px - xi)) * (1 - abs(py - yi))
            if 0 <= xi < w and 0 <= yi < h:
                out += wgt * img[:, yi, xi]
    return out


def reference_forward(layer: DeformableCrossAttention, query, ref, value_map, value_valid=None):
    """out[b, q] = W_o concat_m sum_k A[b,q,m,k] v_m(ref + dp[b,q,m,k] / (w, h)) + b_o."""
    B, Q, _ = query.shape
    _, _, h, w = value_map.shape
    M, K, D = layer.num_heads, layer.num_points, layer.head_dim
    value = torch.einsum("bchw,ec->behw", value_map, layer.value_proj.weight)
    value = value + layer.value_proj.bias[None, :, None, None]
    if value_valid is not None:
        value = value * value_valid[:, None].to(value.dtype)
    off = (query @ layer.sampling_offsets.weight.T + layer.sampling_offsets.bias).view(
        B, Q, M, K, 2
    )
    logits = (query @ layer.attention_weights.weight.T + layer.attention_weights.bias).view(
        B, Q, M, K
    )
    A = logits.exp() / logits.exp().sum(-1, keepdim=True)
    heads = torch.zeros(B, Q, M * D, dtype=query.dtype)
    for b in range(B):
        for q in range(Q):
            for m in range(M):
                acc = torch.zeros(D, dtype=query.dtype)
                for k in range(K):
                    x = float(ref[b, q, 0] + off[b, q, m, k, 0] / w)
                    y = float(ref[b, q, 1] + off[b, q, m, k, 1] / h)
                    acc += A[b, q, m, k] * bilinear(value[b, m * D : (m + 1) * D], x, y)
                heads[b, q, m * D : (m + 1) * D] = acc
    return heads @ layer.output_proj.weight.T + layer.output_proj.bias


def randomize(layer: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


@pytest.mark.parametrize("masked", [False, True])
def test_matches_explicit_bilinear_reference(masked):
    torch.manual_seed(0)
    B, Q, Cq, Cv, h, w = 2, 3, 5, 6, 5, 7
    layer = DeformableCrossAttention(Cq, Cv, embed_dim=8, num_heads=2, num_points=3, out_dim=4)
    layer = layer.double()
    randomize(layer)
    query = torch.randn(B, Q, Cq, dtype=torch.float64)
    ref = torch.rand(B, Q, 2, dtype=torch.float64) * 1.2 - 0.1  # some near / beyond the borders
    value_map = torch.randn(B, Cv, h, w, dtype=torch.float64)
    valid = torch.rand(B, h, w) > 0.3 if masked else None
    out, samp = layer(query, ref, value_map, value_valid=valid, return_sampling=True)
    expected = reference_forward(layer, query, ref, value_map, valid)
    assert out.shape == (B, Q, 4)
    assert torch.allclose(out, expected, atol=1e-10)
    assert samp["locations"].shape == (B, Q, 2, 3, 2) and samp["weights"].shape == (B, Q, 2, 3)
    assert torch.allclose(samp["weights"].sum(-1), torch.ones(B, Q, 2, dtype=torch.float64))


def test_init_direction_grid_and_uniform_weights():
    M, K = 8, 3
    layer = DeformableCrossAttention(4, 16, num_heads=M, num_points=K)
    assert torch.count_nonzero(layer.sampling_offsets.weight) == 0
    assert torch.count_nonzero(layer.attention_weights.weight) == 0
    assert torch.count_nonzero(layer.attention_weights.bias) == 0
    assert torch.count_nonzero(layer.value_proj.bias) == 0
    assert torch.count_nonzero(layer.output_proj.bias) == 0
    bias = layer.sampling_offsets.bias.view(M, K, 2)
    # theta_m = 2 pi m / 8: unit-max directions (1,0), (1,1), (0,1), (-1,1), (-1,0), ...
    dirs = torch.tensor(
        [[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1]],
        dtype=torch.float32,
    )
    for k in range(K):
        assert torch.allclose(bias[:, k], (k + 1) * dirs, atol=1e-6)
    # forward at init: locations = ref + (k + 1) dir_m / (w, h), weights 1 / K, for any query
    h, w = 10, 20
    ref = torch.tensor([[[0.3, 0.6]]])
    _, samp = layer(torch.randn(1, 1, 4), ref, torch.randn(1, 16, h, w), return_sampling=True)
    steps = torch.arange(1, K + 1, dtype=torch.float32)[None, :, None]
    expected = ref[0, 0] + dirs[:, None, :] * steps / torch.tensor([w, h])
    assert torch.allclose(samp["locations"][0, 0], expected, atol=1e-6)
    assert torch.allclose(samp["weights"], torch.full((1, 1, M, K), 1.0 / K))


def test_single_point_zero_offsets_reads_the_reference_pixel():
    """K = 1 with the offset bias zeroed: each head reads the bilinear value at the reference."""
    torch.manual_seed(1)
    layer = DeformableCrossAttention(3, 8, num_heads=2, num_points=1).double()
    with torch.no_grad():
        layer.sampling_offsets.bias.zero_()
        layer.value_proj.weight.copy_(torch.eye(8))
        layer.output_proj.weight.copy_(torch.eye(8))
    h, w = 4, 5
    value_map = torch.randn(1, 8, h, w, dtype=torch.float64)
    # pixel centers: the output is exactly that pixel's feature
    ij = [(0, 0), (3, 2), (4, 3), (1, 1)]
    ref = torch.tensor([[[(i + 0.5) / w, (j + 0.5) / h] for i, j in ij]], dtype=torch.float64)
    out = layer(torch.randn(1, len(ij), 3, dtype=torch.float64), ref, value_map)
    for q, (i, j) in enumerate(ij):
        assert torch.allclose(out[0, q], value_map[0, :, j, i], atol=1e-12)


def test_constant_map_gives_the_projected_constant():
    torch.manual_seed(2)
    Cv = 6
    layer = DeformableCrossAttention(5, Cv, embed_dim=8, num_heads=4, num_points=4, out_dim=3)
    layer = layer.double()
    with torch.no_grad():  # nonzero biases so the affine path is exercised
        layer.value_proj.bias.normal_()
        layer.output_proj.bias.normal_()
        layer.attention_weights.weight.normal_()  # arbitrary (non-uniform) weights: sum to 1
    c = torch.randn(Cv, dtype=torch.float64)
    h, w = 32, 32  # init offsets are <= 4 px: samples around the center stay inside the map
    value_map = c[None, :, None, None].expand(2, Cv, h, w).contiguous()
    ref = 0.4 + 0.2 * torch.rand(2, 7, 2, dtype=torch.float64)
    out = layer(torch.randn(2, 7, 5, dtype=torch.float64), ref, value_map)
    expected = layer.output_proj(layer.value_proj(c))
    assert torch.allclose(out, expected.expand_as(out), atol=1e-10)


def test_invalid_value_pixels_and_outside_samples_read_zero():
    layer = DeformableCrossAttention(4, 8, num_heads=2, num_points=2)
    query = torch.randn(1, 3, 4)
    ref = torch.rand(1, 3, 2)
    value_map = torch.randn(1, 8, 6, 6)
    zero_valid = torch.zeros(1, 6, 6, dtype=torch.bool)
    out = layer(query, ref, value_map, value_valid=zero_valid)
    assert torch.allclose(out, layer.output_proj.bias.expand_as(out))  # bias 0 at init
    far = torch.full((1, 3, 2), 5.0)  # every sample far outside the map
    assert torch.allclose(layer(query, far, value_map), torch.zeros(1, 3, 8))
    # invalidating pixels no sample touches changes nothing
    ref = torch.full((1, 3, 2), 0.25)
    valid = torch.ones(1, 6, 6, dtype=torch.bool)
    valid[:, 4:, 4:] = False
    assert torch.allclose(layer(query, ref, value_map), layer(query, ref, value_map, valid))


def test_gradients_flow_to_query_and_all_parameters():
    torch.manual_seed(3)
    layer = DeformableCrossAttention(4, 8, num_heads=2, num_points=3)
    value_map = torch.randn(2, 8, 9, 9)
    ref = 0.2 + 0.6 * torch.rand(2, 5, 2)
    # at init the offset / weight matrices are zero, yet they receive gradients (they learn)
    query = torch.randn(2, 5, 4, requires_grad=True)
    layer(query, ref, value_map).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # once they are nonzero the gradient reaches the query through offsets and weights
    randomize(layer, seed=4, scale=0.3)
    query.grad = None
    layer(query, ref, value_map).square().sum().backward()
    assert query.grad is not None and query.grad.abs().sum() > 0


def test_errors():
    with pytest.raises(ValueError, match="divisible"):
        DeformableCrossAttention(4, 10, num_heads=3)
    layer = DeformableCrossAttention(4, 8, num_heads=2)
    with pytest.raises(ShapeError, match="reference_points"):
        layer(torch.randn(1, 3, 4), torch.rand(1, 2, 2), torch.randn(1, 8, 4, 4))
    with pytest.raises(ShapeError, match="value_map"):
        layer(torch.randn(1, 3, 4), torch.rand(1, 3, 2), torch.randn(1, 7, 4, 4))
    with pytest.raises(ShapeError, match="value_valid"):
        layer(torch.randn(1, 3, 4), torch.rand(1, 3, 2), torch.randn(1, 8, 4, 4), torch.ones(1, 4))
