"""Lift Cube (pretraining): pick the red cube up off the table.

Layout: the 4 cm cube alone at a uniform position x in [-0.16, 0.16], y in [0.42, 0.64],
turned by a uniform +-45 degrees (a cube repeats every 90).

Success (sim state): an arm grasps the cube (both fingers touch it) and its centre is at least
8 cm above its resting height (``LIFT_HEIGHT``). Stages: 0 start, 1 grasped, 2 lifting
(grasped and 2 cm up), 3 lifted (success).

Expert: the arm on the cube's side (the left one near the centre line) picks it top-down with
the fingers closing across two opposite faces (the pair closest to the arm's natural reach
direction), leaning away from its base, and lifts it 12 cm.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task
from toolkit.envs.aloha.tasks.pretrain import _objects  # noqa: F401  (registers the builders)
from toolkit.envs.aloha.tasks.pretrain._common import lifted, pick, side

#: Height (m) of the cube's centre above its resting height that counts as lifted.
LIFT_HEIGHT = 0.08


def face_yaw(ctx: ExpertContext, arm: str, name: str, period: float = math.pi / 2) -> float:
    """Finger closing yaw for a top-down pick of a box-like object: the object's yaw plus a
    multiple of ``period`` closest to the arm's natural closing axis (perpendicular to the
    line from its base to the object)."""
    base = ctx.motion.kin[arm].base[:2]
    d = ctx.pos(name)[:2] - base
    natural = math.atan2(d[1], d[0]) + math.pi / 2
    yaw = ctx.yaw(name)
    k = round((natural - yaw) / period)
    return yaw + k * period


@register_task
class LiftCube(Task):
    name = "lift_cube"
    description = "pick up the red cube and lift it"
    family = "pretrain"
    objects = {"cube": "cube"}
    stages = ("start", "grasped", "lifting", "lifted")
    max_steps = 300
    x_range = (-0.16, 0.16)
    y_range = (0.42, 0.64)
    yaw_range = math.pi / 4
    #: TCP height above the cube's centre when grasping.
    grasp_dz = 0.012

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        xy = (float(rng.uniform(*self.x_range)), float(rng.uniform(*self.y_range)))
        return {"cube": Placement(xy, float(rng.uniform(-self.yaw_range, self.yaw_range)))}

    def success(self, sim) -> bool:
        return sim.held_by("cube") is not None and lifted(sim, "cube", LIFT_HEIGHT)

    def progress(self, sim) -> int:
        if sim.held_by("cube") is None:
            return 0
        if lifted(sim, "cube", LIFT_HEIGHT):
            return 3
        return 2 if lifted(sim, "cube", 0.02) else 1

    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        arm = side(ctx.pos("cube")[0]) or "left"

        def grasp(c: ExpertContext) -> tuple[np.ndarray, float]:
            return c.pos("cube") + [0, 0, self.grasp_dz], face_yaw(c, arm, "cube")

        ok = yield from pick(ctx, arm, "cube", grasp, lift=0.12)
        if ok:
            ctx.stage = 3
            yield from ctx.motion.hold(20)
