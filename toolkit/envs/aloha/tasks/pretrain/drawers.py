"""Drawer pretraining tasks on the two-drawer cabinet (:func:`toolkit.envs.aloha.objects.drawer`).

Layout (both): the cabinet (fixed to the table) in the back half of the workspace at a
uniform base position x in [-0.1, 0.1], y in [0.68, 0.74], its front facing the front of the
table (-y) turned by a uniform +-45 degrees, as in the fine-tuning task ``drawer_open``.

- ``top_drawer_open``: both drawers start closed; open the TOP one. Success: the top drawer is
  out by at least 60% of its 12 cm travel (the bottom drawer does not count). Stages: 0 start,
  1 grasped (both fingers of an arm touch the top drawer's handle), 2 pulling (the top drawer
  is out by 2 cm or more), 3 open (success).
- ``drawer_close``: one drawer (top or bottom, drawn per seed) starts out by 8-12 cm, the
  other closed; close it. Success: both drawers are in to within 1 cm (``CLOSED``). Stages:
  0 start, 1 pushing (a finger touches the open drawer), 2 half closed (it is in to within
  5 cm), 3 closed (success).

Experts: the arm the cabinet front turns toward (its gripper then points away from its own
base). Opening: approach the handle's vertical bar horizontally along the drawer axis, close
on it, pull straight out along the slide axis, let go and back off. Closing: with the fingers
closed, come to the open drawer's front panel 5.5 cm beside the handle (toward the arm's
base; the bar itself could slip between the fingers and drag the drawer back out), push it
back along the slide axis 1.5 cm past closed (the slide's limit stops it), then back off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.ik import horizontal_frame, yaw_rotation
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task

OPEN_FRACTION = 0.6
PULL_STARTED = 0.02
#: Opening (m) at or below which a drawer counts as closed.
CLOSED = 0.01
#: Opening (m) below which a closing drawer counts as half closed (stage 2).
HALF_CLOSED = 0.05


class _CabinetTask(Task):
    family = "pretrain"
    objects = {"drawer": "drawer"}
    max_steps = 400
    yaw_range = math.radians(45.0)
    x_range = (-0.1, 0.1)
    y_range = (0.68, 0.74)

    def _pose(self, rng: np.random.Generator) -> tuple[tuple[float, float], float]:
        x = float(rng.uniform(*self.x_range))
        y = float(rng.uniform(*self.y_range))
        return (x, y), float(rng.uniform(-self.yaw_range, self.yaw_range))

    @staticmethod
    def opening(sim, which: str) -> float:
        return sim.joint(sim.objects["drawer"].joints[which])

    @staticmethod
    def _drawer_geoms(sim, which: str) -> set[int]:
        return {
            sim.model.geom(g).id
            for g in sim.objects["drawer"].geoms
            if g.startswith(f"drawer/{which}/")
        }

    def _handle(self, ctx: ExpertContext, which: str) -> tuple[np.ndarray, np.ndarray]:
        """World position of ``which`` drawer's handle bar now and the outward normal."""
        d = self.object_infos()["drawer"].dims
        pose = ctx.pose("drawer")
        R = ctx.rot("drawer")
        Rz = yaw_rotation(math.atan2(R[1, 0], R[0, 0]))
        opening = ctx.joint(f"drawer/{which}_slide")
        handle = pose[:3] + Rz @ np.array(
            [0.0, d[f"{which}_handle_y"] - opening, d[f"{which}_handle_z"]]
        )
        return handle, Rz @ np.array([0.0, -1.0, 0.0])


@register_task
class TopDrawerOpen(_CabinetTask):
    name = "top_drawer_open"
    description = "open the top drawer"
    stages = ("start", "grasped", "pulling", "open")

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        xy, yaw = self._pose(rng)
        joints = {"drawer/bottom_slide": 0.0, "drawer/top_slide": 0.0}
        return {"drawer": Placement(xy, yaw, joints=joints)}

    def success(self, sim) -> bool:
        return bool(
            self.opening(sim, "top") >= OPEN_FRACTION * sim.objects["drawer"].dims["travel"]
        )

    def progress(self, sim) -> int:
        if self.success(sim):
            return 3
        if self.opening(sim, "top") >= PULL_STARTED:
            return 2
        handle = self._drawer_geoms(sim, "top")
        pairs = sim.contact_pairs()
        for arm in ("left", "right"):
            lf, rf = sim.finger_geoms[arm]
            if sim.touching({lf}, handle, pairs) and sim.touching({rf}, handle, pairs):
                return 1
        return 0

    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        travel = self.object_infos()["drawer"].dims["travel"]
        handle, n = self._handle(ctx, "top")
        approach = -n
        arm = "left" if approach[0] >= 0 else "right"
        R_grasp = horizontal_frame(math.atan2(approach[1], approach[0]), pitch=0.15)
        grasp = handle + 0.005 * n
        ctx.stage = 0
        yield from m.move_joints_to(
            arm, grasp + 0.09 * n + [0, 0, 0.03], R_grasp, steps=50, grip=1.0
        )
        yield from m.move(arm, grasp + 0.05 * n, steps=15)
        yield from m.move(arm, grasp, steps=20)
        yield from m.gripper(arm, 0.0, steps=12)
        yield from m.hold(5)
        ctx.stage = 1
        ctx.stage = 2
        yield from m.move(arm, grasp + 0.9 * travel * n, steps=60)
        yield from m.hold(5)
        yield from m.gripper(arm, 1.0, steps=10)
        ctx.stage = 3
        p, _ = m.pose(arm)
        yield from m.move(arm, p + 0.05 * n + [0, 0, 0.04], steps=20)
        yield from m.home(arm, steps=40)


@register_task
class DrawerClose(_CabinetTask):
    name = "drawer_close"
    description = "close the open drawer"
    stages = ("start", "pushing", "half_closed", "closed")
    open_range = (0.08, 0.12)

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        xy, yaw = self._pose(rng)
        which = "top" if rng.random() < 0.5 else "bottom"
        joints = {"drawer/bottom_slide": 0.0, "drawer/top_slide": 0.0}
        joints[f"drawer/{which}_slide"] = float(rng.uniform(*self.open_range))
        return {"drawer": Placement(xy, yaw, joints=joints)}

    def _open_one(self, sim) -> str:
        return max(("bottom", "top"), key=lambda w: self.opening(sim, w))

    def success(self, sim) -> bool:
        return all(self.opening(sim, w) <= CLOSED for w in ("bottom", "top"))

    def progress(self, sim) -> int:
        if self.success(sim):
            return 3
        which = self._open_one(sim)
        if self.opening(sim, which) <= HALF_CLOSED:
            return 2
        fingers = {g for arm in ("left", "right") for g in sim.finger_geoms[arm]}
        return 1 if sim.touching(fingers, self._drawer_geoms(sim, which)) else 0

    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        which = max(("bottom", "top"), key=lambda w: ctx.joint(f"drawer/{w}_slide"))
        opening = ctx.joint(f"drawer/{which}_slide")
        handle, n = self._handle(ctx, which)
        approach = -n
        arm = "left" if approach[0] >= 0 else "right"
        R_push = horizontal_frame(math.atan2(approach[1], approach[0]), pitch=0.15)
        # Push the front panel beside the handle (the bar could slip between the fingers and
        # drag the drawer back out on the way back), on the side nearer the arm's base, with
        # the closed finger tips (3.4 cm past the TCP) 4 mm off the panel's face.
        d = self.object_infos()["drawer"].dims
        lateral = np.array([-n[1], n[0], 0.0])
        if float(lateral @ (m.kin[arm].base - handle)) < 0:
            lateral = -lateral
        face = handle - d["handle_standoff"] * n
        contact = face + 0.055 * lateral + (0.034 + 0.004) * n
        ctx.stage = 0
        yield from m.move_joints_to(
            arm, contact + 0.06 * n + [0, 0, 0.03], R_push, steps=50, grip=0.0
        )
        yield from m.move(arm, contact + 0.015 * n, steps=15)
        ctx.stage = 1
        # Push past the closed position by 1.5 cm: the slide's limit stops the drawer.
        yield from m.move(arm, contact - (opening + 0.015) * n, steps=60)
        yield from m.hold(5)
        ctx.stage = 3
        p, _ = m.pose(arm)
        yield from m.move(arm, p + 0.06 * n + [0, 0, 0.03], steps=20)
        yield from m.home(arm, steps=40)
