"""Can Opener in Caddy and Screwdriver in Caddy (CLAMP Appendix C): put a tool into one
compartment of a two-compartment tool caddy.

Layout: six objects in a 2x3 grid: caddy, screwdriver and magnifier permuted over the three
top (back) slots (y = 0.65, x = -0.15, 0, 0.15), can opener, thumb drive and scissors over the
three bottom (front) slots (y = 0.42, x = -0.13, 0, 0.13); every object (the caddy too) turned
by a uniform +-90 degrees (``can_opener_in_caddy``) or +-180 degrees
(``screwdriver_in_caddy``), plus up to 5 mm of jitter. The grid is wider than
mug_on_plate's (x pitch 0.13, rows 18 cm apart) because the caddy is 17.5 x 18 cm. Draws
where objects' footprints overlap, the tool to pick comes within 1.5 cm of another object or
within 3 cm of the caddy are re-drawn (the fingers need room on both sides of the handle,
and the caddy's walls are tall).

The caddy (:func:`toolkit.envs.aloha.objects.caddy`) is fixed to the table. Its ``left``
compartment is the one on its local -x side, ``right`` on +x: "left" is the caddy's own left
(its front faces local -y), so a caddy turned by 180 degrees has its left compartment on the
table's right.

Success (sim state): the tool's centre of mass lies inside the target compartment, in the
caddy's frame within the compartment's inner walls (x between the outer wall and the
divider, ``|y| < compartment_half_length``) and below the walls' top (``z < wall_height``),
and no finger is within 2 mm of the tool. Stages: 0 start, 1 grasped (both finger pads of an
arm within 2 mm of the tool), 2 lifted (grasped, 2 cm above its resting height), 3 above the
compartment (grasped, its centre of mass over the compartment's opening), 4 in the
compartment (success). CLAMP's partial success is stage >= 1.

Expert: the arm on the target compartment's side of the table (the arm nearer the caddy when
the compartment is within 3 cm of the centre line) picks the tool top-down by its handle at
the point nearest the centre of mass, fingers across the handle, leaning outward when the
tool is far from the arm's base; lifts it, turns the hand about the vertical so the tool
lies along the compartment, carries it over the compartment (correcting twice for where the
tool's centre of mass really is in the hand), lowers it until the finger tips are just above
the walls, lets go (the tool drops in) and goes home.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from toolkit.envs.aloha.ik import gripper_frame, wrap_angle, yaw_rotation
from toolkit.envs.aloha.tasks._finetune import (
    FOOTPRINTS,
    grid_layout,
    gripper_clear,
    held_by,
    rect_footprint,
    side,
    to_local,
)
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task

#: Slots of the caddy tasks' 2x3 grid (metres): see the module docstring.
CADDY_SLOTS = {
    "top": [(-0.15, 0.65), (0.0, 0.65), (0.15, 0.65)],
    "bottom": [(-0.13, 0.42), (0.0, 0.42), (0.13, 0.42)],
}
#: Lowest allowed finger-tip height (m) when grasping a tool on the table; the ViperX's finger
#: tips are 3.4 cm past the TCP, so the TCP stays 3.6 cm up and the handle is pinched by the
#: last 2-3 cm of the pads.
TIP_CLEARANCE = 0.002
TIP_BEYOND_TCP = 0.034
#: Height (m) of the finger tips above the caddy's walls when the tool is let go.
RELEASE_ABOVE_WALLS = 0.008
#: First lift of the tool (m).
LIFT = 0.05


class CaddyTask(Task):
    """A tool into one compartment of the caddy (subclasses set the tool, the compartment and
    the yaw range)."""

    family = "finetune"
    objects = {
        "caddy": "caddy",
        "screwdriver": "screwdriver",
        "magnifier": "magnifier",
        "can_opener": "can_opener",
        "thumb_drive": "thumb_drive",
        "scissors": "scissors",
    }
    top = ("caddy", "screwdriver", "magnifier")
    bottom = ("can_opener", "thumb_drive", "scissors")
    stages = ("start", "grasped", "lifted", "above_compartment", "in_compartment")
    max_steps = 400
    #: The tool to put away and the compartment ("left" or "right").
    tool: ClassVar[str] = ""
    compartment: ClassVar[str] = ""
    yaw_range: ClassVar[float] = math.pi / 2
    jitter = 0.005
    #: Footprint gaps (m) around the tool to pick (see :meth:`_gaps`).
    min_gap = 0.015
    tool_gap = 0.03

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        fp = {n: FOOTPRINTS[k] for n, k in self.objects.items() if k != "caddy"}
        d = self.object_infos()["caddy"].dims
        fp["caddy"] = rect_footprint(d["half_width"], d["half_depth"])
        return grid_layout(
            rng,
            self.top,
            self.bottom,
            fp,
            self.yaw_range,
            self.jitter,
            min_gap=self._gaps(),
            slots=CADDY_SLOTS,
        )

    def _gaps(self) -> dict:
        """Footprint gaps the layout keeps: the tool to pick 1.5 cm from every object and
        3 cm from the caddy; other objects only must not overlap."""
        gaps: dict = {"default": 0.0}
        for other in self.objects:
            if other != self.tool:
                gaps[(self.tool, other)] = self.tool_gap if other == "caddy" else self.min_gap
        return gaps

    # ------------------------------------------------------------------ success / progress
    def tool_com(self, sim) -> np.ndarray:
        """World position of the tool's centre of mass."""
        com = np.array([sim.objects[self.tool].dims["com_x"], 0.0, 0.0])
        return sim.body_pose(self.tool)[:3] + sim.body_rot(self.tool) @ com

    def _in_compartment(self, sim) -> tuple[bool, bool]:
        """(tool's centre of mass inside the target compartment, over its opening)."""
        d = sim.objects["caddy"].dims
        p = to_local(sim, "caddy", self.tool_com(sim))
        sign = -1.0 if self.compartment == "left" else 1.0
        over = (
            abs(p[0] - sign * d["compartment_x"]) < d["compartment_half_width"]
            and abs(p[1]) < d["compartment_half_length"]
        )
        return bool(over and 0.0 < p[2] < d["wall_height"]), bool(over)

    def success(self, sim) -> bool:
        inside, _ = self._in_compartment(sim)
        return inside and gripper_clear(sim, self.tool)

    def progress(self, sim) -> int:
        inside, over = self._in_compartment(sim)
        if inside and gripper_clear(sim, self.tool):
            return 4
        if held_by(sim, self.tool) is None:
            return 0
        lifted = sim.body_pose(self.tool)[2] - sim.objects[self.tool].base_z > 0.02
        if lifted and over:
            return 3
        return 2 if lifted else 1

    # ------------------------------------------------------------------ expert
    def _compartment(self, ctx: ExpertContext) -> tuple[np.ndarray, np.ndarray]:
        """World centre (on the floor) of the target compartment and the caddy's y axis."""
        d = self.object_infos()["caddy"].dims
        sign = -1.0 if self.compartment == "left" else 1.0
        R = ctx.rot("caddy")
        centre = ctx.pos("caddy") + R @ np.array([sign * d["compartment_x"], 0.0, d["floor"]])
        return centre, R[:, 1]

    def _com(self, ctx: ExpertContext) -> np.ndarray:
        com = np.array([self.object_infos()[self.tool].dims["com_x"], 0.0, 0.0])
        return ctx.pos(self.tool) + ctx.rot(self.tool) @ com

    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        info = self.object_infos()[self.tool]
        td = info.dims
        caddy = self.object_infos()["caddy"].dims
        target, along = self._compartment(ctx)
        arm = side(target[0]) or side(ctx.pos("caddy")[0]) or "left"
        base = m.kin[arm].base[:2]
        # Grasp the handle at the point nearest the centre of mass (keeping the finger pads,
        # 1 cm wide at the tips, on the handle).
        r = td["handle_radius"]
        gx = min(max(td["com_x"], td["x_min"] + r + 0.01), -0.015)
        R_tool = ctx.rot(self.tool)
        axis = R_tool[:, 0]
        grasp = ctx.pos(self.tool) + R_tool @ np.array([gx, 0.0, 0.0])
        f = np.cross([0.0, 0.0, 1.0], axis)
        f[2] = 0.0
        f /= np.linalg.norm(f)
        # Lean outward when the handle is beyond the reach of a vertical gripper.
        out = np.array([*(grasp[:2] - base), 0.0])
        dist = float(np.linalg.norm(out))
        out /= dist
        lean = min(max(3.5 * (dist - 0.56), 0.0), 0.35)
        a = math.sin(lean) * out - math.cos(lean) * np.array([0.0, 0.0, 1.0])
        R_pick = gripper_frame(a, f)
        tcp_z = max(grasp[2] + 0.022, TIP_CLEARANCE + TIP_BEYOND_TCP * math.cos(lean))
        grasp_tcp = np.array([grasp[0], grasp[1], tcp_z])
        ctx.stage = 0
        yield from m.move_joints_to(arm, grasp_tcp + [0, 0, 0.06], R_pick, steps=45, grip=0.45)
        yield from m.move(arm, grasp_tcp, steps=25)
        yield from m.gripper(arm, 0.0, steps=12)
        yield from m.hold(5)
        ctx.stage = 1
        # A short lift: far from the arm's base a tall one runs into the reach limit, where
        # the joints speed up and jerk the tool out of the finger tips. The carry below rises
        # the rest of the way while it moves toward the caddy (on the arm's side).
        yield from m.move(arm, grasp_tcp + [0, 0, LIFT], steps=25)
        yield from m.hold(3)
        if ctx.pos(self.tool)[2] < grasp[2] + LIFT / 2:
            return  # the tool did not come up
        ctx.stage = 2
        # Turn about the vertical so the tool lies along the compartment (whichever way round
        # is the smaller turn).
        R_held = m.pose(arm)[1]
        axis = ctx.rot(self.tool)[:, 0]
        turn = wrap_angle(math.atan2(along[1], along[0]) - math.atan2(axis[1], axis[0]))
        if abs(turn) > math.pi / 2:
            turn = wrap_angle(turn + math.pi)
        R_place = yaw_rotation(turn) @ R_held
        goal = np.array([target[0], target[1], 0.0])
        high = caddy["wall_height"] + 0.05
        for steps in (50, 12):
            yield from m.move(arm, self._tcp_for(ctx, arm, R_place, goal, high), R_place, steps)
            yield from m.hold(4)
        ctx.stage = 3
        # Lower until the finger tips are just above the walls.
        p_cmd, R_cmd = m.pose(arm)
        tips = p_cmd + TIP_BEYOND_TCP * R_cmd[:, 0]
        drop = tips[2] - (target[2] - caddy["floor"] + caddy["wall_height"] + RELEASE_ABOVE_WALLS)
        yield from m.move(arm, p_cmd - [0.0, 0.0, drop], steps=20)
        yield from m.hold(3)
        yield from m.gripper(arm, 0.5, steps=8)
        yield from m.hold(12)
        ctx.stage = 4
        p, _ = m.pose(arm)
        yield from m.move(arm, p + [0, 0, 0.06], steps=15)
        yield from m.home(arm, steps=40)

    def _tcp_for(
        self, ctx: ExpertContext, arm: str, R_target: np.ndarray, goal: np.ndarray, z: float
    ) -> np.ndarray:
        """TCP putting the tool's centre of mass over ``goal`` (xy) at height ``z``, from where
        it sits in the hand now (turned with the hand to ``R_target``)."""
        p_cmd, R_cmd = ctx.motion.pose(arm)
        offset = R_target @ R_cmd.T @ (p_cmd - self._com(ctx))
        return np.array([goal[0], goal[1], z]) + offset


@register_task
class CanOpenerInCaddy(CaddyTask):
    name = "can_opener_in_caddy"
    description = "put the can opener in the left compartment of the caddy"
    tool = "can_opener"
    compartment = "left"
    yaw_range = math.pi / 2


@register_task
class ScrewdriverInCaddy(CaddyTask):
    name = "screwdriver_in_caddy"
    description = "put the screwdriver in the right compartment of the caddy"
    tool = "screwdriver"
    compartment = "right"
    yaw_range = math.pi
