"""Stack Cube (pretraining): put the red cube on top of the green block.

Layout: the 5 cm green block over the three back (top) slots of the 2x3 grid, the 4 cm red
cube and a distractor (the banana) over the three front (bottom) ones; the blocks turned by a
uniform +-45 degrees (a cube repeats every 90), the banana by +-180, plus up to 5 mm of
jitter.

Success (sim state): the cube rests flat on the block: its centre within 1.5 cm of the
block's vertical axis (horizontally), its bottom face within -4..+6 mm of the block's top
face, tilted < 15 degrees (about any face axis), the block itself resting on the table, and
no finger touches the cube. Stages: 0 start, 1 grasped, 2 lifted (grasped, 2 cm up),
3 above the block (grasped, over its top face), 4 stacked (success).

Expert: the arm on the cube's side picks it top-down (fingers across two faces), lifts it,
turns it to the block's yaw (modulo 90 degrees), carries it over the block correcting for its
pose in the hand, lowers it to 4 mm above the block, opens and backs off.
"""

from __future__ import annotations

import math

import numpy as np

from toolkit.envs.aloha.tasks.base import ExpertContext, register_task
from toolkit.envs.aloha.tasks.pretrain import _objects  # noqa: F401  (registers the builders)
from toolkit.envs.aloha.tasks.pretrain._common import PickPlaceTask, lifted, to_local
from toolkit.envs.aloha.tasks.pretrain.lift_cube import face_yaw


def flat_tilt(sim, name: str) -> float:
    """Tilt (degrees) of a cube-like body from resting flat on any face."""
    R = sim.body_rot(name)
    return math.degrees(math.acos(float(np.clip(np.abs(R[2, :]).max(), -1.0, 1.0))))


@register_task
class StackCube(PickPlaceTask):
    name = "stack_cube"
    description = "stack the red cube on the green block"
    objects = {"block": "block", "cube": "cube", "banana": "banana"}
    item, receptacle = "cube", "block"
    top, bottom = ("block",), ("cube", "banana")
    yaws = {"block": math.pi / 4, "cube": math.pi / 4}
    max_steps = 400
    center_tol = 0.015
    gap = (-0.004, 0.006)
    max_tilt = 15.0

    def _local(self, sim) -> np.ndarray:
        return to_local(sim, "block", sim.body_pose("cube")[:3])

    def over(self, sim) -> bool:
        p = self._local(sim)
        h = sim.objects["block"].dims["half_x"]
        return bool(abs(p[0]) < h and abs(p[1]) < h)

    def placed_in(self, sim) -> bool:
        cube, block = sim.objects["cube"], sim.objects["block"]
        c = sim.body_pose("cube")[:3]
        b = sim.body_pose("block")[:3]
        within = float(np.hypot(*(c[:2] - b[:2]))) < self.center_tol
        gap = (c[2] - cube.dims["half_z"]) - (b[2] + block.dims["half_z"])
        flat = flat_tilt(sim, "cube") < self.max_tilt and flat_tilt(sim, "block") < self.max_tilt
        on_table = not lifted(sim, "block", 0.005)
        return bool(within and flat and on_table and self.gap[0] <= gap <= self.gap[1])

    def grasp(self, ctx: ExpertContext) -> tuple[np.ndarray, float]:
        arm = self.choose_arm(ctx)
        return ctx.pos("cube") + [0, 0, 0.012], face_yaw(ctx, arm, "cube")

    def place_yaw(self, ctx: ExpertContext) -> tuple[float | None, float]:
        return ctx.yaw("block"), math.pi / 2

    def goal(self, ctx: ExpertContext, yaw: float) -> np.ndarray:
        infos = self.object_infos()
        top = ctx.pos("block")[2] + infos["block"].dims["half_z"]
        return np.array([*ctx.pos("block")[:2], top + infos["cube"].dims["half_z"] + 0.004])
