"""PointCloudPretrainDataset on real MetaWorld episodes (RGB + depth, pretraining seeds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import generate_metaworld

from toolkit.data.pretrain_dataset import PointCloudPretrainDataset, workspace_pixel_mask
from toolkit.ops.cameras import project_to_image
from toolkit.utils.errors import ConfigError

STEPS = 40
BOUNDS = [[-0.6, 0.2, -0.01], [0.6, 1.1, 0.8]]


@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw_pre")
    return generate_metaworld(
        out, ["reach"], episodes=0, val=0, max_steps=STEPS, rgb=True, pretrain=2
    )


def test_samples_are_consistent_frames(pretrain_data):
    ds = PointCloudPretrainDataset(
        str(pretrain_data), num_points=1024, camera="corner", workspace_bounds=BOUNDS
    )
    assert len(ds) == 2 * STEPS and ds.tasks == ["reach"]
    s = ds[3]
    assert s["points"].shape == (1024, 3) and s["points"].dtype == torch.float32
    assert s["rgb"].shape == (3, 224, 224) and s["rgb"].dtype == torch.uint8
    assert s["pixel_valid"].shape == (224, 224) and s["pixel_valid"].dtype == torch.bool
    assert s["intrinsics"].shape == (3, 3) and s["extrinsics"].shape == (4, 4)
    assert s["text"] == "reach the goal position" and s["step"] == 3
    assert s["episode"].endswith(".hdf5") and "pretrain" in s["episode"]
    # the cloud was made from this camera's depth: every point projects into the image, onto a
    # pixel the validity map keeps (independent check of intrinsics / extrinsics / validity)
    uv, depth, inside = project_to_image(
        s["points"][None], s["intrinsics"][None], s["extrinsics"][None], (224, 224)
    )
    assert bool(inside.all())
    px = (uv[0] * 224).long().clamp(0, 223)
    on_valid = s["pixel_valid"][px[:, 1], px[:, 0]]
    assert on_valid.float().mean() > 0.97
    # and some of the image is background (outside the workspace crop)
    assert 0.05 < s["pixel_valid"].float().mean() < 0.99


def test_frame_stride_paraphrase_and_errors(pretrain_data):
    ds = PointCloudPretrainDataset(str(pretrain_data), frame_stride=3, text="paraphrase")
    assert len(ds) == 2 * len(range(0, STEPS, 3))
    assert ds[1]["step"] == 3
    from toolkit.data.language import instructions

    assert ds[0]["text"] in instructions("reach")
    with pytest.raises(ConfigError, match="no 'pretrain' episodes for task"):
        PointCloudPretrainDataset(str(pretrain_data), tasks=["hammer"])
    with pytest.raises(ConfigError, match="num_points=512"):
        PointCloudPretrainDataset(str(pretrain_data), num_points=512)
    with pytest.raises(ConfigError, match="has no RGB"):
        PointCloudPretrainDataset(str(pretrain_data), camera="corner2")
    with pytest.raises(ConfigError, match="not found"):
        PointCloudPretrainDataset(str(pretrain_data / "nope"))


def test_workspace_pixel_mask_against_unproject():
    from toolkit.ops.cameras import intrinsics_from_fovy, look_at, unproject_depth

    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 3.0, size=(12, 16))
    depth[0, 0] = np.nan
    depth[1, 1] = 0.0
    K = intrinsics_from_fovy(60.0, 12, 16).numpy()
    T = look_at([1.0, -1.0, 1.5], [0.0, 0.0, 0.0]).numpy()
    bounds = np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])
    got = workspace_pixel_mask(depth, K, T, bounds)
    pts = unproject_depth(
        torch.as_tensor(np.nan_to_num(depth)), torch.as_tensor(K), torch.as_tensor(T)
    )
    pts = pts.reshape(12, 16, 3).numpy()
    expected = np.all((pts >= bounds[0]) & (pts <= bounds[1]), axis=-1)
    expected &= np.isfinite(depth) & (depth > 0)
    assert got.shape == (12, 16)
    assert (got == expected).all()
    assert not got[0, 0] and not got[1, 1]
    assert workspace_pixel_mask(depth, K, T, None).sum() == 12 * 16 - 2
