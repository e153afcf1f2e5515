"""Push Cube (pretraining): push the red cube along the table onto the yellow target square.

Layout: the 9 cm target square (a flat marker nothing collides with) at a uniform position
x in [-0.1, 0.1], y in [0.47, 0.63] turned by up to +-45 degrees; the 4 cm cube 12-17 cm
away from it in a uniform direction (re-drawn until it lies in x in [-0.18, 0.18],
y in [0.4, 0.7]), turned by up to +-45 degrees.

Success (sim state): the cube's centre lies within 3 cm of the target's centre along both of
the target's axes (inside the square, 1.5 cm clear of its edges) and the cube rests on the
table (its centre within 5 mm of its resting height: pushed, not carried there). Stages:
0 start, 1 touched (a finger touches the cube), 2 near (the cube's centre within 8 cm of
the target's), 3 on target (success).

Expert: the arm that pushes most nearly away from its own base (its reach is longest that
way) lowers its closed gripper behind the cube, the fingers' flat side facing the push
direction, pushes the cube in a straight line to the target, lifts; then re-measures and
pushes again from the new side (up to two corrections) while the cube is more than 1.2 cm
off the target's centre.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.ik import pick_frame
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task
from toolkit.envs.aloha.tasks.pretrain import _objects  # noqa: F401  (registers the builders)
from toolkit.envs.aloha.tasks.pretrain._common import lifted, to_local

#: Half extent (m) of the success region around the target's centre, per target axis.
TARGET_TOL = 0.03
NEAR = 0.08
#: TCP height while pushing: the closed finger tips skim 8 mm above the table.
PUSH_Z = 0.041
#: TCP-to-finger-face distance along the push direction (closed fingers).
FINGER_FACE = 0.012


@register_task
class PushCube(Task):
    name = "push_cube"
    description = "push the red cube onto the yellow square"
    family = "pretrain"
    objects = {"target": "target", "cube": "cube"}
    stages = ("start", "touched", "near", "on_target")
    max_steps = 400
    target_x = (-0.1, 0.1)
    target_y = (0.47, 0.63)
    distance = (0.12, 0.17)
    cube_box = ((-0.18, 0.18), (0.40, 0.70))
    yaw_range = math.pi / 4
    corrections = 2

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        while True:
            t = np.array([rng.uniform(*self.target_x), rng.uniform(*self.target_y)])
            a = rng.uniform(-math.pi, math.pi)
            c = t + rng.uniform(*self.distance) * np.array([math.cos(a), math.sin(a)])
            (x0, x1), (y0, y1) = self.cube_box
            if x0 <= c[0] <= x1 and y0 <= c[1] <= y1:
                break
        return {
            "target": Placement(tuple(t), float(rng.uniform(-self.yaw_range, self.yaw_range))),
            "cube": Placement(tuple(c), float(rng.uniform(-self.yaw_range, self.yaw_range))),
        }

    def _offset(self, sim) -> np.ndarray:
        return to_local(sim, "target", sim.body_pose("cube")[:3])

    def success(self, sim) -> bool:
        p = self._offset(sim)
        inside = abs(p[0]) < TARGET_TOL and abs(p[1]) < TARGET_TOL
        return bool(inside) and not lifted(sim, "cube", 0.005)

    def progress(self, sim) -> int:
        if self.success(sim):
            return 3
        p = self._offset(sim)
        if float(np.hypot(p[0], p[1])) < NEAR:
            return 2
        return 1 if sim.touched_by_gripper("cube") else 0

    # ------------------------------------------------------------------ expert
    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        target = ctx.pos("target")
        cube = ctx.pos("cube")
        d0 = (target - cube)[:2] / np.linalg.norm((target - cube)[:2])
        arm = max(
            ("left", "right"),
            key=lambda a: float(d0 @ _unit(cube[:2] - m.kin[a].base[:2])),
        )
        base = m.kin[arm].base[:2]
        half = self.object_infos()["cube"].dims["half_x"]
        first = True
        for _ in range(1 + self.corrections):
            cube = ctx.pos("cube")
            e = (target - cube)[:2]
            dist = float(np.linalg.norm(e))
            if dist < 0.012:
                break
            d = e / dist
            start = cube[:2] - d * (half + FINGER_FACE + 0.025)
            end = target[:2] - d * (half + FINGER_FACE)
            finger_yaw = math.atan2(d[1], d[0]) + math.pi / 2
            p_start = np.array([start[0], start[1], PUSH_Z])
            R, _ = pick_frame(base, p_start, finger_yaw, tilt=0.2)
            ctx.stage = 0
            high = p_start + [0, 0, 0.06]
            if first:
                yield from m.move_joints_to(arm, high, R, steps=45, grip=0.0)
            else:
                yield from m.move(arm, high, R, steps=25, symmetric=True)
            first = False
            yield from m.move(arm, p_start, steps=20)
            ctx.stage = 1
            steps = int(20 + 250 * float(np.linalg.norm(end - start)))
            yield from m.move(arm, np.array([end[0], end[1], PUSH_Z]), steps=steps)
            yield from m.hold(5)
            p, _ = m.pose(arm)
            yield from m.move(arm, p - [*(0.015 * d), 0.0] + [0, 0, 0.05], steps=15)
        yield from m.home(arm, steps=40)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)
