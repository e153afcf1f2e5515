"""CLAMP encoders: the multi-view STRING ViT, the action-history encoder, the text encoder."""

from __future__ import annotations

import pytest
import torch

import toolkit.models.backbones  # noqa: F401  (registers the backbones)
from toolkit.models.backbones.action_encoder import history_padding_mask
from toolkit.ops.render import clamp_cameras, render_views, tile_views
from toolkit.registry import BACKBONES
from toolkit.utils.errors import ShapeError

SHIFT = torch.tensor([0.3, -0.5, 0.2])

# --------------------------------------------------------------------------------------------
# StringViT
# --------------------------------------------------------------------------------------------


def vit(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = BACKBONES.build(dict(type="StringViT", arch="tiny", **kw)).eval()
    with torch.no_grad():  # as if trained: STRING's P away from I, peaked attention
        for name, p in model.named_parameters():
            if name.endswith("cayley_a"):
                p.normal_(0.0, 0.2)
            if name.endswith("attn.qkv.weight"):
                p.mul_(20.0)
    return model


def rendered_views(b: int = 2, n: int = 3000, seed: int = 0) -> torch.Tensor:
    """Five 64x64 CLAMP views (3 fixed + 2 wrist) of a random table-top cloud: (B, 5, 4, 64, 64)."""
    bounds = torch.tensor([[-0.5, -0.4, 0.0], [0.5, 0.4, 0.5]])
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(b, n, 3, generator=g) * (bounds[1] - bounds[0]) + bounds[0]
    pose = torch.eye(4).repeat(b, 2, 1, 1)
    pose[..., :3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # approach axis down
    pose[:, 0, :3, 3] = torch.tensor([-0.2, 0.1, 0.4])
    pose[:, 1, :3, 3] = torch.tensor([0.2, 0.1, 0.4])
    cams = clamp_cameras(pose, bounds, image_size=64)
    return render_views(pts, cams, splat_radius=1)


def full_views(b: int = 2, seed: int = 0) -> torch.Tensor:
    """Synthetic views where every pixel is valid (depth > 0): (B, 5, 4, 64, 64)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.rand(b, 5, 4, 64, 64, generator=g)
    v[:, :, 0] += 0.5
    return v


def test_vit_shapes_coords_from_the_renderer_and_both_input_forms():
    views = rendered_views()
    model = vit()
    with torch.no_grad():
        out = model(views)
        tiled = model(tile_views(views))
    assert out["tokens"].shape == (2, 80, 64) and model.num_tokens == 80
    assert out["pooled"].shape == (2, model.out_dim) == (2, 64)
    assert out["coords"].shape == (2, 80, 3) and out["coord_mask"].dtype == torch.bool
    for key in ("tokens", "pooled", "coords", "coord_mask"):
        torch.testing.assert_close(tiled[key], out[key], rtol=0, atol=0)
    # independent per-patch mean over valid pixels, token order = tiled row-major grid
    img = tile_views(views)  # (B, 4, 64, 320)
    for b in range(2):
        for t in (0, 7, 23, 41, 79):
            r, c = divmod(t, 20)
            patch = img[b, :, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16].reshape(4, -1)
            valid = patch[0] > 0
            assert bool(out["coord_mask"][b, t]) == bool(valid.any())
            if valid.any():
                want = patch[1:, valid].mean(dim=1)
                torch.testing.assert_close(out["coords"][b, t], want, atol=1e-5, rtol=1e-5)
    assert not out["coord_mask"].all() and out["coord_mask"].any()  # some empty patches
    assert (out["coords"][~out["coord_mask"]] == 0).all()
    for value in out.values():
        assert torch.isfinite(value.float()).all()


def test_vit_output_invariant_to_translating_the_string_coordinates():
    """Same image, token coordinates all shifted: STRING's logits, hence the output, unchanged."""
    views = full_views()
    model = vit(string_mode="string")
    with torch.no_grad():
        out = model(views)
        assert out["coord_mask"].all()
        moved = model(views, coords=out["coords"] + SHIFT)
        torch.testing.assert_close(moved["tokens"], out["tokens"], atol=1e-4, rtol=0)
        torch.testing.assert_close(moved["pooled"], out["pooled"], atol=1e-4, rtol=0)
        # ... while a non-uniform change of the coordinates changes it
        scaled = model(views, coords=out["coords"] * 1.5)
        assert (scaled["tokens"] - out["tokens"]).abs().max() > 1e-3


def test_vit_empty_patches_centroid_keeps_invariance_and_none_mode_ignores_coords():
    views = rendered_views()
    model = vit(empty_patches="centroid")
    with torch.no_grad():
        out = model(views)
        assert not out["coord_mask"].all()
        moved = model(views, out["coords"] + SHIFT, out["coord_mask"])
        # float32 angles of hundreds of radians, peaked softmax: 1e-3 (the default mode: ~3)
        torch.testing.assert_close(moved["tokens"], out["tokens"], atol=1e-3, rtol=0)
        default = vit(empty_patches="no_rotation")
        a = default(views)
        b = default(views, out["coords"] + SHIFT, out["coord_mask"])
        assert (a["tokens"] - b["tokens"]).abs().max() > 0.1
        plain = vit(string_mode="none")
        a = plain(views)
        b = plain(views, coords=torch.randn(2, 80, 3))
        torch.testing.assert_close(a["tokens"], b["tokens"], rtol=0, atol=0)
    assert not any("cayley" in n or "freqs" in n for n, _ in plain.named_parameters())


def test_vit_gradients_checkpointing_and_bf16():
    views = full_views()
    model = vit().train()
    out = model(views)
    (out["pooled"].square().mean() + out["tokens"].square().mean()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, g in grads.items():
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    model.zero_grad()
    model.set_grad_checkpointing(True)
    out = model(views)
    (out["pooled"].square().mean() + out["tokens"].square().mean()).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], atol=1e-6, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(views)
        out["pooled"].float().square().mean().backward()
    assert out["pooled"].dtype == torch.bfloat16 and torch.isfinite(out["tokens"].float()).all()
    assert {n for n in model.no_weight_decay() if "cayley_a" in n}


def test_vit_batch_independence_presets_and_errors(tmp_path):
    model = vit()
    views = full_views()
    other = views.clone()
    other[1] = full_views(1, seed=5)[0]
    with torch.no_grad():
        a, b = model(views), model(other)
    torch.testing.assert_close(a["pooled"][0], b["pooled"][0])
    assert not torch.allclose(a["pooled"][1], b["pooled"][1])
    # paper preset: ViT-B/16 on 224 x 1120 -> 980 tokens, ~94M parameters (CLAMP: 94M)
    big = BACKBONES.build(dict(type="StringViT", arch="b16"))
    assert big.num_tokens == 980 and big.token_dim == big.out_dim == 768
    assert 90e6 < sum(p.numel() for p in big.parameters()) < 97e6
    with pytest.raises(ShapeError, match="views"):
        model(torch.zeros(2, 3, 64, 64))
    with pytest.raises(ShapeError, match="divisible"):
        model(torch.zeros(2, 5, 4, 64, 40))
    with pytest.raises(ShapeError, match="coords"):
        model(views, coords=torch.zeros(2, 79, 3))
    with pytest.raises(ShapeError, match="abs_pos_embed"):
        vit(abs_pos_embed=True)(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match="string_mode"):
        BACKBONES.build(dict(type="StringViT", arch="tiny", string_mode="cayley"))
    path = tmp_path / "vit.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()}}, path)
    fresh = vit(seed=3)
    fresh.load_pretrained(path, prefix="backbone.")
    with torch.no_grad():
        torch.testing.assert_close(fresh(views)["pooled"], a["pooled"], rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# ActionHistoryEncoder
# --------------------------------------------------------------------------------------------


def action_encoder(seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = dict(type="ActionHistoryEncoder", arch="tiny", action_dim=4, history=6, **kw)
    return BACKBONES.build(cfg).eval()


def test_history_padding_mask():
    mask = history_padding_mask(torch.tensor([0, 2, 9]), 4)
    want = torch.tensor([[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, want)


def test_action_encoder_ignores_padded_entries():
    enc = action_encoder()
    g = torch.Generator().manual_seed(0)
    actions = torch.randn(3, 6, 4, generator=g)
    mask = history_padding_mask(torch.tensor([0, 2, 6]), 6)
    actions[~mask] = 0.0  # zero padding as the paper
    garbage = actions.clone()
    garbage[~mask] = 50 * torch.randn(int((~mask).sum()), 4, generator=g)
    with torch.no_grad():
        out = enc(actions, mask)
        other = enc(garbage, mask)
        unmasked = enc(actions)
    assert out["tokens"].shape == (3, 6, 64) and out["pooled"].shape == (3, 64)
    assert torch.equal(out["mask"], mask)
    for i in (1, 2):  # rows with a valid entry: padding content is irrelevant
        torch.testing.assert_close(other["pooled"][i], out["pooled"][i], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            other["tokens"][i][mask[i]], out["tokens"][i][mask[i]], atol=1e-5, rtol=0
        )
    # t = 0: all entries padded -> encoded as the zero history, unmasked
    torch.testing.assert_close(out["pooled"][0], unmasked["pooled"][0], atol=1e-6, rtol=0)
    assert torch.isfinite(out["pooled"]).all()
    # the mask matters where there is padding
    assert (out["pooled"][1] - unmasked["pooled"][1]).abs().max() > 1e-4


def test_action_encoder_paper_size_dropout_gradients_and_errors():
    paper = BACKBONES.build(dict(type="ActionHistoryEncoder", arch="paper"))
    assert paper.blocks[0].mlp.fc1.out_features == 2048 and len(paper.blocks) == 2
    assert paper.blocks[0].attn.num_heads == 12 and paper.out_dim == 768
    assert 17e6 < sum(p.numel() for p in paper.parameters()) < 19e6  # CLAMP: 18M
    enc = action_encoder().train()
    x = torch.randn(2, 6, 4)
    a, b = enc(x)["pooled"], enc(x)["pooled"]
    assert not torch.allclose(a, b)  # dropout 0.1 active in training
    enc.set_grad_checkpointing(True)
    (enc(x)["pooled"].square().mean()).backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    with pytest.raises(ShapeError, match="actions"):
        enc(torch.randn(2, 5, 4))
    with pytest.raises(ShapeError, match="mask"):
        enc(x, torch.ones(2, 6))


# --------------------------------------------------------------------------------------------
# ClampTextEncoder
# --------------------------------------------------------------------------------------------

TEXTS = [
    "transfer the cube. cube at (0.12, -0.30, 0.05). progress 3",
    "insert the peg. peg at (-0.20, 0.10, 0.02). socket at (0.20, 0.10, 0.02). progress 7",
]


def test_text_encoder_tokenizes_and_pools_the_eot_token():
    torch.manual_seed(0)
    enc = BACKBONES.build(dict(type="ClampTextEncoder", arch="tiny")).eval()
    ids = enc.tokenize(TEXTS)
    assert ids.shape == (2, 256) and enc.context_length == 256
    sot, eot = enc.tokenizer.sot_token_id, enc.tokenizer.eot_token_id
    assert (ids[:, 0] == sot).all()
    for row, text in zip(ids, TEXTS):
        n = enc.count_tokens(text)
        assert row[n - 1] == eot and (row[n:] == 0).all()
    long = enc.tokenize(["word " * 400])[0]
    assert long[-1] == eot and (long != 0).all()  # truncated, EOT kept last
    with torch.no_grad():
        out = enc(TEXTS)
        again = enc(ids)
    torch.testing.assert_close(again["pooled"], out["pooled"], rtol=0, atol=0)
    assert out["tokens"].shape == (2, 256, 64) and out["pooled"].shape == (2, enc.out_dim)
    assert torch.equal(out["mask"], ids != 0)
    eot_pos = ids.argmax(dim=1)
    proj = enc.transformer.text_projection
    want = out["tokens"][torch.arange(2), eot_pos] @ proj
    torch.testing.assert_close(out["pooled"], want)
    assert not torch.allclose(out["pooled"][0], out["pooled"][1])
    # causal: the EOT feature ignores nothing before it, padding after it changes nothing
    padded = ids.clone()
    padded[0, eot_pos[0] + 1 :] = 7
    with torch.no_grad():
        torch.testing.assert_close(enc(padded)["pooled"][0], out["pooled"][0], atol=1e-5, rtol=0)


def test_text_encoder_gradients_bf16_and_errors():
    torch.manual_seed(0)
    enc = BACKBONES.build(dict(type="ClampTextEncoder", arch="tiny", context_length=32))
    enc.set_grad_checkpointing(True)
    enc(TEXTS)["pooled"].square().mean().backward()
    grad = enc.transformer.token_embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert enc(TEXTS)["pooled"].dtype == torch.bfloat16
    with pytest.raises(ShapeError, match="list of strings"):
        enc("one string")
    with pytest.raises(ShapeError, match="token ids"):
        enc(torch.zeros(2, 16, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# toolkit bench string (smoke)
# --------------------------------------------------------------------------------------------


def test_bench_string_quick_runs(capsys):
    from toolkit.cli import main

    rc = main(["bench", "string", "--quick", "--device", "cpu", "--repeats", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "StringViT-tiny fwd+bwd  batch 2, 80 tokens, fp32" in out
    for row in ("P (solve + fold)", "3D RoPE (q, k)", "string ", "rope ", "none "):
        assert row in out, row
    assert "STRING overhead string/none: measured" in out
