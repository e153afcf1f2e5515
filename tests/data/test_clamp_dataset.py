"""ClampPretrainDataset on real MetaWorld episodes: views agree with the cloud, history, text."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import generate_metaworld

from toolkit.data.clamp_dataset import ClampPretrainDataset, state_text
from toolkit.data.episodes import Episode
from toolkit.ops.render import valid_pixels


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw_clamp")
    return generate_metaworld(out, ["reach"], episodes=1, val=0, max_steps=60)


def test_views_history_and_text(data):
    ds = ClampPretrainDataset(str(data), split="train", image_size=32, num_points=4096, history=5)
    s = ds[3]
    # MetaWorld: one gripper -> overhead, front-left, back-right + one wrist view
    assert s["views"].shape == (4, 4, 32, 32)
    valid = valid_pixels(s["views"][None])[0]
    assert bool((valid.flatten(1).any(1)).all())  # every view sees the scene
    # rendered XYZ are points of the cropped world cloud: inside the workspace bounds
    xyz = s["views"][:, 1:].permute(0, 2, 3, 1)[valid]
    lo, hi = torch.as_tensor(ds.bounds[0], dtype=torch.float32)
    assert bool(((xyz >= lo - 1e-4) & (xyz <= hi + 1e-4)).all())
    # history: a_{t-1}, a_{t-2}, a_{t-3}, then zero padding masked out
    with Episode(ds.paths[0]) as ep:
        acts = ep.actions()
        st = ep.state(3)
    assert s["actions_mask"].tolist() == [True, True, True, False, False]
    np.testing.assert_allclose(s["actions"][:3].numpy(), acts[[2, 1, 0]], rtol=0, atol=0)
    assert float(s["actions"][3:].abs().sum()) == 0.0
    assert s["text"] == state_text(st, ds.bounds[0])
    assert s["text"].startswith("reach the goal position.")


def test_ablation_views_and_state_text():
    text = state_text(
        {"description": "open the drawer", "objects": {"drawer": [0.5, 0.0, 1.0]}, "stage": 2},
        np.array([[0.0, -1.0, 0.0], [1.0, 1.0, 2.0]]),
    )
    assert text == "open the drawer. drawer at (0.50, 0.50, 0.50). stage 2."


def test_orthogonal_and_no_wrist(data):
    ortho = ClampPretrainDataset(str(data), split="train", views="orthogonal", image_size=32,
                                 num_points=2048)  # fmt: skip
    assert ortho[0]["views"].shape == (5, 4, 32, 32)
    nowrist = ClampPretrainDataset(str(data), split="train", wrist=False, image_size=32,
                                   num_points=2048)  # fmt: skip
    assert nowrist[0]["views"].shape == (3, 4, 32, 32)
