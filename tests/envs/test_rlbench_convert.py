"""RLBench demos -> toolkit episode files: contents, keyframes, resumability, the CLI, and the
converted episodes driving the MLP policy (pose / gripper loss) and the CLAR pretrainer."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings

import numpy as np
import pytest
import rlbench_fixtures as fx
import torch
from _helpers import run_toolkit

from toolkit.data.episodes import Episode, EpisodeIndex, check_episode
from toolkit.data.rlbench import RLBenchDataError, RLBenchEpisode, find_episodes
from toolkit.data.rlbench.converter import ConvertConfig, convert, plan_steps
from toolkit.data.rlbench.observations import LIFT3D_BOUNDS, canonical_quaternion, quat_multiply
from toolkit.utils.errors import ToolkitError

N = 96


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlbench_src")
    fx.write_dataset(str(root), variations=2, episodes=3, cameras=("front", "overhead"))
    return root


@pytest.fixture(scope="module")
def converted(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("rlbench_out")
    summary = convert(
        ConvertConfig(src=str(source), out=str(out), cameras=["front"], num_points=N, val=1),
        progress=False,
    )
    return out, summary


def test_plan_steps():
    assert plan_steps(6, [2, 5], keyframes_only=True, target="next_keyframe") == [(0, 2), (2, 5)]
    assert plan_steps(4, [2, 3], False, "next_step") == [(0, 1), (1, 2), (2, 3)]
    assert plan_steps(5, [2, 4], False, "next_keyframe") == [(0, 2), (1, 2), (2, 4), (3, 4)]
    assert plan_steps(5, [2], True, "next_keyframe") == [(0, 2), (2, 4)]  # last step added
    assert plan_steps(1, [], False, "next_step") == []


def test_dense_conversion_contents(source, converted):
    out, summary = converted
    assert summary["episodes_written"] == 6 and not summary["errors"]
    assert summary["tasks"] == {"close_box": {"train": 5, "val": 1}}
    splits = json.loads((out / "splits.json").read_text())
    assert splits["close_box"]["val"] == [2001]  # the last in (episode, variation) order
    files = sorted(out.glob("close_box/*/*.hdf5"))
    assert len(files) == 6 and all(check_episode(str(f)) == [] for f in files)
    ref = find_episodes(source)[3]  # episode 1, variation 1
    src = RLBenchEpisode(ref, cameras=["front"])
    with Episode(str(out / "close_box" / "train" / "ep_1001.hdf5")) as ep:
        T = len(src)
        assert len(ep) == T - 1 and ep.attrs["suite"] == "rlbench" and ep.attrs["seed"] == 1001
        assert ep.attrs["description"] == "close box 1" and ep.attrs["variation"] == 1
        assert ep.attrs["keyframes"] == src.keyframes() and ep.attrs["split"] == "train"
        pose = src.gripper_pose
        acts = ep.actions()
        # action t = the gripper pose + open state of step t + 1 (quaternion w >= 0)
        np.testing.assert_allclose(acts[:, :3], pose[1:, :3], atol=1e-6)
        np.testing.assert_allclose(acts[:, 3:7], canonical_quaternion(pose[1:, 3:]), atol=1e-6)
        np.testing.assert_array_equal(acts[:, 7], src.gripper_open[1:])
        np.testing.assert_allclose(ep.proprio()[:, :3], pose[:-1, :3], atol=1e-6)
        np.testing.assert_allclose(ep.qpos(), src.joint_positions[:-1])
        assert ep.successes().tolist() == [False] * (T - 2) + [True]
        # camera data as the reader gives it
        K, E = src.camera("front", 3)
        np.testing.assert_allclose(ep.step(3)["intrinsics"]["front"], K)
        np.testing.assert_allclose(ep.extrinsics("front")[3], E)
        np.testing.assert_array_equal(ep.rgb("front", 3), src.rgb("front", 3))
        np.testing.assert_allclose(ep.depth("front", 3), src.depth("front", 3))
        # the cloud: inside the crop, made of this camera's pixels (projects onto the image)
        pts = ep.extra("point_cloud")[3]
        mask = ep.extra("point_mask")[3]
        assert pts.shape == (N, 3) and mask.sum() > N // 2
        lo, hi = np.asarray(LIFT3D_BOUNDS)
        assert np.all((pts[mask] >= lo - 1e-5) & (pts[mask] <= hi + 1e-5))
        assert np.all(pts[~mask] == 0)  # padding at the origin, masked out
        every = src.point_cloud("front", 3).reshape(-1, 3)
        d = np.linalg.norm(pts[mask][:, None, :] - every[None], axis=-1).min(1)
        assert d.max() < 1e-5
        assert ep.states()[3] == {
            "description": "close box 1",
            "variation": 1,
            "step": 3,
            "target_step": 4,
            "keyframe": False,
        }
        assert ep.extra("low_dim_state").shape == (T - 1, 4)


def test_keyframe_and_delta_conversion(source, tmp_path):
    cfg = ConvertConfig(
        src=str(source), out=str(tmp_path), cameras=["front", "overhead"], point_cameras=["front", "overhead"],
        num_points=64, keyframes=True, action_mode="delta", proprio="lift3d", max_episodes=2,
        rgb=False, masks=True, bounds="peract",
    )  # fmt: skip
    summary = convert(cfg, progress=False)
    assert summary["episodes_written"] == 2 and summary["tasks"] == {"close_box": {"train": 2}}
    src = RLBenchEpisode(find_episodes(source)[0], cameras=["front"])
    kps = src.keyframes()
    with Episode(str(tmp_path / "close_box" / "train" / "ep_0.hdf5")) as ep:
        assert ep.attrs["steps"] == [0] + kps[:-1] and ep.attrs["targets"] == kps
        assert len(ep) == len(kps) and ep.rgb_cameras == []
        pose = src.gripper_pose
        for row, (t, k) in enumerate(zip(ep.attrs["steps"], kps)):
            a = ep.actions()[row]
            np.testing.assert_allclose(a[:3], pose[k, :3] - pose[t, :3], atol=1e-6)
            # q_delta * q_now = q_target (up to sign)
            q = quat_multiply(a[3:7], canonical_quaternion(pose[t, 3:]))
            assert abs(abs(np.dot(q, canonical_quaternion(pose[k, 3:]))) - 1) < 1e-5
            assert a[7] == src.gripper_open[k]
        assert ep.proprio().shape == (len(kps), 15)
        np.testing.assert_array_equal(ep.extra("mask_front")[1], src.mask("front", kps[0]))
        pts = ep.extra("point_cloud")
        lo, hi = np.asarray([[-0.3, -0.5, 0.6], [0.7, 0.5, 1.6]])
        valid = ep.extra("point_mask")
        assert np.all((pts[valid] >= lo - 1e-5) & (pts[valid] <= hi + 1e-5))
    with pytest.raises(ToolkitError, match="keyframe conversion targets the next keyframe"):
        ConvertConfig(src=str(source), out=str(tmp_path), keyframes=True, target="next_step")
    with pytest.raises(ToolkitError, match="point cameras"):
        ConvertConfig(src=str(source), out=str(tmp_path), point_cameras=["wrist"])


def test_conversion_is_resumable_and_atomic(source, tmp_path):
    cfg = ConvertConfig(
        src=str(source), out=str(tmp_path), num_points=32, keyframes=True, max_episodes=3
    )
    first = convert(cfg, progress=False)
    assert first["episodes_written"] == 3
    files = sorted(tmp_path.glob("close_box/train/*.hdf5"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    # a killed run's leftovers: a temporary file, and one episode missing
    os.remove(files[1])
    (tmp_path / "close_box" / "train" / "ep_0.hdf5.deadbeef.partial").write_bytes(b"half")
    again = convert(cfg, progress=False)
    assert again["episodes_written"] == 1 and again["episodes_skipped"] == 2
    assert again["temporary_files_removed"] == 1
    assert not list(tmp_path.rglob("*.partial"))
    assert files[0].stat().st_mtime_ns == stamps[files[0]]  # untouched
    assert check_episode(str(files[1])) == []
    # other options: the episodes are redone, not silently mixed
    third = convert(dataclasses.replace(cfg, num_points=16), progress=False)
    assert third["episodes_written"] == 3
    assert Episode(str(files[0])).extra("point_cloud").shape[1] == 16
    # a changed split assignment moves the episode (no stale copy left in train/)
    convert(dataclasses.replace(cfg, num_points=16, val=1), progress=False)
    idx = EpisodeIndex(str(tmp_path), cache=False)
    assert len(idx.episodes) == 3 and len(list(tmp_path.glob("close_box/val/*.hdf5"))) == 1


def test_bad_source_episode_is_reported_or_raised(source, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(source, src)
    bad = find_episodes(src)[2]
    os.remove(os.path.join(bad.path, "front_depth", "4.png"))
    cfg = ConvertConfig(src=str(src), out=str(tmp_path / "out"), num_points=32, keyframes=True)
    with pytest.raises(RLBenchDataError, match=r"front_depth: expected frames .*missing 4\.png"):
        convert(cfg, progress=False)
    summary = convert(cfg, progress=False, on_error="skip")  # the first run's 2 are kept
    assert summary["episodes_written"] + summary["episodes_skipped"] == 5
    assert list(summary["errors"]) == [bad.path]
    assert "missing 4.png" in summary["errors"][bad.path]


def test_cli_converts_and_reports(source, tmp_path):
    out = tmp_path / "cli"
    proc = run_toolkit(
        "convert", "rlbench", str(source), "--out", str(out), "--keyframes", "--num-points", "32",
        "--max-episodes", "2", "--no-progress", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        "2 episodes written" in proc.stdout and len(list(out.glob("close_box/train/*.hdf5"))) == 2
    )
    proc = run_toolkit(
        "convert", "rlbench", str(source), "--out", str(out), "--tasks", "nope", timeout=120
    )
    assert proc.returncode == 2 and "no episodes of task(s) ['nope']" in proc.stderr


# ----------------------------------------------------------------------------- learning
def test_converted_episodes_train_the_mlp_policy_with_the_pose_loss(converted):
    from toolkit.data.policy_dataset import PointCloudBCDataset
    from toolkit.models.objectives.pose_loss import PoseGripperLoss  # noqa: F401  (registers)
    from toolkit.models.policies import PointCloudPolicy

    out, _ = converted
    torch.manual_seed(0)
    ds = PointCloudBCDataset(
        str(out), tasks=["close_box"], split="train", num_points=N, suite="rlbench"
    )
    assert len(ds) == 5 * 16 and ds[0]["action"].shape == (8,) and ds[0]["proprio"].shape == (8,)
    policy = PointCloudPolicy(
        encoder=dict(type="PointNet", mlp_dims=(32, 64)),
        head=dict(type="BNMLPHead", hidden_dims=(64, 64)),
        proprio_dim=8,
        action_dim=8,
        action_loss=dict(type="PoseGripperLoss"),
    )
    data = ds.normalization_data()
    policy.fit_normalization(data["proprio"], data["action"])
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        for batch in loader:
            out_ = policy.loss(batch)
            assert set(out_) >= {"loss_pos", "loss_rot", "loss_gripper"}
            loss = out_["loss_pos"] + out_["loss_rot"] + out_["loss_gripper"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    act = policy.select_action({"points": ds.points[0].numpy(), "proprio": ds.proprio[0].numpy()})
    assert act.shape == (8,) and np.isfinite(act).all()


def test_converted_episodes_feed_the_clar_pretrainer(source, tmp_path):
    from toolkit.data.pretrain_dataset import PointCloudPretrainDataset
    from toolkit.models.teachers import TINY_VIT_CLIP_CFG
    from toolkit.ops.cameras import project_to_image
    from toolkit.registry import MODELS

    cfg = ConvertConfig(
        src=str(source),
        out=str(tmp_path),
        cameras=["front"],
        num_points=N,
        split="pretrain",
        max_episodes=2,
    )
    convert(cfg, progress=False)
    ds = PointCloudPretrainDataset(
        str(tmp_path),
        split="pretrain",
        camera="front",
        num_points=N,
        workspace_bounds=LIFT3D_BOUNDS,
    )
    s = ds[5]
    assert s["rgb"].shape == (3, 48, 64) and s["text"].startswith("close box")
    # world frame through the extrinsics: the cloud projects into the front image, onto pixels
    # the workspace mask keeps
    valid = s["points_mask"]
    pts = s["points"][valid]
    uv, _, inside = project_to_image(
        pts[None], s["intrinsics"][None], s["extrinsics"][None], (48, 64)
    )
    assert valid.sum() > N // 2 and bool(inside.all())
    px = (uv[0] * torch.tensor([64, 48])).long()
    assert s["pixel_valid"][px[:, 1].clamp(0, 47), px[:, 0].clamp(0, 63)].float().mean() > 0.95
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    teacher = dict(model_name="tiny-test-clip", model_cfg=TINY_VIT_CLIP_CFG, random_init=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MODELS.build(
            dict(
                type="CLARPretrainer",
                backbone=dict(type="PointMAE", arch="tiny", drop_path_rate=0.0),
                image_teacher=dict(type="OpenCLIPImageTeacher", **teacher),
                text_teacher=dict(type="OpenCLIPTextTeacher", **teacher),
                local_loss=dict(type="LocalAlignmentLoss", embed_dim=32, num_heads=4, num_points=2),
            )
        )
    out = model.loss(batch)
    total = sum(v for k, v in out.items() if k.startswith("loss_"))
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
