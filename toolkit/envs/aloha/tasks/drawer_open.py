"""Drawer Open (CLAMP Appendix C): open the bottom drawer of a two-drawer cabinet.

Layout: the cabinet (:func:`toolkit.envs.aloha.objects.drawer`, fixed to the table) stands
in the back half of the workspace, its front facing the front of the table (-y) turned by up
to +-45 degrees; both drawers start closed.

Success (sim state): the bottom drawer is out by at least 60% of its 12 cm travel
(``OPEN_FRACTION``). Stages: 0 start, 1 grasped (both fingers of an arm touch the bottom
drawer's handle), 2 pulling (the bottom drawer is out by 2 cm or more), 3 open (success).

Expert: the arm the cabinet front turns toward (its gripper then points away from its own
base) approaches the bar handle horizontally along the drawer's axis, closes on the bar,
pulls the drawer straight out along the slide axis, lets go and backs off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.ik import horizontal_frame, yaw_rotation
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task

OPEN_FRACTION = 0.6
#: Bottom drawer opening (metres) that counts as started (stage 2).
PULL_STARTED = 0.02


@register_task
class DrawerOpen(Task):
    name = "drawer_open"
    description = "open the bottom drawer"
    objects = {"drawer": "drawer"}
    stages = ("start", "grasped", "pulling", "open")
    max_steps = 400
    yaw_range = math.radians(45.0)
    #: Cabinet base-centre ranges (metres).
    x_range = (-0.1, 0.1)
    y_range = (0.68, 0.74)

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        x = float(rng.uniform(*self.x_range))
        y = float(rng.uniform(*self.y_range))
        yaw = float(rng.uniform(-self.yaw_range, self.yaw_range))
        return {
            "drawer": Placement(
                (x, y), yaw, joints={"drawer/bottom_slide": 0.0, "drawer/top_slide": 0.0}
            )
        }

    def opening(self, sim) -> float:
        return sim.joint(sim.objects["drawer"].joints["bottom"])

    def success(self, sim) -> bool:
        d = sim.objects["drawer"]
        return self.opening(sim) >= OPEN_FRACTION * d.dims["travel"]

    def progress(self, sim) -> int:
        if self.success(sim):
            return 3
        if self.opening(sim) >= PULL_STARTED:
            return 2
        handle = {
            sim.model.geom(g).id
            for g in sim.objects["drawer"].geoms
            if g.startswith("drawer/bottom/")
        }
        for arm in ("left", "right"):
            lf, rf = sim.finger_geoms[arm]
            pairs = sim.contact_pairs()
            if sim.touching({lf}, handle, pairs) and sim.touching({rf}, handle, pairs):
                return 1
        return 0

    # ------------------------------------------------------------------ expert
    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        d = self.object_infos()["drawer"].dims
        pose = ctx.pose("drawer")
        R = ctx.rot("drawer")
        yaw = math.atan2(R[1, 0], R[0, 0])
        Rz = yaw_rotation(yaw)
        opening = ctx.joint("drawer/bottom_slide")
        handle = pose[:3] + Rz @ np.array(
            [0.0, d["bottom_handle_y"] - opening, d["bottom_handle_z"]]
        )
        n = Rz @ np.array([0.0, -1.0, 0.0])  # the front's outward normal = pull direction
        approach = -n
        arm = "left" if approach[0] >= 0 else "right"
        R_grasp = horizontal_frame(math.atan2(approach[1], approach[0]), pitch=0.15)
        # The bar sits 5 mm past the TCP, toward the finger tips (which stay 1 cm off the panel).
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
        pull = d["travel"] * 0.9
        ctx.stage = 2
        yield from m.move(arm, grasp + pull * n, steps=60)
        yield from m.hold(5)
        yield from m.gripper(arm, 1.0, steps=10)
        ctx.stage = 3
        p, _ = m.pose(arm)
        yield from m.move(arm, p + 0.05 * n + [0, 0, 0.04], steps=20)
        yield from m.home(arm, steps=40)
