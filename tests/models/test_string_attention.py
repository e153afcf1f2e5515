"""Cayley-STRING attention: the properties STRING promises, against independent references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention, Block

from toolkit.models.layers import StringAttention, StringBlock
from toolkit.models.layers.string_attention import cayley, init_rope_frequencies
from toolkit.utils.errors import ShapeError

C, H, B, N = 32, 4, 2, 9  # head_dim 8
SHIFT = torch.tensor([0.7, -1.3, 0.4])


def make(mode: str = "string", seed: int = 0, trained: bool = True, **kw) -> StringAttention:
    """A layer with non-trivial (as if trained) S and F."""
    torch.manual_seed(seed)
    attn = StringAttention(C, H, mode=mode, qkv_bias=True, **kw).eval()
    if trained:
        with torch.no_grad():
            if mode == "string":
                attn.cayley_a.normal_(0.0, 0.3)
            if mode != "none":
                attn.freqs.mul_(1.0 + 0.5 * torch.rand_like(attn.freqs))
    return attn


def inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, C, generator=g)
    coords = torch.rand(B, N, 3, generator=g) * torch.tensor([1.2, 0.8, 0.5])  # a table top
    return x, coords


def rotation_matrix(freqs: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Explicit RoPE(delta) (d x d) for one head: block n rotates dims (2n, 2n + 1)."""
    half = freqs.shape[-1]
    phi = (delta.double() @ freqs.double()).reshape(half)  # (d/2,)
    blocks = [
        torch.stack([torch.stack([a.cos(), -a.sin()]), torch.stack([a.sin(), a.cos()])])
        for a in phi
    ]
    return torch.block_diag(*blocks)


def reference_logits(attn: StringAttention, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """STRING's definition: s_ij = (P q_i)^T RoPE(r_j - r_i) (P k_j) / sqrt(d), in float64,
    with P from an explicit inverse (not the layer's solve) and no folding."""
    d = attn.head_dim
    qkv = F.linear(x.double(), attn.qkv.weight.double(), attn.qkv.bias.double())
    q, k, _ = qkv.reshape(B, N, 3, H, d).permute(2, 0, 3, 1, 4)
    if attn.mode == "string":
        s = (attn.cayley_a - attn.cayley_a.transpose(-1, -2)).double()
        eye = torch.eye(d, dtype=torch.float64)
        p = (eye - s) @ torch.linalg.inv(eye + s)
    else:
        p = torch.eye(d, dtype=torch.float64).expand(H, d, d)
    out = torch.zeros(B, H, N, N, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            pq, pk = q[b, h] @ p[h].T, k[b, h] @ p[h].T
            for i in range(N):
                for j in range(N):
                    rot = rotation_matrix(attn.freqs[h].detach(), coords[b, j] - coords[b, i])
                    out[b, h, i, j] = pq[i] @ rot @ pk[j]
    return out / math.sqrt(d)


@pytest.mark.parametrize("mode", ["string", "rope"])
def test_logits_match_the_relative_definition(mode):
    attn = make(mode)
    x, coords = inputs()
    with torch.no_grad():
        got = attn.attention_logits(x, coords)
    torch.testing.assert_close(got.double(), reference_logits(attn, x, coords), atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["string", "rope"])
def test_logits_and_output_invariant_to_a_global_translation(mode):
    attn = make(mode)
    x, coords = inputs()
    with torch.no_grad():
        base = attn.attention_logits(x, coords)
        moved = attn.attention_logits(x, coords + SHIFT)
        torch.testing.assert_close(moved, base, atol=1e-4, rtol=0)
        torch.testing.assert_close(attn(x, coords + SHIFT), attn(x, coords), atol=1e-5, rtol=0)
        # but not to moving a single token: the encoding is not trivial
        one = coords.clone()
        one[:, 0] += SHIFT
        assert (attn.attention_logits(x, one) - base).abs().max() > 1e-2


@pytest.mark.parametrize("mode", ["string", "rope", "none"])
def test_zero_coordinates_give_standard_attention(mode):
    attn = make(mode)
    ref = Attention(C, H, qkv_bias=True).eval()
    result = ref.load_state_dict(attn.state_dict(), strict=False)
    assert not result.missing_keys
    x, coords = inputs()
    with torch.no_grad():
        want = ref(x)
        torch.testing.assert_close(attn(x, torch.zeros_like(coords)), want, atol=1e-5, rtol=0)
        torch.testing.assert_close(attn(x), want, atol=1e-5, rtol=0)  # coords=None: no encoding


def test_none_mode_is_timm_attention_with_no_extra_parameters():
    attn = make("none")
    ref = Attention(C, H, qkv_bias=True).eval()
    assert set(dict(attn.named_parameters())) == set(dict(ref.named_parameters()))
    ref.load_state_dict(attn.state_dict())
    x, coords = inputs()
    with torch.no_grad():
        torch.testing.assert_close(attn(x, coords), ref(x), atol=1e-6, rtol=0)


def test_rope_mode_has_identity_p_and_string_starts_as_rope():
    assert make("rope").orthogonal() is None
    assert not hasattr(make("rope"), "cayley_a")
    fresh = make("string", trained=False)
    torch.testing.assert_close(fresh.orthogonal(), torch.eye(8).expand(H, 8, 8))
    rope = make("rope", trained=False)  # same seed: same qkv / proj / freqs
    x, coords = inputs()
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, coords), rope(x, coords), atol=1e-6, rtol=0)


def test_p_is_orthogonal_with_det_one():
    a = torch.randn(5, 16, 16, generator=torch.Generator().manual_seed(0))
    p = cayley(a)
    torch.testing.assert_close(p.transpose(-1, -2) @ p, torch.eye(16).expand(5, 16, 16), atol=1e-5, rtol=0)  # fmt: skip
    torch.testing.assert_close(torch.linalg.det(p), torch.ones(5), atol=1e-4, rtol=0)
    # P = (I - S)(I + S)^-1 exactly
    s = (a - a.transpose(-1, -2)).double()
    eye = torch.eye(16, dtype=torch.float64)
    torch.testing.assert_close(p.double(), (eye - s) @ torch.linalg.inv(eye + s), atol=1e-5, rtol=0)


def test_masked_tokens_are_not_rotated():
    attn = make("string")
    x, coords = inputs()
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 2] = mask[1, 5] = False
    zeroed = coords.clone()
    zeroed[~mask] = 0.0
    garbage = coords.clone()
    garbage[~mask] = 1e6  # anything at a masked position is ignored
    with torch.no_grad():
        torch.testing.assert_close(attn(x, garbage, mask), attn(x, zeroed), atol=1e-6, rtol=0)
        # logits among tokens with coordinates stay translation invariant
        base = attn.attention_logits(x, coords, mask)
        moved = attn.attention_logits(x, coords + SHIFT, mask)
    both = mask.unsqueeze(2) & mask.unsqueeze(1)  # (B, N, N)
    diff = (moved - base).abs().amax(1)  # over heads
    assert diff[both].max() < 1e-4
    assert diff[~both].max() > 1e-3  # a masked token vs one at r: depends on r itself


def test_gradients_reach_s_and_f_and_qk_norm_path_matches():
    attn = make("string").train()
    x, coords = inputs()
    attn(x, coords).square().sum().backward()
    for name in ("cayley_a", "freqs", "qkv.weight"):
        grad = dict(attn.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    # S = A - A^T: the gradient of A is antisymmetric
    g = attn.cayley_a.grad
    torch.testing.assert_close(g, -g.transpose(-1, -2))
    # the unfolded path (qk-norm present, replaced by identity) gives the same numbers
    unfolded = make("string")
    unfolded._fold = False
    folded = make("string")
    with torch.no_grad():
        torch.testing.assert_close(unfolded(x, coords), folded(x, coords), atol=1e-5, rtol=0)


def test_block_equals_timm_block_at_zero_and_runs_under_bf16():
    torch.manual_seed(0)
    blk = StringBlock(C, H, mode="string").eval()
    ref = Block(C, H, qkv_bias=True, norm_layer=torch.nn.LayerNorm).eval()
    ref.load_state_dict(blk.state_dict(), strict=False)
    x, coords = inputs()
    with torch.no_grad():
        torch.testing.assert_close(blk(x, torch.zeros_like(coords)), ref(x), atol=1e-5, rtol=0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, a = blk(x, coords), blk.attn(x, coords)
    assert a.dtype == torch.bfloat16 and torch.isfinite(y).all()  # residual stream stays fp32
    torch.testing.assert_close(y, blk(x, coords), atol=0.1, rtol=0.05)


def test_frequency_init_spans_the_wavelengths_and_bad_args_raise():
    f = init_rope_frequencies(3, 16, 0.02, 2.0)
    assert f.shape == (3, 3, 8)
    wavelengths = 2 * math.pi / f.norm(dim=1)  # (H, d/2)
    torch.testing.assert_close(wavelengths[:, 0], torch.full((3,), 0.02))
    torch.testing.assert_close(wavelengths[:, -1], torch.full((3,), 2.0))
    with pytest.raises(ValueError, match="mode"):
        StringAttention(C, H, mode="cayley")
    with pytest.raises(ValueError, match="even"):
        StringAttention(12, 4)  # head_dim 3
    with pytest.raises(ShapeError, match="coords"):
        make()(torch.randn(B, N, C), torch.randn(B, N, 2))
    with pytest.raises(ShapeError, match="coord_mask"):
        make()(torch.randn(B, N, C), torch.randn(B, N, 3), torch.ones(B, N))
    fixed = StringAttention(C, H, learnable_frequencies=False)
    assert "freqs" not in dict(fixed.named_parameters()) and "freqs" in dict(fixed.named_buffers())
