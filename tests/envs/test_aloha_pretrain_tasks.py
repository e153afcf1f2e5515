"""ALOHA pretraining tasks (toolkit/envs/aloha/tasks/pretrain/): the group is disjoint from
CLAMP's fine-tuning tasks, every success check passes a success state and fails near misses
(object poses and joints set directly, grasps made by IK + closing the fingers until both
touch), the scripted experts succeed through the evaluation harness, and
datasets/aloha_pretrain.py writes a pretraining split."""

from __future__ import annotations

import json
import math
import runpy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gym_aloha")

from toolkit.engine.rollout import evaluate  # noqa: E402
from toolkit.envs import get_suite  # noqa: E402
from toolkit.envs.aloha import seeds as S  # noqa: E402
from toolkit.envs.aloha.ik import Motion, top_down_frame  # noqa: E402
from toolkit.envs.aloha.objects import BUILDERS  # noqa: E402
from toolkit.envs.aloha.scene import SceneBuilder  # noqa: E402
from toolkit.envs.aloha.tasks import CLAMP_FINETUNE, TASKS, task_groups  # noqa: E402
from toolkit.envs.aloha.tasks.pretrain._objects import PRETRAIN_BUILDERS  # noqa: E402

PRETRAIN = task_groups()["pretrain"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite():
    return get_suite("aloha")


def _state_env(suite, task):
    return suite.make_env(task, rgb=False, depth=False, points=False)


# --------------------------------------------------------------------------------------------
# The family
# --------------------------------------------------------------------------------------------


def test_pretrain_group_is_large_and_disjoint_from_the_finetuning_tasks():
    assert len(PRETRAIN) >= 8
    assert not set(PRETRAIN) & set(CLAMP_FINETUNE)
    assert set(task_groups()["finetune"]) <= set(CLAMP_FINETUNE)
    for name in PRETRAIN:
        cls = TASKS[name]
        assert cls.family == "pretrain" and cls.name == name
        assert len(cls.stages) >= 3 and cls.stages[0] == "start"
        doc = (__import__(cls.__module__, fromlist=["x"]).__doc__ or "").lower()
        assert "success" in doc and "expert" in doc, f"{name}: document success and expert"
    descriptions = [TASKS[n].description for n in PRETRAIN]
    finetune = {TASKS[n].description for n in CLAMP_FINETUNE if n in TASKS}
    assert len(set(descriptions)) == len(descriptions) and not set(descriptions) & finetune


def test_pretrain_objects_are_registered_and_build():
    assert set(PRETRAIN_BUILDERS) <= set(BUILDERS)
    sb = SceneBuilder()
    for kind in PRETRAIN_BUILDERS:
        sb.add(kind)
    model = sb.compile()
    for name, info in sb.objects.items():
        body = model.body(name)
        if info.kind == "free":
            assert 0.005 < float(body.mass[0]) < 1.0, name
        else:
            assert model.body_mocapid[body.id] >= 0, name
    # The target marker is visual only: nothing can collide with it.
    for g in sb.objects["target"].geoms:
        assert model.geom(g).contype[0] == 0 and model.geom(g).conaffinity[0] == 0


@pytest.mark.parametrize("task", PRETRAIN)
def test_layouts_are_seeded_and_valid(suite, task):
    env = _state_env(suite, task)
    try:
        a = env.reset(seed=S.PRETRAIN_SEEDS.start)
        assert not env.sim.overlapping_objects()
        assert env.task_spec.progress(env.sim) == 0 and not env.task_spec.success(env.sim)
        b = env.reset(seed=S.PRETRAIN_SEEDS.start + 1)
        c = env.reset(seed=S.PRETRAIN_SEEDS.start)
    finally:
        env.close()
    poses = ("object_poses", "object_joints")
    assert all(np.array_equal(a[k][n], c[k][n]) for k in poses for n in a[k])
    assert any(not np.allclose(a[k][n], b[k][n]) for k in poses for n in a[k])


# --------------------------------------------------------------------------------------------
# Success checks, both ways
# --------------------------------------------------------------------------------------------


def _grasp(sim, arm: str, name: str, pos, finger_yaw: float, tcp_dz: float = 0.0) -> None:
    """Put ``name``'s origin at ``pos`` (yaw ``finger_yaw - 90 deg``) with ``arm``'s TCP
    ``tcp_dz`` above it, gripper pointing down, and close the fingers until both touch it."""
    pos = np.asarray(pos, dtype=np.float64)
    q = Motion(sim.qpos14()).goal(arm, pos + [0, 0, tcp_dz], top_down_frame(finger_yaw))
    for j, v in zip(
        ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"),
        q,
        strict=True,
    ):
        sim.set_joint(f"vx300s_{arm}/{j}", float(v))
    sim.place(name, pos[:2], finger_yaw - math.pi / 2, z=float(pos[2]))
    for f in np.linspace(0.057, 0.021, 145):
        sim.set_joint(f"vx300s_{arm}/left_finger", float(f))
        sim.set_joint(f"vx300s_{arm}/right_finger", -float(f))
        sim.forward()
        if sim.grasping(arm, name):
            return
    raise AssertionError(f"the {arm} fingers never both touched {name}")


def _open(sim, arm: str) -> None:
    sim.set_joint(f"vx300s_{arm}/left_finger", 0.057)
    sim.set_joint(f"vx300s_{arm}/right_finger", -0.057)
    sim.forward()


def _check(task, sim, expect: bool, what: str) -> None:
    assert task.success(sim) is expect, what
    if expect:
        assert task.progress(sim) == len(task.stages) - 1, what
    else:
        assert task.progress(sim) < len(task.stages) - 1, what


def _lift_cube(task, sim):
    _grasp(sim, "left", "cube", (-0.05, 0.5, 0.13), 0.0, 0.012)
    _check(task, sim, True, "grasped 11 cm up")
    _grasp(sim, "left", "cube", (-0.05, 0.5, 0.08), 0.0, 0.012)
    _check(task, sim, False, "grasped only 6 cm up")
    _grasp(sim, "left", "cube", (-0.05, 0.5, 0.13), 0.0, 0.012)
    _open(sim, "left")
    _check(task, sim, False, "up, but not held")


def _push_cube(task, sim):
    t = sim.body_pose("target")[:2]
    sim.place("cube", t + [0.015, -0.01], 0.3)
    sim.settle(5)
    _check(task, sim, True, "on the square")
    sim.place("cube", t + [0.04, 0.0], 0.3)
    sim.settle(5)
    _check(task, sim, False, "4 cm off the centre")
    sim.place("cube", t, 0.3, z=0.06)
    sim.forward()
    _check(task, sim, False, "above the square")


def _stack_cube(task, sim):
    b = sim.body_pose("block")[:3]
    top = b[2] + 0.025 + 0.02
    sim.place("cube", b[:2] + [0.005, 0.0], 0.2, z=top + 0.001)
    sim.settle(10)
    _check(task, sim, True, "on the block")
    sim.place("cube", b[:2] + [0.08, 0.0], 0.2)
    sim.settle(5)
    _check(task, sim, False, "beside the block")
    sim.place("cube", b[:2] + [0.022, 0.0], 0.2, z=top + 0.001)
    sim.forward()
    _check(task, sim, False, "2.2 cm off the block's axis")
    sim.place("cube", b[:2], 0.2, z=top + 0.03)
    sim.forward()
    _check(task, sim, False, "3 cm above the block")


def _in_bowl(item: str, z_rest: float) -> Callable:
    def check(task, sim):
        b = sim.body_pose("fruit_bowl")[:3]
        sim.place(item, b[:2], 0.4, z=0.006 + z_rest + 0.002)
        sim.settle(10)
        _check(task, sim, True, f"{item} in the bowl")
        sim.place(item, b[:2] + [0.0, -0.17], 0.4)
        sim.settle(5)
        _check(task, sim, False, f"{item} in front of the bowl")
        sim.place(item, b[:2], 0.4, z=0.12)
        sim.forward()
        _check(task, sim, False, f"{item} above the bowl")

    return check


def _in_box(item: str, box: str, yaw: float, z_rest: float) -> Callable:
    def check(task, sim):
        b = sim.body_pose(box)[:3]
        box_yaw = math.atan2(sim.body_rot(box)[1, 0], sim.body_rot(box)[0, 0])
        sim.place(item, b[:2], box_yaw + yaw, z=0.005 + z_rest + 0.002)
        sim.settle(10)
        _check(task, sim, True, f"{item} in the {box}")
        sim.place(item, b[:2] + [0.0, -0.16], 0.0)
        sim.settle(5)
        _check(task, sim, False, f"{item} in front of the {box}")
        sim.place(item, b[:2], box_yaw + yaw, z=0.1)
        sim.forward()
        _check(task, sim, False, f"{item} above the {box}")

    return check


def _top_drawer_open(task, sim):
    sim.set_joint("drawer/top_slide", 0.09)
    sim.forward()
    _check(task, sim, True, "top drawer out 9 cm")
    sim.set_joint("drawer/top_slide", 0.068)
    sim.forward()
    _check(task, sim, False, "top drawer out 6.8 cm (57%)")
    sim.set_joint("drawer/top_slide", 0.0)
    sim.set_joint("drawer/bottom_slide", 0.12)
    sim.forward()
    _check(task, sim, False, "the wrong drawer")


def _drawer_close(task, sim):
    _check(task, sim, False, "one drawer open at reset")
    sim.set_joint("drawer/top_slide", 0.005)
    sim.set_joint("drawer/bottom_slide", 0.0)
    sim.forward()
    _check(task, sim, True, "both in")
    sim.set_joint("drawer/bottom_slide", 0.015)
    sim.forward()
    _check(task, sim, False, "bottom still out 1.5 cm")


def _handover_bar(task, sim):
    giver, receiver = task.giver, task.receiver
    sgn = 1.0 if receiver == "right" else -1.0
    _grasp(sim, receiver, "bar", (sgn * 0.05, 0.5, 0.15), math.pi / 2, 0.012)
    _check(task, sim, True, "the receiver holds it up")
    _grasp(sim, giver, "bar", (-sgn * 0.05, 0.5, 0.15), math.pi / 2, 0.012)
    _check(task, sim, False, "still held by the giver")
    _grasp(sim, receiver, "bar", (sgn * 0.05, 0.5, 0.05), math.pi / 2, 0.012)
    _check(task, sim, False, "the receiver holds it 3.5 cm up")


def _peg_insertion(task, sim):
    c = np.array([0.0, 0.5, 0.15])
    sim.place("socket", c[:2], 0.0, z=c[2])
    sim.place("peg", c[:2] + [0.04 + 0.065 - 0.03, 0.0], 0.0, z=c[2])
    sim.forward()
    _check(task, sim, True, "3 cm in, in the air")
    sim.place("peg", c[:2] + [0.04 + 0.065 + 0.01, 0.0], 0.0, z=c[2])
    sim.forward()
    _check(task, sim, False, "1 cm short of the entrance")
    sim.place("peg", c[:2] + [0.04 + 0.065 - 0.03, 0.035], 0.0, z=c[2])
    sim.forward()
    _check(task, sim, False, "beside the socket")
    sim.place("socket", c[:2], 0.0)
    sim.place("peg", c[:2] + [0.04 + 0.065 - 0.03, 0.0], 0.0, z=0.022)
    sim.forward()
    _check(task, sim, False, "inserted, but on the table")


SUCCESS_CASES: dict[str, Callable] = {
    "lift_cube": _lift_cube,
    "push_cube": _push_cube,
    "stack_cube": _stack_cube,
    "banana_in_bowl": _in_bowl("banana", 0.015),
    "mug_in_bowl": _in_bowl("mug", 0.035),
    "scissors_in_bin": _in_box("scissors", "bin", 0.0, 0.004),
    "thumb_drive_in_container": _in_box("thumb_drive", "container", math.pi / 4, 0.005),
    "top_drawer_open": _top_drawer_open,
    "drawer_close": _drawer_close,
    "handover_bar": _handover_bar,
    "peg_insertion": _peg_insertion,
}


def test_every_pretraining_task_has_a_success_test():
    assert set(SUCCESS_CASES) == set(PRETRAIN)


@pytest.mark.parametrize("task", sorted(SUCCESS_CASES))
def test_success_both_ways(suite, task):
    env = _state_env(suite, task)
    try:
        env.reset(seed=S.PRETRAIN_SEEDS.start + 3)
        SUCCESS_CASES[task](env.task_spec, env.sim)
    finally:
        env.close()


# --------------------------------------------------------------------------------------------
# Experts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", PRETRAIN)
def test_expert_succeeds_through_the_harness(suite, task, tmp_path):
    res = evaluate(
        suite,
        task,
        suite.expert(task),
        num_episodes=1,
        out_dir=str(tmp_path),
        progress=False,
        rgb=False,
        depth=False,
        points=False,
    )
    assert res["success_rate"] == 1.0, res["episodes"]
    assert all((tmp_path / f"episode_{s}.json").exists() for s in res["seeds"])


def test_expert_stages_are_monotone_and_end_at_success(suite):
    env = _state_env(suite, "handover_bar")
    expert = suite.expert("handover_bar")
    try:
        obs = env.reset(seed=S.PRETRAIN_SEEDS.start)
        stages = []
        for _ in range(300):
            obs, _r, _done, info = env.step(expert.select_action(obs))
            stages.append(expert.stage)
    finally:
        env.close()
    assert info["success"] and stages[0] == 0 and stages[-1] == 4
    assert stages == sorted(stages) and set(stages) == {0, 1, 2, 3, 4}


@pytest.mark.slow
@pytest.mark.parametrize("task", PRETRAIN)
def test_expert_success_rate_over_20_seeds(suite, task):
    res = evaluate(
        suite,
        task,
        suite.expert(task),
        num_episodes=20,
        progress=False,
        rgb=False,
        depth=False,
        points=False,
    )
    assert res["success_rate"] >= 0.8, [e for e in res["episodes"] if not e["success"]]


# --------------------------------------------------------------------------------------------
# The dataset recipe
# --------------------------------------------------------------------------------------------


def test_pretrain_recipe_writes_one_pretrain_split(tmp_path):
    """`toolkit gen datasets/aloha_pretrain.py` through its main(): one tiny episode."""
    import h5py

    from toolkit.data.episodes import check_episode

    recipe = runpy.run_path(str(ROOT / "datasets" / "aloha_pretrain.py"))
    parser = recipe["build_parser"]()
    defaults = parser.parse_args(["--out", "x"])
    assert defaults.tasks == ["pretrain"] and defaults.max_steps is None
    out = tmp_path / "gen"
    args = ["--out", str(out), "--tasks", "lift_cube", "--episodes", "1"]
    args += ["--cameras", "front_left:32", "right_wrist:32", "--num-points", "128"]
    assert recipe["main"]([*args, "--max-steps", "120", "--no-progress"]) == 0
    splits = json.loads((out / "splits.json").read_text())
    assert list(splits) == ["lift_cube"] and list(splits["lift_cube"]) == ["pretrain"]
    (seed,) = splits["lift_cube"]["pretrain"]
    assert seed in S.PRETRAIN_SEEDS and S.split_of(seed) == "pretrain"
    path = out / "lift_cube" / "pretrain" / f"ep_{seed}.hdf5"
    assert not check_episode(str(path))
    with h5py.File(path, "r") as f:
        assert f["action"].shape == (120, 14) and f["extras/point_cloud"].shape == (120, 128, 3)
        assert f["observations/images/right_wrist"].shape == (120, 32, 32, 3)
        assert f.attrs["split"] == "pretrain"
        assert bool(f["success"][-1])
        states = [json.loads(s) for s in f["state"][:]]
    stages = [s["stage"] for s in states]
    assert stages[0] == 0 and stages[-1] == 3 and stages == sorted(stages)
    assert states[0]["description"] == TASKS["lift_cube"].description
    assert states[-1]["objects"]["cube"][2] > states[0]["objects"]["cube"][2]
