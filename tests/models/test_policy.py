"""Policy learning pieces: normalizer, BN-MLP head, PointCloudPolicy, BC dataset from episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit.data.episodes import EpisodeWriter
from toolkit.data.policy_dataset import PointCloudBCDataset
from toolkit.models.heads.mlp import BNMLPHead
from toolkit.models.policies import Normalizer, PointCloudPolicy
from toolkit.utils.errors import ConfigError

ENCODER = dict(type="PointNet", mlp_dims=(32, 64))


def _write_episodes(
    root, task="reach", n_eps=3, T=20, N=64, split="train", suite="metaworld", seed0=0
):
    rng = np.random.default_rng(seed0)
    K = np.array([[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]])
    for k in range(n_eps):
        path = root / task / split / f"ep_{seed0 + k}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        goal = rng.uniform(-0.2, 0.2, size=3).astype(np.float32)
        with EpisodeWriter(
            str(path), suite=suite, task=task, seed=seed0 + k, config={}, cameras={"cam": (8, 8)}
        ) as w:
            for t in range(T):
                cloud = rng.normal(size=(N, 3)).astype(np.float32) * 0.05 + goal  # the "object"
                ee = rng.uniform(-0.3, 0.3, size=3).astype(np.float32)
                action = np.concatenate([np.clip((goal - ee) * 5, -1, 1), [1.0]]).astype(np.float32)
                w.add_step(
                    depth={"cam": np.ones((8, 8), np.float32)},
                    intrinsics={"cam": K},
                    extrinsics={"cam": np.eye(4)},
                    qpos=np.r_[ee, 0.0],
                    action=action,
                    proprio=np.r_[ee, 0.0].astype(np.float32),
                    success=t == T - 1,
                    extras={"point_cloud": cloud},
                )
            w.finish(success=True)


def test_normalizer_modes_roundtrip_and_constant_dims():
    x = torch.randn(100, 3) * torch.tensor([2.0, 0.5, 0.0]) + torch.tensor([1.0, -1.0, 3.0])
    for mode in ("meanstd", "minmax"):
        n = Normalizer(3, mode)
        n.fit(x)
        y = n.normalize(x)
        torch.testing.assert_close(n.unnormalize(y), x)
        assert torch.all(y[:, 2] == 0)  # constant channel: offset removed, scale 1, no blow-up
        if mode == "meanstd":
            torch.testing.assert_close(y[:, :2].mean(0), torch.zeros(2), atol=1e-5, rtol=0)
            torch.testing.assert_close(
                y[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-5, rtol=0
            )
        else:
            torch.testing.assert_close(y[:, :2].min(0).values, -torch.ones(2))
            torch.testing.assert_close(y[:, :2].max(0).values, torch.ones(2))
    with pytest.raises(ValueError, match="one of"):
        Normalizer(3, "bogus")


def test_bn_mlp_head_small_initial_outputs():
    head = BNMLPHead(in_dim=10, out_dim=4)
    out = head(torch.randn(32, 10))
    assert out.shape == (32, 4) and out.abs().max() < 0.2  # last layer scaled by 1e-2


def test_dataset_reads_splits_and_validates(tmp_path):
    _write_episodes(tmp_path, "reach", n_eps=3, split="train")
    _write_episodes(tmp_path, "reach", n_eps=1, split="val", seed0=100)
    ds = PointCloudBCDataset(str(tmp_path), tasks=["reach"], split="train", num_points=64)
    assert len(ds) == 60 and ds[0]["points"].shape == (64, 3) and ds[0]["action"].shape == (4,)
    assert len(PointCloudBCDataset(str(tmp_path), split="val")) == 20
    with pytest.raises(ConfigError, match="num_points=1024"):
        PointCloudBCDataset(str(tmp_path), split="train", num_points=1024)
    with pytest.raises(ConfigError, match=r"task\(s\) \['hammer'\].*found tasks \['reach'\]"):
        PointCloudBCDataset(str(tmp_path), tasks=["hammer"])
    _write_episodes(tmp_path, "reach2", n_eps=1, suite="aloha")
    with pytest.raises(ConfigError, match="mix suites"):
        PointCloudBCDataset(str(tmp_path), split="train")
    with pytest.raises(ConfigError, match="not found"):
        PointCloudBCDataset(str(tmp_path / "nope"))


def test_policy_learns_from_episode_files(tmp_path):
    torch.manual_seed(0)
    _write_episodes(tmp_path, "reach", n_eps=4, T=32)
    ds = PointCloudBCDataset(str(tmp_path), split="train", num_points=64)
    policy = PointCloudPolicy(encoder=ENCODER, head=dict(type="BNMLPHead", hidden_dims=(64, 64)))
    data = ds.normalization_data()
    policy.fit_normalization(data["proprio"], data["action"])
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        for batch in loader:
            loss = policy.loss(batch)["loss_bc"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-8:]) < 0.3 * np.mean(losses[:8])
    # rollout contract: numpy in, unnormalized numpy action out, in the data's range
    obs = {"points": ds.points[0].numpy(), "proprio": ds.proprio[0].numpy()}
    policy.reset()
    act = policy.select_action(obs)
    assert act.shape == (4,) and np.all(np.abs(act) <= 1.5)
    assert np.abs(act - ds.actions[0].numpy()).mean() < 0.5


def test_frozen_encoder_and_local_weights(tmp_path):
    src = PointCloudPolicy(encoder=ENCODER, head=dict(type="BNMLPHead"))
    torch.save(
        {"state_dict": {f"backbone.{k}": v for k, v in src.encoder.state_dict().items()}},
        tmp_path / "pre.pth",
    )
    pol = PointCloudPolicy(
        encoder=ENCODER,
        head=dict(type="BNMLPHead"),
        freeze_encoder=True,
        encoder_weights=str(tmp_path / "pre.pth"),
        encoder_weights_prefix="backbone.",
    )
    for k, v in src.encoder.state_dict().items():
        torch.testing.assert_close(pol.encoder.state_dict()[k], v)
    assert not any(p.requires_grad for p in pol.encoder.parameters())
    pol.train()
    assert not pol.encoder.training and pol.head.training
    from toolkit.utils.errors import CheckpointError

    with pytest.raises(CheckpointError, match="pre.pth.*prefix 'encoder.'"):
        PointCloudPolicy(
            encoder=ENCODER,
            head=dict(type="BNMLPHead"),
            encoder_weights=str(tmp_path / "pre.pth"),
            encoder_weights_prefix="encoder.",
        )
