"""Pen in Container (CLAMP Appendix C): grasp the pen and put it in the container.

Layout: the six objects of Mug on Plate in the 2x3 grid: plate, bowl and container permuted
over the three top (back) slots, mug, pen and banana over the three bottom (front) slots; each
randomly turned by up to +-180 degrees (plus up to 5 mm of jitter). Draws where two objects'
footprints come within 1.5 cm of each other are re-drawn (the gripper needs room).

Success (sim state): the pen's lower end (the end point of its axis nearer the table) lies
inside the container: in the container's frame within its inner walls
(``|x|, |y| < half_width - wall``) and below its rim (``0 < z < height``); the container stands
upright (tilted < 30 degrees) and no finger pad is within 2 mm of the pen (contact lists
flicker while an object is pinched, so distances decide). The pen may lean on the rim.
Stages: 0 start, 1 grasped (both finger pads of an arm within 2 mm of the pen), 2 lifted
(grasped and 2 cm above its resting height), 3 above the container (grasped, its lower end
over the container's opening), 4 inside (success). CLAMP's partial success is stage >= 1.

Expert: the arm on the pen's side (the container's side when the pen is in the middle
column) picks the pen top-down at its middle, fingers across it (the finger tips stop just
above the table, so the pads hold the 14 mm pen by their last few millimetres), and lifts
it. In joint space it then carries the pen over the container while turning the hand about
the vertical (the pen's axis along the line from the arm's base to the container) and
pitching it outward by 35 degrees, so that the pen tilts with its lower end toward the base;
a steeper pitch lets the pen slide out of the finger tips, and a Cartesian slerp passes the
wrist singularity and whips it. Correcting twice for where the pen's lower end really is in
the hand, it lowers that end inside the container's near wall, 3 cm above the floor, the pen
rising over the far wall; it lets go (the pen drops in and leans on the far wall) and goes
home.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.frames import quat_to_mat
from toolkit.envs.aloha.ik import gripper_frame, wrap_angle, yaw_rotation
from toolkit.envs.aloha.tasks._finetune import (
    FOOTPRINTS,
    grid_layout,
    gripper_clear,
    held_by,
    side,
    to_local,
)
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task

#: TCP height above the pen's axis when pinching it: the finger tips (3.4 cm past the TCP)
#: stop about 1 mm above the table and the pads hold the pen's upper two thirds.
GRASP_ABOVE_AXIS = 0.029
#: Height of the pen's axis after the lift.
LIFT_HEIGHT = 0.12
#: Outward pitch of the hand over the container (radians from vertical): 35 degrees tilts the
#: pen's lower end into the container while it still rises over the far wall.
PITCH = math.radians(35.0)
#: Where the pen's lower end (axis end point) is let go: this far above the container's floor
#: and inside its near wall.
RELEASE_ABOVE_FLOOR = 0.032
RELEASE_WALL_GAP = 0.011


def pen_ends(pose, half_length: float) -> tuple[np.ndarray, np.ndarray]:
    """World end points ``(lower, upper)`` of the pen's axis from its ``(7,)`` pose."""
    pose = np.asarray(pose, dtype=np.float64)
    axis = quat_to_mat(pose[3:])[:, 0] * half_length
    a, b = pose[:3] + axis, pose[:3] - axis
    return (a, b) if a[2] <= b[2] else (b, a)


@register_task
class PenInContainer(Task):
    name = "pen_in_container"
    description = "pick up the pen and put it in the container"
    family = "finetune"
    objects = {
        "plate": "plate",
        "bowl": "bowl",
        "container": "container",
        "mug": "mug",
        "pen": "pen",
        "banana": "banana",
    }
    top = ("plate", "bowl", "container")
    bottom = ("mug", "pen", "banana")
    stages = ("start", "grasped", "lifted", "above_container", "inside")
    max_steps = 400
    yaw_range = math.pi
    jitter = 0.005
    min_gap = 0.015
    #: Success thresholds (see the module docstring).
    max_container_tilt_deg = 30.0

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        fp = {n: FOOTPRINTS[k] for n, k in self.objects.items()}
        return grid_layout(
            rng, self.top, self.bottom, fp, self.yaw_range, self.jitter, self.min_gap
        )

    # ------------------------------------------------------------------ success / progress
    def _lower_end_local(self, sim) -> np.ndarray:
        """The pen's lower axis end point in the container's frame."""
        lower, _ = pen_ends(sim.body_pose("pen"), sim.objects["pen"].dims["half_length"])
        return to_local(sim, "container", lower)

    def _inside(self, sim) -> tuple[bool, bool]:
        """(lower end inside the upright container, lower end over its opening)."""
        c = sim.objects["container"].dims
        inner = c["half_width"] - c["wall"]
        p = self._lower_end_local(sim)
        over = abs(p[0]) < inner and abs(p[1]) < inner
        upright = sim.body_rot("container")[2, 2] > math.cos(
            math.radians(self.max_container_tilt_deg)
        )
        return bool(over and upright and 0.0 < p[2] < c["height"]), bool(over)

    def success(self, sim) -> bool:
        inside, _ = self._inside(sim)
        return inside and gripper_clear(sim, "pen")

    def progress(self, sim) -> int:
        inside, over = self._inside(sim)
        if inside and gripper_clear(sim, "pen"):
            return 4
        if held_by(sim, "pen") is None:
            return 0
        lifted = sim.body_pose("pen")[2] - sim.objects["pen"].base_z > 0.02
        if lifted and over:
            return 3
        return 2 if lifted else 1

    # ------------------------------------------------------------------ expert
    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        infos = self.object_infos()
        hl = infos["pen"].dims["half_length"]
        cdims = infos["container"].dims
        pen = ctx.pos("pen")
        arm = side(pen[0]) or side(ctx.pos("container")[0]) or "left"
        base = m.kin[arm].base[:2]
        # The pen's axis, signed to point away from the arm's base; the fingers close across
        # it with the hand's top (z) along it, as the arm's natural top-down pose has it.
        axis = ctx.rot("pen")[:, 0]
        u = np.array([axis[0], axis[1], 0.0])
        u /= np.linalg.norm(u)
        if float(u[:2] @ (pen[:2] - base)) < 0:
            u = -u
        f = np.cross([0.0, 0.0, 1.0], u)
        R_pick = gripper_frame((0.0, 0.0, -1.0), f)
        grasp = pen + np.array([0.0, 0.0, GRASP_ABOVE_AXIS])
        ctx.stage = 0
        yield from m.move_joints_to(
            arm, grasp + [0, 0, 0.06], R_pick, steps=45, grip=0.7, symmetric=False
        )
        yield from m.move(arm, grasp, steps=25)
        yield from m.gripper(arm, 0.0, steps=12)
        yield from m.hold(5)
        ctx.stage = 1
        yield from m.move(arm, grasp + [0, 0, LIFT_HEIGHT - pen[2]], steps=30)
        if ctx.pos("pen")[2] < pen[2] + 0.05:
            return  # the pen did not come up
        ctx.stage = 2
        # Turn the hand about the vertical so that its top (and the pen's axis) points from
        # the arm's base to the container, and pitch it outward on the way there: the pen
        # tilts with its lower end toward the base (the lean also extends the arm's reach to
        # the far column). Joint space: a Cartesian slerp can pass the wrist singularity and
        # whip the pen; a steeper pitch lets the pen, pinched near the finger tips, slide out.
        cont = ctx.pos("container")
        out = cont[:2] - base
        d = np.array([out[0], out[1], 0.0]) / np.linalg.norm(out)
        p_cmd, R_cmd = m.pose(arm)
        top = R_cmd[:, 2]
        turn = wrap_angle(math.atan2(d[1], d[0]) - math.atan2(top[1], top[0]))
        f = yaw_rotation(turn) @ R_cmd[:, 1]
        a = math.sin(PITCH) * d - math.cos(PITCH) * np.array([0.0, 0.0, 1.0])
        R_tilt = gripper_frame(a, f)
        # The pen's lower end once tilted, relative to its centre; the centre's offset from
        # the hand as it sits now, turned with the hand.
        end = -hl * (math.cos(PITCH) * d + math.sin(PITCH) * np.array([0.0, 0.0, 1.0]))
        offset = R_tilt @ R_cmd.T @ (p_cmd - ctx.pos("pen")) - end
        above = cont + [0.0, 0.0, cdims["height"] + 0.05]
        yield from m.move_joints_to(arm, above + offset, R_tilt, steps=60, symmetric=False)
        yield from m.hold(5)
        # The lower end goes in near the container's near wall, the pen rising over the far
        # one; aim where the pen's lower end really is in the hand (measured twice).
        inner = cdims["half_width"] - cdims["wall"]
        goal = cont - (inner - RELEASE_WALL_GAP) * d
        goal[2] = cont[2] + cdims["wall"] + RELEASE_ABOVE_FLOOR
        for steps, up in ((30, 0.05), (10, 0.05)):
            yield from m.move(
                arm, goal + self._hand_offset(ctx, arm, R_tilt, hl) + [0, 0, up], steps=steps
            )
            yield from m.hold(4)
        ctx.stage = 3
        yield from m.move(arm, goal + self._hand_offset(ctx, arm, R_tilt, hl), steps=25)
        yield from m.hold(3)
        yield from m.gripper(arm, 0.5, steps=8)
        yield from m.hold(15)
        ctx.stage = 4
        p, R = m.pose(arm)
        yield from m.move(arm, p - 0.04 * R[:, 0] + [0, 0, 0.05], steps=20)
        yield from m.home(arm, steps=40)

    @staticmethod
    def _hand_offset(ctx: ExpertContext, arm: str, R_target: np.ndarray, hl: float):
        """Commanded TCP minus the pen's lower end, turned with the hand to ``R_target``."""
        p_cmd, R_cmd = ctx.motion.pose(arm)
        lower, _ = pen_ends(ctx.pose("pen"), hl)
        return R_target @ R_cmd.T @ (p_cmd - lower)
