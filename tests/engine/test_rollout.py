"""Closed-loop evaluation harness, validated with MetaWorld's scripted experts as policies."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("metaworld")

from _helpers import DampedExpert  # noqa: E402  (importable in spawned workers, unlike tests.*)

from toolkit.engine.rollout import evaluate, evaluate_tasks  # noqa: E402
from toolkit.envs import UnknownTaskError, get_suite  # noqa: E402
from toolkit.envs.metaworld import seeds as S  # noqa: E402
from toolkit.envs.metaworld import tasks as T  # noqa: E402
from toolkit.utils.errors import ToolkitError  # noqa: E402

#: State-only envs: the experts read the simulator state, no rendering needed.
STATE_ONLY = dict(rgb=False, depth=False, points=False)


@pytest.fixture(scope="module")
def suite():
    return get_suite("metaworld")


class ZeroPolicy:
    """Does nothing; counts its calls."""

    def __init__(self):
        self.resets = 0
        self.calls = 0

    def reset(self):
        self.resets += 1

    def select_action(self, obs):
        self.calls += 1
        return np.zeros(4, dtype=np.float32)


@pytest.mark.parametrize("task", ["reach", "hammer"])
def test_expert_through_harness(suite, task, tmp_path):
    res = evaluate(
        suite,
        task,
        suite.expert(task),
        num_episodes=3,
        out_dir=str(tmp_path),
        progress=False,
        **STATE_ONLY,
    )
    assert res["success_rate"] == 1.0 and res["successes"] == 3
    assert res["seeds"] == [S.EVAL_SEED_OFFSET + i for i in range(3)]
    assert res["max_steps"] == 200
    for rec in res["episodes"]:
        assert rec["success"] and rec["steps"] == rec["first_success_step"] <= 200
        on_disk = json.loads((tmp_path / f"episode_{rec['seed']}.json").read_text())
        assert on_disk["success"] and on_disk["task"] == task and on_disk["seed"] == rec["seed"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["success_rate"] == 1.0 and len(summary["episodes"]) == 3


def test_failing_policy_runs_to_the_limit(suite):
    policy = ZeroPolicy()
    res = evaluate(
        suite, "reach", policy, num_episodes=2, max_steps=15, progress=False, **STATE_ONLY
    )
    assert res["success_rate"] == 0.0
    assert [r["steps"] for r in res["episodes"]] == [15, 15]
    assert policy.resets == 2 and policy.calls == 30
    assert all(r["first_success_step"] is None for r in res["episodes"])


def test_stop_on_success_false_runs_full_episodes(suite):
    res = evaluate(
        suite,
        "reach",
        suite.expert("reach"),
        num_episodes=1,
        max_steps=80,
        stop_on_success=False,
        progress=False,
        **STATE_ONLY,
    )
    (rec,) = res["episodes"]
    assert rec["success"] and rec["steps"] == 80 and rec["first_success_step"] < 80


def test_same_seeds_same_outcome(suite):
    kw = dict(num_episodes=2, max_steps=200, progress=False, **STATE_ONLY)
    a = evaluate(suite, "box-close", suite.expert("box-close"), **kw)
    b = evaluate(suite, "box-close", suite.expert("box-close"), **kw)
    strip = lambda res: [{k: v for k, v in r.items() if k != "seconds"} for r in res["episodes"]]  # noqa: E731
    assert strip(a) == strip(b)


def test_workers_give_the_serial_records(suite, tmp_path):
    """Episodes rolled out in 2 spawned processes: the same records, files and seeds as in one
    process, and the episodes really ran elsewhere."""
    import os

    strip = lambda res: [{k: v for k, v in r.items() if k != "seconds"} for r in res["episodes"]]  # noqa: E731
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        policy = DampedExpert(suite.expert("reach"), 0.8, str(tmp_path / f"pids{workers}.txt"))
        runs[workers] = evaluate(
            suite,
            "reach",
            policy,
            num_episodes=6,
            max_steps=200,
            out_dir=str(out),
            progress=False,
            workers=workers,
            **STATE_ONLY,
        )
    serial, pooled = runs[1], runs[2]
    assert strip(serial) == strip(pooled)
    assert [r["seed"] for r in pooled["episodes"]] == serial["seeds"]
    steps = [r["steps"] for r in serial["episodes"]]
    assert len(set(steps)) > 1, steps  # outcomes differ by seed, so a mix-up would show
    for name in ("w1", "w2"):
        assert sorted(p.name for p in (tmp_path / name).glob("episode_*.json")) == [
            f"episode_{s}.json" for s in serial["seeds"]
        ]
    serial_pids = set((tmp_path / "pids1.txt").read_text().split())
    pooled_pids = (tmp_path / "pids2.txt").read_text().split()
    assert serial_pids == {str(os.getpid())}
    assert len(pooled_pids) == 6 and str(os.getpid()) not in pooled_pids
    assert 1 <= len(set(pooled_pids)) <= 2


def test_pool_keeps_its_workers_and_takes_each_new_policy(suite, tmp_path):
    """One RolloutPool over two evaluations with different policies (as RolloutEvalHook does
    across checkpoints): each matches its serial run, and the same processes play both."""
    from toolkit.engine.rollout import RolloutPool

    strip = lambda res: [{k: v for k, v in r.items() if k != "seconds"} for r in res["episodes"]]  # noqa: E731
    kw = dict(num_episodes=4, max_steps=200, progress=False, **STATE_ONLY)
    with RolloutPool(2) as pool:
        for scale in (1.0, 0.7):
            log = str(tmp_path / f"pids{scale}.txt")
            pooled = evaluate(
                suite, "reach", DampedExpert(suite.expert("reach"), scale, log), pool=pool, **kw
            )
            serial = evaluate(
                suite, "reach", DampedExpert(suite.expert("reach"), scale, os.devnull), **kw
            )
            assert strip(pooled) == strip(serial), scale
    first = set((tmp_path / "pids1.0.txt").read_text().split())
    second = set((tmp_path / "pids0.7.txt").read_text().split())
    assert str(os.getpid()) not in first | second
    assert len(first | second) <= 2  # the same (at most) two processes; a new pool: up to 4


def test_workers_fall_back_to_one_process(suite):
    class Local(ZeroPolicy):  # defined in a function: cannot be pickled for the workers
        pass

    kw = dict(num_episodes=2, max_steps=3, progress=False, workers=2, **STATE_ONLY)
    with pytest.warns(UserWarning, match="cannot be pickled"):
        res = evaluate(suite, "reach", Local(), **kw)
    assert res["num_episodes"] == 2 and res["successes"] == 0
    with pytest.warns(UserWarning, match="obs_transform"):
        evaluate(suite, "reach", ZeroPolicy(), obs_transform=lambda o: o, **kw)
    with pytest.raises(ToolkitError, match="workers must be >= 1, got 0"):
        evaluate(suite, "reach", ZeroPolicy(), **{**kw, "workers": 0})


def test_worker_that_cannot_import_the_policy_class_says_so(suite, tmp_path, monkeypatch):
    """A policy whose class pickles here but is not importable in a spawned worker (its module
    was on sys.path only in the parent): a clear error naming the way out, not a bare
    ModuleNotFoundError from deep in the pool."""
    import importlib
    import sys

    (tmp_path / "parent_only_policy.py").write_text(
        "import numpy as np\n"
        "class Zero:\n"
        "    def reset(self):\n        pass\n"
        "    def select_action(self, obs):\n        return np.zeros(4)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    policy = importlib.import_module("parent_only_policy").Zero()
    sys.path.remove(str(tmp_path))  # the workers spawn with the parent's sys.path, now without it
    kw = dict(num_episodes=2, max_steps=3, progress=False, workers=2, **STATE_ONLY)
    with pytest.raises(ToolkitError, match="cannot load the policy.*parent_only_policy.*workers=1"):
        evaluate(suite, "reach", policy, **kw)
    sys.modules.pop("parent_only_policy", None)


def test_video(suite, tmp_path):
    import imageio.v3 as iio

    res = evaluate(
        suite,
        "reach",
        suite.expert("reach"),
        num_episodes=2,
        max_steps=10,
        video=1,
        out_dir=str(tmp_path),
        cameras={"corner": (64, 64)},
        progress=False,
        **STATE_ONLY,
    )
    first, second = res["episodes"]
    assert second["video"] is None and first["video"].endswith(".mp4")
    frames = iio.imread(first["video"])
    assert frames.shape == (first["steps"] + 1, 64, 64, 3)  # the reset frame + one per step
    assert not list(tmp_path.glob("*.partial*"))


def test_bad_inputs(suite):
    with pytest.raises(UnknownTaskError, match="Valid tasks: reach"):
        evaluate(suite, "rech", ZeroPolicy(), num_episodes=1, progress=False)
    with pytest.raises(ToolkitError, match="select_action"):
        evaluate(suite, "reach", object(), num_episodes=1, progress=False)
    with pytest.warns(UserWarning, match="overlap"):
        evaluate(
            "metaworld",
            "reach",
            ZeroPolicy(),
            num_episodes=1,
            max_steps=2,
            seed_offset=0,
            progress=False,
            **STATE_ONLY,
        )


def test_evaluate_tasks_mean(suite, tmp_path):
    out = evaluate_tasks(
        suite,
        ["reach", "button-press"],
        suite.expert,
        out_dir=str(tmp_path),
        num_episodes=1,
        progress=False,
        **STATE_ONLY,
    )
    assert out["per_task"] == {"reach": 1.0, "button-press": 1.0} and out["success_rate"] == 1.0
    assert (tmp_path / "reach" / "summary.json").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["success_rate"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("task", T.TASKS)
def test_expert_reaches_95_percent(suite, task):
    """The protocol's evaluation (25 rollouts, 200 steps, eval seeds) with the expert as policy."""
    res = evaluate(suite, task, suite.expert(task), num_episodes=25, progress=False, **STATE_ONLY)
    failed = [r["seed"] for r in res["episodes"] if not r["success"]]
    assert res["success_rate"] >= 0.95, f"{task}: {res['success_rate']:.2f}, failed seeds {failed}"
