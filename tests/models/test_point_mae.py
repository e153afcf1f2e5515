"""Point-MAE: grouping, masking, reconstruction targets, training signal, reference parity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from toolkit.models.backbones.point_mae import (
    ARCH_SETTINGS,
    PointMAE,
    convert_point_mae_official,
    random_token_mask,
)
from toolkit.ops.chamfer import chamfer_distance
from toolkit.registry import BACKBONES
from toolkit.utils.errors import CheckpointError


def _dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def _tiny(seed: int = 0, **kw) -> PointMAE:
    torch.manual_seed(seed)
    return PointMAE(arch="tiny", **kw)


def _cloud(b: int = 2, n: int = 256, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- masking


@pytest.mark.parametrize("ratio", [0.6, 0.7, 0.75, 0.8])
def test_random_token_mask_has_exact_count_per_sample(ratio):
    mask = random_token_mask(5, 64, ratio, torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (5, 64)
    assert (mask.sum(1) == int(ratio * 64)).all()
    assert len({tuple(row.tolist()) for row in mask}) == 5  # drawn per sample


def test_masking_is_deterministic_under_a_generator():
    model = _tiny().eval()
    x = _cloud()
    with torch.no_grad():
        a = model.forward_mae(x, generator=torch.Generator().manual_seed(42))
        b = model.forward_mae(x, generator=torch.Generator().manual_seed(42))
        c = model.forward_mae(x, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["pred"], b["pred"])
    assert not torch.equal(a["mask"], c["mask"])


def test_visible_and_masked_patches_partition_the_groups():
    model = _tiny(mask_ratio=0.7).eval()
    g = model.num_groups
    with torch.no_grad():
        out = model.forward_mae(_cloud(3), generator=torch.Generator().manual_seed(0))
    m = int(0.7 * g)
    vis, msk, mask = out["visible_idx"], out["masked_idx"], out["mask"]
    assert vis.shape == (3, g - m) and msk.shape == (3, m)
    assert out["pred"].shape == out["target"].shape == (3, m, model.group_size, 3)
    assert out["visible_tokens"].shape == (3, g - m, model.embed_dim)
    for i in range(3):
        assert sorted(vis[i].tolist() + msk[i].tolist()) == list(range(g))
        assert (vis[i].diff() > 0).all() and (msk[i].diff() > 0).all()  # reference order
        assert not mask[i, vis[i]].any() and mask[i, msk[i]].all()


def test_mask_ratio_override_and_validation():
    model = _tiny()
    out = model.forward_mae(_cloud(), mask_ratio=0.8)
    assert out["mask"].sum(1).tolist() == [int(0.8 * model.num_groups)] * 2
    with pytest.raises(ValueError, match="mask_ratio"):
        model.forward_mae(_cloud(), mask_ratio=1.0)
    with pytest.raises(ValueError, match="mask_ratio"):
        _tiny(mask_ratio=-0.1)
    with pytest.raises(RuntimeError, match="with_decoder"):
        _tiny(with_decoder=False).forward_mae(_cloud())


# ---------------------------------------------------------------------------- grouping / targets


def test_groups_are_fps_centers_with_their_knn_in_local_frames():
    model = _tiny().eval()
    x = _cloud(2, 300)
    neigh, centers = model.group(x)
    g, k = model.num_groups, model.group_size
    assert neigh.shape == (2, g, k, 3) and centers.shape == (2, g, 3)
    torch.testing.assert_close(centers[:, 0], x[:, 0])  # FPS starts at point 0
    for b in range(2):
        d = _dist(centers[b], x[b])  # (G, N)
        assert (d.amin(dim=1) < 1e-6).all()  # centers are input points
        # brute-force kNN, compared as point sets per patch
        idx = d.topk(k, largest=False).indices
        expected = x[b][idx] - centers[b][:, None]
        got, want = neigh[b], expected
        key = lambda p: p[..., 0] * 1e6 + p[..., 1] * 1e3 + p[..., 2]  # noqa: E731
        got = torch.gather(got, 1, key(got).argsort(1)[..., None].expand(-1, -1, 3))
        want = torch.gather(want, 1, key(want).argsort(1)[..., None].expand(-1, -1, 3))
        torch.testing.assert_close(got, want)
    assert (neigh.norm(dim=-1).amin(dim=-1) < 1e-6).all()  # each patch holds its center


def test_reconstruction_target_is_the_ground_truth_masked_neighbourhoods():
    model = _tiny().eval()
    x = _cloud()
    with torch.no_grad():
        out = model.forward_mae(x, generator=torch.Generator().manual_seed(0))
    neigh, centers = model.group(x)
    for b in range(2):
        torch.testing.assert_close(out["target"][b], neigh[b][out["mask"][b]])
        # back in the world frame, the targets are actual input points
        world = out["target"][b] + centers[b][out["mask"][b]][:, None]
        assert (_dist(world.reshape(-1, 3), x[b]).amin(dim=1) < 1e-6).all()


def test_neighbourhoods_are_translation_invariant():
    model = _tiny().eval()
    x = _cloud()
    shift = torch.tensor([0.5, -1.0, 2.0])
    n1, c1 = model.group(x)
    n2, c2 = model.group(x + shift)
    torch.testing.assert_close(c2, c1 + shift)
    torch.testing.assert_close(n2, n1, atol=1e-5, rtol=0)


def test_point_mask_gives_the_same_mae_pass_as_the_unpadded_cloud():
    model = _tiny(drop_path_rate=0.0).eval()
    x = _cloud(2, 200)
    padded = torch.cat([x, torch.full((2, 56, 3), 9.0)], dim=1)
    mask = torch.zeros(2, 256, dtype=torch.bool)
    mask[:, :200] = True
    with torch.no_grad():
        a = model.forward_mae(x, generator=torch.Generator().manual_seed(1))
        b = model.forward_mae(padded, mask=mask, generator=torch.Generator().manual_seed(1))
    for key in ("pred", "target", "centers", "visible_tokens"):
        torch.testing.assert_close(b[key], a[key])


# ---------------------------------------------------------------------------- training signal


def test_few_steps_on_one_batch_lower_the_chamfer_loss():
    model = _tiny(drop_path_rate=0.0).train()
    x = _cloud(2, 256, seed=3)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)

    def step() -> tuple[dict, torch.Tensor]:
        out = model.forward_mae(x, generator=torch.Generator().manual_seed(0))
        pred, target = out["pred"].flatten(0, 1), out["target"].flatten(0, 1)  # (B*M, K, 3)
        return out, chamfer_distance(pred, target).mean()

    out, first = step()
    target = out["target"].flatten(0, 1)
    # Trivial predictor: every point at its patch center (the local origin).
    at_center = chamfer_distance(torch.zeros_like(target), target).mean().item()
    for _ in range(30):
        opt.zero_grad()
        _, loss = step()
        loss.backward()
        opt.step()
    last = step()[1].item()
    assert last < 0.2 * first.item(), (first.item(), last)
    assert last < 0.7 * at_center, (at_center, last)


# ---------------------------------------------------------------------------- reference parity
# An independent plain-torch.nn rendition of the reference structure (Pang-Yatian/Point-MAE
# models/Point_MAE.py, as described in shared/reference/specs.md), with the reference's module
# names so that its state_dict has the upstream keys.


class _RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        w = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1)
        return self.proj((w @ v).transpose(1, 2).reshape(b, n, c))


class _RefMlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), _RefAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), _RefMlp(dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _RefTokenizer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, 256, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(), nn.Conv1d(512, dim, 1)
        )

    def forward(self, groups):
        b, g, k, _ = groups.shape
        f = self.first_conv(groups.reshape(b * g, k, 3).transpose(1, 2))
        f = torch.cat([f.max(2, keepdim=True)[0].expand(-1, -1, k), f], 1)
        return self.second_conv(f).max(2)[0].reshape(b, g, -1)


class _RefBlockList(nn.Module):
    def __init__(self, dim: int, heads: int, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_RefBlock(dim, heads) for _ in range(depth))


class _RefEncoder(nn.Module):  # "MAE_encoder"
    def __init__(self, dim: int, heads: int, depth: int) -> None:
        super().__init__()
        self.encoder = _RefTokenizer(dim)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.blocks = _RefBlockList(dim, heads, depth)
        self.norm = nn.LayerNorm(dim)


class _RefDecoder(nn.Module):  # "MAE_decoder"
    def __init__(self, dim: int, heads: int, depth: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_RefBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)


class _RefPointMAE(nn.Module):
    def __init__(self, dim=384, depth=12, heads=6, dec_depth=4, dec_heads=6, group_size=32):
        super().__init__()
        self.MAE_encoder = _RefEncoder(dim, heads, depth)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.decoder_pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.MAE_decoder = _RefDecoder(dim, dec_heads, dec_depth)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * group_size, 1))

    def forward(self, neigh, centers, mask):
        """The reference's masked pass for given patches and patch mask -> predictions."""
        b = neigh.shape[0]
        enc = self.MAE_encoder
        tokens = enc.encoder(neigh)
        x = tokens[~mask].reshape(b, -1, tokens.shape[-1])
        pos = enc.pos_embed(centers[~mask].reshape(b, -1, 3))
        for blk in enc.blocks.blocks:
            x = blk(x + pos)
        x = enc.norm(x)
        pos_vis = self.decoder_pos_embed(centers[~mask]).reshape(b, -1, x.shape[-1])
        pos_msk = self.decoder_pos_embed(centers[mask]).reshape(b, -1, x.shape[-1])
        m = pos_msk.shape[1]
        x = torch.cat([x, self.mask_token.expand(b, m, -1)], 1)
        pos = torch.cat([pos_vis, pos_msk], 1)
        for blk in self.MAE_decoder.blocks:
            x = blk(x + pos)
        x = self.MAE_decoder.norm(x[:, -m:])
        return self.increase_dim(x.transpose(1, 2)).transpose(1, 2).reshape(b, m, -1, 3)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_the_reference_configuration():
    ref = _RefPointMAE()
    ours = PointMAE(arch="base")
    ref_total, ref_encoder = _count(ref), _count(ref.MAE_encoder)
    # Independently derived by hand: tokenizer 494,464 + pos MLP 50,048 + 12 blocks x
    # 1,773,312 + LN 768 = 21,825,024; decoder: mask token 384 + pos MLP 50,048 + 4 blocks +
    # LN 768 + head 36,960 -> 29,006,432 in all.
    assert ref_encoder == 21_825_024 and ref_total == 29_006_432
    assert abs(_count(ours) - ref_total) <= 0.01 * ref_total
    assert _count(ours) == ref_total
    encoder_only = PointMAE(arch="base", with_decoder=False)
    assert _count(encoder_only) == ref_encoder
    assert ours.out_dim == 768 and ours.token_dim == 384 and ours.num_tokens == 64
    assert ARCH_SETTINGS["base"]["num_groups"] == 64 and ARCH_SETTINGS["base"]["group_size"] == 32


def test_upstream_checkpoint_loads_and_reproduces_the_reference_forward(tmp_path):
    # Reference widths (384-d, 6 heads, 64 x 32 patches), fewer blocks to keep the test fast.
    torch.manual_seed(0)
    ref = _RefPointMAE(depth=2, dec_depth=1).eval()
    for m in ref.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "pointmae_pretrain.pth"
    ckpt = {"base_model": {f"module.{k}": v for k, v in ref.state_dict().items()}, "epoch": 300}
    torch.save(ckpt, path)

    ours = PointMAE(arch="base", depth=2, decoder_depth=1).eval()
    ours.load_pretrained(path)  # strict: every key maps
    x = _cloud(2, 1024)
    with torch.no_grad():
        out = ours.forward_mae(x, generator=torch.Generator().manual_seed(0))
        want = ref(out["neighborhoods"], out["centers"], out["mask"])
    torch.testing.assert_close(out["pred"], want, atol=1e-4, rtol=1e-4)

    encoder_only = PointMAE(arch="base", depth=2, with_decoder=False).eval()
    encoder_only.load_pretrained(path)  # decoder weights are dropped
    with torch.no_grad():
        torch.testing.assert_close(encoder_only(x)["tokens"], ours(x)["tokens"])


def test_converter_keeps_unknown_keys_for_strict_reporting():
    out = convert_point_mae_official({"MAE_encoder.norm.weight": torch.ones(1), "cls_head.w": 1})
    assert set(out) == {"norm.weight", "cls_head.w"}


# ---------------------------------------------------------------------------- checkpoints / misc


def test_load_pretrained_round_trip_and_mismatch(tmp_path):
    src = _tiny(0).eval()
    torch.save(src.state_dict(), tmp_path / "w.pth")
    dst = _tiny(1).eval()
    dst.load_pretrained(tmp_path / "w.pth")
    x = _cloud()
    with torch.no_grad():
        a = src.forward_mae(x, generator=torch.Generator().manual_seed(0))
        b = dst.forward_mae(x, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(b["pred"], a["pred"], rtol=0, atol=0)
        torch.testing.assert_close(dst(x)["pooled"], src(x)["pooled"], rtol=0, atol=0)
    deeper = PointMAE(arch="tiny", depth=3)
    with pytest.raises(CheckpointError) as err:
        deeper.load_pretrained(tmp_path / "w.pth")
    assert "w.pth" in str(err.value) and "blocks.2.attn.qkv.weight" in str(err.value)


def test_grad_checkpointing_gives_the_same_values_and_gradients():
    x = _cloud()
    results = []
    for flag in (False, True):
        model = _tiny(0, drop_path_rate=0.0, grad_checkpointing=flag).eval()
        out = model.forward_mae(x, generator=torch.Generator().manual_seed(0))
        (out["pred"].square().mean() + model(x)["pooled"].sum()).backward()
        results.append((out["pred"].detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for g0, g1 in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g0, g1)
    model = _tiny()
    model.set_grad_checkpointing(True)
    assert model.grad_checkpointing and model.decoder.grad_checkpointing


@pytest.mark.parametrize(("pool", "factor"), [("mean_max", 2), ("max", 1), ("mean", 1)])
def test_pool_options(pool, factor):
    model = _tiny(pool=pool).eval()
    out = model(_cloud())
    assert model.out_dim == factor * model.embed_dim
    assert out["pooled"].shape == (2, model.out_dim)
    tokens = out["tokens"]
    if pool == "max":
        torch.testing.assert_close(out["pooled"], tokens.amax(1))
    elif pool == "mean":
        torch.testing.assert_close(out["pooled"], tokens.mean(1))


def test_arch_presets_and_overrides():
    model = BACKBONES.build(dict(type="PointMAE", arch="small", with_decoder=False))
    assert (model.embed_dim, len(model.blocks), model.num_groups) == (192, 6, 64)
    model = PointMAE(
        arch="tiny", embed_dim=64, num_heads=4, decoder_num_heads=4, num_groups=16, group_size=8
    )
    assert model(_cloud())["tokens"].shape == (2, 16, 64)
    with pytest.raises(ValueError, match="arch"):
        PointMAE(arch="huge")
    assert model.no_weight_decay() == {"decoder.mask_token"}


def test_init_follows_the_reference():
    model = PointMAE(arch="base")
    qkv = model.blocks[0].attn.qkv.weight
    assert qkv.std().item() == pytest.approx(0.02, rel=0.05)  # timm trunc_normal_ cuts at +-2
    assert model.blocks[0].attn.qkv.bias is None
    dec = model.decoder.blocks[0].mlp.fc1.weight  # xavier uniform bound sqrt(6 / (in + out))
    bound = (6 / (dec.shape[0] + dec.shape[1])) ** 0.5
    assert dec.abs().max() <= bound and dec.abs().max() > 0.9 * bound
    assert (model.decoder.blocks[0].mlp.fc1.bias == 0).all()
    assert model.decoder.mask_token.std().item() == pytest.approx(0.02, rel=0.2)
    rates = [blk.drop_path1.drop_prob if hasattr(blk.drop_path1, "drop_prob") else 0.0
             for blk in model.blocks]  # fmt: skip
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
