"""Contract tests over every registered point-cloud backbone, plus per-family checks.

A backbone of the toolkit package counts as a point-cloud backbone when its ``forward`` takes
``points``; a new one is tested here for free (with its default arguments unless
``SMALL_CONFIGS`` names a smaller one).
"""

from __future__ import annotations

import inspect

import pytest
import torch

import toolkit.models.backbones  # noqa: F401  (registers the backbones)
from toolkit.models.backbones.pointnet import feature_transform_regularizer
from toolkit.models.utils import load_pretrained
from toolkit.registry import BACKBONES
from toolkit.utils.errors import CheckpointError

#: Small configurations per registered name (the contract holds for any configuration).
SMALL_CONFIGS: dict[str, dict] = {
    "PointNet": dict(mlp_dims=(16, 32, 64), input_transform=True, feature_transform=True),
    "DP3Encoder": dict(mlp_dims=(16, 32, 48), out_dim=24),
    "PointNet2": dict(
        num_centers=(64, 16),
        radii=(0.2, 0.4),
        num_samples=(8, 16),
        mlp_dims=((16, 16, 32), (32, 32, 48)),
        global_mlp_dims=(48, 64),
    ),
    "PointMAE": dict(arch="tiny", with_decoder=False),
}

#: Backbones whose pooled output is invariant to the order of the input points. The others
#: start FPS at point 0, so reordering the cloud changes which centers are picked.
PERMUTATION_INVARIANT = {"PointNet", "DP3Encoder"}

B, N = 2, 256


def _point_backbones() -> list[str]:
    names = []
    for name in BACKBONES.known_names():
        cls = BACKBONES.get(name)
        if not (isinstance(cls, type) and cls.__module__.startswith("toolkit.")):
            continue  # user plugins registered in-process are their authors' to test
        if "points" in inspect.signature(cls.forward).parameters:
            names.append(name)
    return names


POINT_BACKBONES = _point_backbones()


def _build(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return BACKBONES.build(dict(type=name, **{**SMALL_CONFIGS.get(name, {}), **overrides}))


def _cloud(b: int = B, n: int = N, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=g) * 2 - 1  # a 2 m cube around the origin


def _tensors(out: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def test_the_known_point_backbones_are_registered():
    assert {"PointNet", "PointNet2", "DP3Encoder", "PointMAE"} <= set(POINT_BACKBONES)


@pytest.mark.parametrize("name", POINT_BACKBONES)
class TestContract:
    def test_shapes_attributes_and_finite(self, name):
        model = _build(name)
        assert isinstance(model.out_dim, int) and isinstance(model.token_dim, int)
        out = model(_cloud())
        tokens, pooled = out["tokens"], out["pooled"]
        t = tokens.shape[1]
        assert tokens.shape == (B, t, model.token_dim)
        assert pooled.shape == (B, model.out_dim)
        if model.num_tokens is None:
            assert t == N
        else:
            assert t == model.num_tokens
        if "centers" in out:
            assert out["centers"].shape == (B, t, 3)
        for key, value in _tensors(out).items():
            assert torch.isfinite(value).all(), key

    def test_gradients_reach_every_parameter(self, name):
        model = _build(name).train()
        with torch.no_grad():  # leave zero-initialized layers (T-Net outputs) for a generic state
            for p in model.parameters():
                p.add_(1e-2 * torch.randn_like(p))
        out = model(_cloud())
        (out["pooled"].square().mean() + out["tokens"].square().mean()).backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None, f"{name}.{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, f"{name}.{pname} got an all-zero gradient"

    def test_batch_independence(self, name):
        model = _build(name).eval()  # BatchNorm couples samples in train mode only
        x = _cloud()
        y = x.clone()
        y[1] = _cloud(1, N, seed=7)[0]
        with torch.no_grad():
            a, b = model(x), model(y)
        for key in ("tokens", "pooled"):
            torch.testing.assert_close(a[key][0], b[key][0])
            assert not torch.allclose(a[key][1], b[key][1])

    def test_all_true_mask_equals_no_mask(self, name):
        model = _build(name).eval()
        x = _cloud()
        with torch.no_grad():
            a = model(x)
            b = model(x, mask=torch.ones(B, N, dtype=torch.bool))
        torch.testing.assert_close(a["pooled"], b["pooled"])
        torch.testing.assert_close(a["tokens"], b["tokens"])

    @pytest.mark.parametrize("train", [False, True])
    def test_padded_points_do_not_change_the_output(self, name, train):
        """Insert garbage points at random positions: with the mask, nothing changes."""
        model = _build(name, drop_path_rate=0.0) if name == "PointMAE" else _build(name)
        model.train(train)
        x = _cloud(B, 200)
        g = torch.Generator().manual_seed(3)
        mask = torch.zeros(B, N, dtype=torch.bool)
        for i in range(B):
            mask[i, torch.randperm(N, generator=g)[:200]] = True
        padded = torch.randn(B, N, 3, generator=g) * 5  # far and near garbage
        padded[1, ~mask[1]] = float("nan")  # and non-finite padding
        padded[mask] = x.reshape(-1, 3)
        with torch.no_grad():
            ref = model(x)
            out = model(padded, mask=mask)
        torch.testing.assert_close(out["pooled"], ref["pooled"])
        if ref["tokens"].shape[1] == 200:  # one token per point
            for i in range(B):
                torch.testing.assert_close(out["tokens"][i][mask[i]], ref["tokens"][i])
        else:
            torch.testing.assert_close(out["tokens"], ref["tokens"])
            torch.testing.assert_close(out["centers"], ref["centers"])
        assert torch.isfinite(out["pooled"]).all()

    def test_bad_inputs_raise(self, name):
        model = _build(name)
        with pytest.raises(ValueError, match="points"):
            model(torch.zeros(B, N, 2))
        with pytest.raises(ValueError, match="mask"):
            model(_cloud(), mask=torch.ones(B, N))  # float, not bool
        with pytest.raises(ValueError, match="valid points"):
            model(_cloud(), mask=torch.zeros(B, N, dtype=torch.bool))

    def test_load_pretrained_round_trip(self, name, tmp_path):
        src = _build(name, seed=0).eval()
        path = tmp_path / "weights.pth"
        torch.save(src.state_dict(), path)
        dst = _build(name, seed=1).eval()
        x = _cloud()
        with torch.no_grad():
            assert not torch.allclose(dst(x)["pooled"], src(x)["pooled"])
            dst.load_pretrained(path)
            torch.testing.assert_close(dst(x)["pooled"], src(x)["pooled"], rtol=0, atol=0)

    def test_load_pretrained_with_prefix_and_nesting(self, name, tmp_path):
        src = _build(name, seed=0)
        state = {f"backbone.{k}": v for k, v in src.state_dict().items()}
        state["head.weight"] = torch.zeros(3)
        path = tmp_path / "pretrainer.pth"
        torch.save({"meta": {"epoch": 3}, "state_dict": state}, path)
        dst = _build(name, seed=1)
        dst.load_pretrained(path, prefix="backbone.")
        for k, v in src.state_dict().items():
            torch.testing.assert_close(dst.state_dict()[k], v, rtol=0, atol=0)

    def test_load_pretrained_mismatch_names_file_and_keys(self, name, tmp_path):
        state = _build(name).state_dict()
        dropped = sorted(state)[0]
        del state[dropped]
        state["not_a_layer.weight"] = torch.zeros(1)
        path = tmp_path / "bad.pth"
        torch.save(state, path)
        with pytest.raises(CheckpointError) as err:
            _build(name).load_pretrained(path)
        msg = str(err.value)
        assert str(path) in msg and dropped in msg and "not_a_layer.weight" in msg
        assert "missing" in msg and "unexpected" in msg
        result = _build(name).load_pretrained(path, strict=False)
        assert dropped in result.missing_keys and "not_a_layer.weight" in result.unexpected_keys


# ---------------------------------------------------------------------------- load_pretrained


def test_load_pretrained_errors(tmp_path):
    model = _build("DP3Encoder")
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(model, tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_pretrained(model, tmp_path / "junk.pth")
    torch.save({"x": object.__new__(torch.nn.Identity)}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="pickled.pth"):  # refused by weights_only=True
        load_pretrained(model, tmp_path / "pickled.pth")
    torch.save(model.state_dict(), tmp_path / "ok.pth")
    with pytest.raises(CheckpointError, match="prefix 'encoder.'"):
        load_pretrained(model, tmp_path / "ok.pth", prefix="encoder.")
    other = _build("DP3Encoder", out_dim=32)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_pretrained(other, tmp_path / "ok.pth")


def test_load_pretrained_strips_ddp_module_prefix(tmp_path):
    src = _build("DP3Encoder", seed=0)
    torch.save({"model": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w")
    dst = _build("DP3Encoder", seed=1)
    dst.load_pretrained(tmp_path / "w")
    torch.testing.assert_close(dst.mlp[0].weight, src.mlp[0].weight)


# ---------------------------------------------------------------------------- PointNet / DP3


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PERMUTATION_INVARIANT))
def test_pooled_is_permutation_invariant_and_tokens_equivariant(name):
    model = _build(name).eval()
    x = _cloud()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = model(x), model(x[:, perm])
    torch.testing.assert_close(b["pooled"], a["pooled"])
    torch.testing.assert_close(b["tokens"], a["tokens"][:, perm])


def test_pointnet_parameter_counts_match_the_reference():
    # yanx27 PointNetEncoder: conv 3-64-128-1024 with BN = 256 + 8320 + 132096 + 2432 = 143,104;
    # STN3d = 803,081 and STNkd(64) = 1,857,344 (conv 64/128/1024, fc 512/256/k*k, 5 BNs).
    torch.manual_seed(0)
    plain = BACKBONES.build(dict(type="PointNet"))
    full = BACKBONES.build(dict(type="PointNet", input_transform=True, feature_transform=True))
    assert _n_params(plain) == 143_104
    assert _n_params(full) == 143_104 + 803_081 + 1_857_344
    assert plain.out_dim == plain.token_dim == 1024
    lift3d = BACKBONES.build(dict(type="PointNet", head_dims=(512, 256)))
    assert lift3d.out_dim == 256 and lift3d(_cloud())["pooled"].shape == (B, 256)


def test_pointnet_tnets_start_as_identity_and_regularizer():
    model = _build("PointNet").eval()
    out = model(_cloud())
    eye3, eye64 = torch.eye(3).expand(B, 3, 3), torch.eye(16).expand(B, 16, 16)
    torch.testing.assert_close(out["input_transform"], eye3)
    torch.testing.assert_close(out["feature_transform"], eye64)
    assert feature_transform_regularizer(out["feature_transform"]).item() == pytest.approx(0.0)
    q, _ = torch.linalg.qr(torch.randn(B, 5, 5))
    assert feature_transform_regularizer(q).item() == pytest.approx(0.0, abs=1e-5)
    assert feature_transform_regularizer(2 * torch.eye(4)[None]).item() == pytest.approx(36.0)


def test_pointnet_tokens_of_padded_points_are_zero():
    model = _build("PointNet")
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[:, -10:] = False
    out = model(_cloud(), mask=mask)
    assert (out["tokens"][:, -10:] == 0).all() and out["token_mask"] is mask


def test_dp3_encoder_matches_reference_layout_and_size():
    model = BACKBONES.build(dict(type="DP3Encoder"))
    # mlp: Linear(3,64) LN ReLU Linear(64,128) LN ReLU Linear(128,256) LN ReLU; proj 256->64 + LN
    expected = {f"mlp.{i}.{p}" for i in (0, 1, 3, 4, 6, 7) for p in ("weight", "bias")}
    expected |= {f"final_projection.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")}
    assert set(model.state_dict()) == expected
    assert _n_params(model) == 256 + 128 + 8320 + 256 + 33024 + 512 + 16448 + 128
    assert model.out_dim == 64 and model.token_dim == 256
    bare = BACKBONES.build(dict(type="DP3Encoder", use_layernorm=False, final_norm="none"))
    assert {"mlp.0.weight", "mlp.3.weight", "mlp.6.weight", "final_projection.weight"} <= set(
        bare.state_dict()
    )
    assert BACKBONES.build(dict(type="DP3Encoder", use_projection=False)).out_dim == 256


# ---------------------------------------------------------------------------- PointNet++


def test_pointnet2_reference_size_and_defaults():
    model = BACKBONES.build(dict(type="PointNet2"))
    # yanx27 pointnet2_cls_ssg without the classifier: SA1 13,248 + SA2 67,456 + SA3 727,040.
    assert _n_params(model) == 807_744
    assert (model.num_tokens, model.token_dim, model.out_dim) == (128, 256, 1024)
    out = model(_cloud(2, 1024))
    assert out["tokens"].shape == (2, 128, 256) and out["pooled"].shape == (2, 1024)
    assert [lvl[0].shape[1] for lvl in out["levels"]] == [512, 128]


def test_pointnet2_tokens_are_translation_invariant_pooled_is_not():
    model = _build("PointNet2").eval()
    x = _cloud()
    shift = torch.tensor([0.3, -0.2, 0.5])
    with torch.no_grad():
        a, b = model(x), model(x + shift)
    torch.testing.assert_close(b["centers"], a["centers"] + shift)
    torch.testing.assert_close(b["tokens"], a["tokens"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(b["pooled"], a["pooled"], atol=1e-3)


def test_pointnet2_first_center_is_first_point_and_groups_stay_in_radius():
    model = _build("PointNet2").eval()
    x = _cloud()
    with torch.no_grad():
        out = model(x)
    c1 = out["levels"][0][0]
    torch.testing.assert_close(c1[:, 0], x[:, 0])
    # every level-1 center is an input point
    assert (torch.cdist(c1, x, compute_mode="donot_use_mm_for_euclid_dist").amin(2) < 1e-6).all()
