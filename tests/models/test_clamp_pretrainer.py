"""CLAMPPretrainer: tri-modal SigLIP over the three encoders, ablations, retrieval outputs."""

from __future__ import annotations

import pytest
import torch

from toolkit.registry import MODELS
from toolkit.utils.errors import ConfigError


def _cfg(**over):
    cfg = dict(
        type="CLAMPPretrainer",
        image_encoder=dict(type="StringViT", arch="tiny"),
        action_encoder=dict(type="ActionHistoryEncoder", arch="tiny", action_dim=4, history=5),
        text_encoder=dict(type="ClampTextEncoder", arch="tiny"),
        embed_dim=32,
    )
    cfg.update(over)
    return cfg


def _batch(b: int = 8) -> dict:
    g = torch.Generator().manual_seed(0)
    views = torch.rand(b, 4, 4, 64, 64, generator=g)
    views[:, :, 1:] = views[:, :, 1:] - 0.5  # XYZ around the origin, depth > 0
    return {
        "views": views,
        "actions": torch.randn(b, 5, 4, generator=g),
        "actions_mask": torch.ones(b, 5, dtype=torch.bool),
        "text": [f"object {i} at ({i / 10:.2f}, 0.50, 0.20)." for i in range(b)],
    }


def test_loss_is_the_mean_of_three_siglip_pairs_and_decreases():
    torch.manual_seed(0)
    model = MODELS.build(_cfg())
    batch = _batch()
    out = model.loss(batch)
    pairs = [out[f"clamp_{p}"] for p in ("image_text", "image_action", "text_action")]
    assert torch.allclose(out["loss_clamp"], torch.stack(pairs).mean())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = float(out["loss_clamp"])
    for _ in range(30):
        loss = model.loss(batch)["loss_clamp"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(model.loss(batch)["loss_clamp"]) < 0.7 * first


def test_predict_gives_normalized_per_sample_embeddings():
    model = MODELS.build(_cfg()).eval()
    out = model.predict(_batch(3))
    assert len(out) == 3 and set(out[0]) == {"image", "text", "action", "text_str"}
    for m in ("image", "text", "action"):
        assert out[0][m].shape == (32,)
        assert abs(float(out[0][m].norm()) - 1.0) < 1e-5


def test_ablations_by_config():
    no_text = MODELS.build(_cfg(text_encoder=None))
    out = no_text.loss(_batch())
    assert "clamp_image_action" in out and "clamp_image_text" not in out
    with pytest.raises(ConfigError, match="use text"):
        MODELS.build(_cfg(text_encoder=None, loss=dict(type="TriModalSigLIPLoss",
                                                       pairs=("image_text",))))  # fmt: skip
    no_string = MODELS.build(_cfg(image_encoder=dict(type="StringViT", arch="tiny",
                                                     string_mode="none")))  # fmt: skip
    assert torch.isfinite(no_string.loss(_batch())["loss_clamp"])
    dp3 = MODELS.build(_cfg(image_encoder=dict(type="DP3Encoder"), image_input="points"))
    batch = _batch()
    batch["points"] = torch.rand(8, 256, 3)
    batch["points_mask"] = torch.ones(8, 256, dtype=torch.bool)
    assert torch.isfinite(dp3.loss(batch)["loss_clamp"])
