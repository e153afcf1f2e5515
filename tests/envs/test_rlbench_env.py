"""The RLBench suite / env adapter: missing-dependency path, registry, and the evaluation-harness
contract over a stand-in RLBench backend (CoppeliaSim cannot run here); the pose loss."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import rlbench_fixtures as fx
import torch

from toolkit.engine.rollout import evaluate
from toolkit.envs import MissingSuiteDependencyError, UnknownTaskError, get_suite
from toolkit.envs.rlbench import RLBenchSuite
from toolkit.envs.rlbench.backend import RLBenchBackend
from toolkit.envs.rlbench.env import RLBenchEnv
from toolkit.models.objectives.pose_loss import PoseGripperLoss
from toolkit.registry import OBJECTIVES, SUITES
from toolkit.utils.errors import ToolkitError


# ----------------------------------------------------------------------------- suite
def test_missing_rlbench_stack_says_what_to_install(monkeypatch):
    for mod in ("pyrep", "pyrep.errors", "rlbench"):
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as if not installed
    suite = get_suite("rlbench")
    with pytest.raises(MissingSuiteDependencyError) as err:
        suite.make_env("close-box")
    msg = str(err.value)
    for needle in (
        "CoppeliaSim 4.1.0",
        "PyRep",
        "RLBench",
        "COPPELIASIM_ROOT",
        "xvfb-run",
        "QT_QPA_PLATFORM",
        "pip install -e .[rlbench]",
        "toolkit convert rlbench",
    ):
        assert needle in msg, needle
    assert isinstance(err.value, ImportError)  # callers catching ImportError still work


def test_suite_registry_tasks_and_expert():
    suite = SUITES.build(dict(type="RLBenchSuite"))
    assert isinstance(suite, RLBenchSuite) and suite.action_dim == 8 and suite.max_steps == 25
    assert suite.tasks[:4] == ["close_box", "close_laptop_lid", "water_plants", "toilet_seat_down"]
    assert len(suite.tasks) == 13 and suite.check_task("toilet-seat-down") == "toilet_seat_down"
    assert suite.description("water_plants") == "water plant"
    assert [c.name for c in suite.default_cameras] == ["front"]
    with pytest.raises(UnknownTaskError, match="close_box"):
        suite.check_task("close_boxx")
    with pytest.raises(ToolkitError, match="toolkit convert rlbench"):
        suite.expert("close_box")


# ----------------------------------------------------------------------------- stand-in backend
class _InvalidAction(Exception):
    pass


class _FakeTaskEnv:
    """RLBench 1.2 TaskEnvironment behaviour the adapter relies on: variations, reset ->
    (descriptions, obs), step(8-d action) -> (obs, reward, terminate); a box to reach and grasp."""

    def __init__(self, obs_config, size):
        self.cfg, self.size, self.variation = obs_config, size, 0
        self.log = []

    def variation_count(self):
        return 3

    def set_variation(self, v):
        self.variation = v

    def reset(self):  # RLBench samples placements from numpy's global RNG
        x, y = np.random.uniform(-0.1, 0.3), np.random.uniform(-0.2, 0.2)  # noqa: NPY002
        self.box = np.array([x, y, fx.TABLE_Z + 0.08])
        self.pose = np.r_[0.3, 0.0, 1.3, 1.0, 0.0, 0.0, 0.0]
        self.open = 1.0
        return [f"close box {self.variation}", "other"], self._obs()

    def step(self, action):
        action = np.asarray(action)
        self.log.append(action)
        assert (
            action.shape == (8,) and abs(np.linalg.norm(action[3:7]) - 1) < 1e-6
        )  # RLBench asserts
        assert action[7] in (0.0, 1.0)
        if np.abs(action[:3]).max() > 2.0:
            raise _InvalidAction("A path could not be found")
        self.pose, self.open = action[:7].copy(), float(action[7])
        ok = np.linalg.norm(self.pose[:3] - self.box) < 0.05 and self.open == 0.0
        return self._obs(), float(ok), bool(ok)

    def _obs(self):
        o = SimpleNamespace(
            gripper_pose=self.pose.copy(),
            gripper_open=self.open,
            joint_positions=np.zeros(7),
            task_low_dim_state=self.box.copy(),
            misc={},
        )
        for cam in ("front", "overhead"):
            cc = getattr(self.cfg, f"{cam}_camera")
            if not cc.rgb:
                continue
            assert cc.depth and cc.depth_in_meters and not cc.point_cloud
            w, h = cc.image_size
            K, E = fx.pyrep_camera(cam, (h, w))
            d, hnd = fx.raycast_depth(fx.Scene(self.box, gripper=self.pose[:3]), K, E, (h, w))
            setattr(o, f"{cam}_rgb", np.full((h, w, 3), 7, np.uint8))
            setattr(o, f"{cam}_depth", d.astype(np.float32))
            o.misc.update(
                {
                    f"{cam}_camera_intrinsics": K,
                    f"{cam}_camera_extrinsics": E,
                    f"{cam}_camera_near": fx.NEAR,
                    f"{cam}_camera_far": fx.FAR,
                }
            )
        return o


class _FakeEnvironment:
    instances: list = []

    def __init__(self, action_mode, obs_config, headless, arm_max_velocity, arm_max_acceleration):
        self.action_mode, self.obs_config, self.headless = action_mode, obs_config, headless
        self.launched = self.shut = False
        _FakeEnvironment.instances.append(self)

    def launch(self):
        self.launched = True

    def get_task(self, task_class):
        assert task_class == "task:close_box"
        self.task = _FakeTaskEnv(self.obs_config, None)
        return self.task

    def shutdown(self):
        self.shut = True


def _obs_config():
    cams = {
        f"{c}_camera": SimpleNamespace(
            rgb=False,
            depth=False,
            point_cloud=True,
            mask=True,
            depth_in_meters=False,
            image_size=(128, 128),
        )
        for c in fx.CAMERA_NAMES
    }
    cfg = SimpleNamespace(**cams)
    cfg.set_all_high_dim = lambda v: None
    cfg.set_all_low_dim = lambda v: None
    return cfg


FAKE = RLBenchBackend(
    Environment=_FakeEnvironment,
    ObservationConfig=_obs_config,
    MoveArmThenGripper=lambda arm_action_mode, gripper_action_mode: (
        "move_then_grip",
        arm_action_mode,
        gripper_action_mode,
    ),
    EndEffectorPoseViaPlanning=lambda absolute_mode, collision_checking: (
        "ee_planning",
        absolute_mode,
        collision_checking,
    ),
    Discrete=lambda: "discrete",
    name_to_task_class=lambda name: f"task:{name}",
    action_errors=(_InvalidAction,),
)


class _Oracle:
    """Reads the box position from the low-dim state: above it, then down and close."""

    def reset(self):
        self.k = 0

    def select_action(self, obs):
        box = obs["state"][:3]
        self.k += 1
        quat = -np.array([0.0, 0.6, 0.0, 0.8]) * 2.0  # not unit, not w >= 0: the env fixes it
        if self.k == 1:
            return np.r_[box + [0, 0, 0.2], quat, 0.9]
        return np.r_[box, quat, 0.1]


def test_env_contract_and_closed_loop_evaluation_with_a_standin_backend(tmp_path):
    suite = RLBenchSuite(backend=FAKE, cameras={"front": (48, 64)}, num_points=64)
    env = suite.make_env("close-box")
    fake = _FakeEnvironment.instances[-1]
    assert fake.launched and fake.action_mode == (
        "move_then_grip",
        ("ee_planning", True, False),
        "discrete",
    )
    front = fake.obs_config.front_camera
    assert front.rgb and front.depth and front.depth_in_meters and front.image_size == (64, 48)
    assert not fake.obs_config.overhead_camera.rgb
    obs = env.reset(seed=4)
    again = env.reset(seed=4)
    np.testing.assert_array_equal(obs["state"], again["state"])  # seeded placement
    assert fake.task.variation == 4 % 3 and env.description == "close box 1"
    assert obs["points"].shape == (64, 3) and obs["points_mask"].dtype == bool
    assert obs["proprio"].shape == (8,) and obs["rgb"]["front"].shape == (48, 64, 3)
    assert obs["depth"]["front"].dtype == np.float32
    # the live cloud is built like the converted data: points lie on the box / gripper surfaces
    pts = obs["points"][obs["points_mask"]]
    assert len(pts) > 32 and np.all(pts[:, 2] >= 0.76)
    res = evaluate(
        suite,
        "close_box",
        _Oracle(),
        num_episodes=3,
        env=env,
        progress=False,
        out_dir=str(tmp_path),
    )
    assert res["success_rate"] == 1.0 and res["mean_steps"] == 2.0
    sent = fake.task.log[-1]
    np.testing.assert_allclose(sent[3:7], [0.0, 0.6, 0.0, 0.8])  # normalized, w >= 0
    assert sent[7] == 0.0  # 0.1 -> close
    assert (tmp_path / "summary.json").exists()


def test_unreachable_waypoint_ends_the_rollout_as_a_failure():
    env = RLBenchEnv(
        "close_box", cameras=["front"], num_points=32, backend=FAKE, rgb=False, depth=False
    )
    env.reset(seed=0)
    obs, reward, done, info = env.step(np.r_[5.0, 0, 0, 0, 0, 0, 1, 1])
    assert done and not info["success"] and "A path could not be found" in info["error"]
    assert obs["points"].shape == (32, 3) and "rgb" not in obs
    with pytest.raises(ToolkitError, match=r"\(8,\)"):
        env.step(np.zeros(7))
    with pytest.raises(ToolkitError, match="non-finite"):
        env.step(np.r_[np.nan, np.zeros(7)])
    with pytest.raises(ToolkitError, match="no camera"):
        RLBenchEnv("close_box", cameras=["top"], backend=FAKE)
    env.close()
    assert _FakeEnvironment.instances[-1].shut


# ----------------------------------------------------------------------------- pose loss
def test_pose_gripper_loss_matches_the_protocol_formula():
    torch.manual_seed(0)
    pred = torch.randn(6, 8, requires_grad=True)
    target = torch.randn(6, 8)
    out = OBJECTIVES.build(dict(type="PoseGripperLoss"))(pred, target)
    p, t = pred.detach().numpy(), target.numpy()
    pos = ((p[:, :3] - t[:, :3]) ** 2).mean()
    cos = (
        (p[:, 3:7] * t[:, 3:7]).sum(1)
        / np.linalg.norm(p[:, 3:7], axis=1)
        / np.linalg.norm(t[:, 3:7], axis=1)
    )
    grip = ((p[:, 7] - t[:, 7]) ** 2).mean()
    np.testing.assert_allclose(out["loss_pos"].item(), 10 * pos, rtol=1e-5)
    np.testing.assert_allclose(out["loss_rot"].item(), 0.1 * (1 - cos).mean(), rtol=1e-5)
    np.testing.assert_allclose(out["loss_gripper"].item(), 0.01 * grip, rtol=1e-5)
    (out["loss_pos"] + out["loss_rot"] + out["loss_gripper"]).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # q and -q: the same rotation; only the sign-invariant form treats them alike
    q = torch.nn.functional.normalize(torch.randn(4, 4), dim=1)
    a = torch.cat([torch.zeros(4, 3), q, torch.ones(4, 1)], 1)
    b = torch.cat([torch.zeros(4, 3), -q, torch.ones(4, 1)], 1)
    assert PoseGripperLoss()(a, b)["loss_rot"].item() == pytest.approx(0.2)
    assert PoseGripperLoss(sign_invariant=True)(a, b)["loss_rot"].item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert PoseGripperLoss()(a, a)["loss_rot"].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ToolkitError, match=r"\(B, >= 8\)"):
        PoseGripperLoss()(torch.zeros(2, 7), torch.zeros(2, 7))
