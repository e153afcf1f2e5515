"""CLARPretrainer: Eq. 7 terms, ablation switches, teachers out of checkpoints, cache, transfer."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from toolkit.models.pretrainers.clar import PAPER_WEIGHTS, CLARPretrainer
from toolkit.models.teachers import TINY_VIT_CLIP_CFG
from toolkit.ops.cameras import intrinsics_from_fovy, look_at
from toolkit.registry import MODELS
from toolkit.utils.errors import CheckpointError, ConfigError

TEACHER = dict(model_name="tiny-test-clip", model_cfg=TINY_VIT_CLIP_CFG, random_init=True)


def _cfg(**over):
    cfg = dict(
        type="CLARPretrainer",
        backbone=dict(type="PointMAE", arch="tiny", drop_path_rate=0.0),
        image_teacher=dict(type="OpenCLIPImageTeacher", **TEACHER),
        text_teacher=dict(type="OpenCLIPTextTeacher", **TEACHER),
        local_loss=dict(type="LocalAlignmentLoss", embed_dim=32, num_heads=4, num_points=2),
    )
    cfg.update(over)
    return cfg


def _build(**over) -> CLARPretrainer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loud random-teacher warning (tested elsewhere)
        return MODELS.build(_cfg(**over))


def _batch(b: int = 6, n: int = 256, seed: int = 0) -> dict:
    """Clouds in front of one camera: a box-shaped blob per sample at a different place."""
    g = torch.Generator().manual_seed(seed)
    offsets = torch.rand(b, 1, 3, generator=g) * 0.4 - 0.2
    pts = torch.rand(b, n, 3, generator=g) * torch.tensor([0.3, 0.3, 0.2]) + offsets
    K = intrinsics_from_fovy(60.0, 64, 64)
    T = look_at([0.0, -1.2, 0.8], [0.0, 0.0, 0.0])
    return {
        "points": pts,
        "points_mask": torch.ones(b, n, dtype=torch.bool),
        "rgb": torch.randint(0, 256, (b, 3, 64, 64), generator=g, dtype=torch.uint8),
        "intrinsics": K.expand(b, 3, 3).clone(),
        "extrinsics": T.expand(b, 4, 4).clone(),
        "pixel_valid": torch.ones(b, 64, 64, dtype=torch.bool),
        "text": [f"task number {i % 3}" for i in range(b)],
    }


def test_loss_terms_are_weighted_as_eq7_and_finite():
    torch.manual_seed(0)
    model = _build()
    out = model.loss(_batch())
    for name, w in PAPER_WEIGHTS.items():
        assert torch.isfinite(out[f"loss_{name}"])
        assert torch.allclose(out[f"loss_{name}"], w * out[f"raw_{name}"])
    assert out["local_valid_fraction"] > 0.9  # every centre is in front of the camera
    custom = _build(loss_weights=dict(mae=2.0, local=0.0))
    assert custom.weights == {"mae": 2.0, "pi": 0.5, "pt": 0.5, "local": 0.0}


def test_training_lowers_all_four_losses():
    torch.manual_seed(0)
    model = _build()
    batch = _batch()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    first = None
    for _ in range(40):
        torch.manual_seed(1)  # same MAE mask every step: a fixed objective to descend
        out = model.loss(batch)
        if first is None:
            first = {k: float(out[f"raw_{k}"]) for k in PAPER_WEIGHTS}
        loss = sum(v for k, v in out.items() if k.startswith("loss_"))
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    last = {k: float(model.loss(batch)[f"raw_{k}"]) for k in PAPER_WEIGHTS}
    for k in PAPER_WEIGHTS:
        assert last[k] < 0.8 * first[k], (k, first[k], last[k])


def test_ablation_switches_build_only_what_is_used():
    no_mae = _build(use_mae=False)
    assert no_mae.backbone.decoder is None and no_mae.mae_loss is None
    assert "loss_mae" not in no_mae.loss(_batch())
    no_local = _build(use_local=False)
    assert no_local.local_loss is None and "loss_local" not in no_local.loss(_batch())
    mae_only = _build(use_local=False, use_pi=False, use_pt=False)
    assert mae_only.image_teacher is None and mae_only.text_teacher is None
    assert set(k for k in mae_only.loss(_batch()) if k.startswith("loss_")) == {"loss_mae"}
    # no teacher is needed (nor built) when nothing aligns to it
    MODELS.build(_cfg(use_local=False, use_pi=False, use_pt=False, image_teacher=None,
                      text_teacher=None))  # fmt: skip


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="image_teacher"):
        MODELS.build(_cfg(image_teacher=None))
    with pytest.raises(ConfigError, match="text_teacher"):
        MODELS.build(_cfg(text_teacher=None))
    with pytest.raises(ConfigError, match="unknown term"):
        _build(loss_weights=dict(recon=1.0))
    with pytest.raises(ConfigError, match="every loss term"):
        _build(use_mae=False, use_pi=False, use_pt=False, use_local=False)


def test_teachers_stay_out_of_state_dict_and_optimizer_but_move_with_the_model():
    model = _build()
    keys = list(model.state_dict())
    assert not any("teacher" in k for k in keys)
    assert any(k.startswith("backbone.decoder.") for k in keys)
    assert any(k.startswith("local_loss.") for k in keys)
    assert all(p.requires_grad for p in model.parameters())  # only trainable ones are listed
    clone = _build()
    clone.load_state_dict(model.state_dict())  # strict: teachers are neither missing nor extra
    model.to(torch.float64)
    assert next(model.image_teacher.parameters()).dtype == torch.float64
    assert next(model.text_teacher.parameters()).dtype == torch.float64


class _FakeCache:
    def __init__(self, emb: torch.Tensor, fmap: torch.Tensor):
        self.emb, self.fmap, self.calls = emb, fmap, 0

    def get(self, path, steps, camera):
        self.calls += 1
        idx = torch.as_tensor(steps)
        return {"embedding": self.emb[idx], "feature_map": self.fmap[idx]}


def test_cached_targets_replace_the_teacher():
    torch.manual_seed(0)
    model = _build()
    batch = _batch(b=4)
    batch["episode"] = ["a.hdf5", "b.hdf5", "a.hdf5", "b.hdf5"]
    batch["step"] = torch.tensor([0, 1, 2, 3])
    live = model.image_targets(batch)
    cache = _FakeCache(
        torch.randn(8, live["embedding"].shape[1]), torch.randn(8, *live["feature_map"].shape[1:])
    )
    model.attach_teacher_cache(cache, "/data", {"a.hdf5": "corner", "b.hdf5": "corner"})
    got = model.image_targets(batch)
    assert cache.calls == 2  # one lookup per episode in the batch
    assert torch.equal(got["embedding"], cache.emb[[0, 1, 2, 3]])
    assert torch.equal(got["feature_map"], cache.fmap[[0, 1, 2, 3]])
    assert model.cache_hits == 1
    batch["episode"] = ["a.hdf5", "c.hdf5", "a.hdf5", "b.hdf5"]  # c not cached: teacher runs
    again = model.image_targets(batch)
    assert model.cache_misses == 1
    assert torch.allclose(again["embedding"], live["embedding"])


def test_pretrained_encoder_loads_into_the_policy_from_a_work_dir(tmp_path):
    torch.manual_seed(0)
    model = _build()
    with torch.no_grad():  # make the weights distinguishable from a fresh init
        for p in model.backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = tmp_path / "epoch_3.pth"
    torch.save({"meta": {"epoch": 3}, "state_dict": model.state_dict()}, ckpt)
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "gone" / "epoch_3.pth"))
    policy_cfg = dict(
        type="PointCloudPolicy",
        encoder=dict(type="PointMAE", arch="tiny", with_decoder=False, drop_path_rate=0.0),
        head=dict(type="BNMLPHead", hidden_dims=(32,)),
        encoder_weights=str(tmp_path),  # the work_dir: its last_checkpoint (moved dir is fine)
        encoder_weights_prefix="backbone.",
    )
    policy = MODELS.build(copy.deepcopy(policy_cfg))
    pts = _batch(b=2)["points"]
    model.eval()
    policy.eval()
    with torch.no_grad():
        ref = model.backbone(pts)["tokens"]
        got = policy.encoder(pts)["tokens"]
    assert torch.allclose(ref, got, atol=1e-6)
    (tmp_path / "last_checkpoint").unlink()
    with pytest.raises(CheckpointError, match="last_checkpoint"):
        MODELS.build(copy.deepcopy(policy_cfg))


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_encoder_weights_refuse_a_malicious_pickle(tmp_path):
    from toolkit.models.backbones.point_mae import PointMAE

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"backbone.norm.weight": torch.ones(96)}, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="evil.pth"):
        PointMAE(arch="tiny", with_decoder=False).load_pretrained(path, prefix="backbone.")
