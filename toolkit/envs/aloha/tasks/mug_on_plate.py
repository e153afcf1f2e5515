"""Mug on Plate (CLAMP Appendix C): grasp the mug and put it on the plate.

Layout: six objects in the 2x3 grid: plate, bowl and container permuted over the three top
(back) slots, mug, pen and banana over the three bottom (front) slots; each randomly turned by
up to +-180 degrees (plus up to 5 mm of jitter); layouts where objects intersect are re-drawn.

Success (sim state): the mug stands upright (tilted < 20 degrees) on the plate (its centre
within ``plate radius - 2 cm`` of the plate's axis, its base within -4..+8 mm of the plate's
top) and no finger touches it. Stages: 0 start, 1 grasped (both fingers of an arm touch the
mug), 2 lifted (grasped and 2 cm above its resting height), 3 above the plate (grasped, over
the plate), 4 placed (success). CLAMP's real-robot partial success is stage >= 1.

Expert: the arm on the mug's side (the plate's side when the mug is in the middle column)
picks the mug top-down with the fingers closing across its body, perpendicular to the
handle, lifts it, carries it over the plate (re-measuring the mug in the hand to correct the
target), lowers it, opens and retreats.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.ik import pick_frame, wrap_angle, yaw_rotation
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, grid_slots, register_task

#: Object heights above the grasp: TCP sits this far above the mug's centre when grasping.
GRASP_ABOVE_CENTER = 0.012
#: Clearance of the mug's base above the plate when released.
RELEASE_GAP = 0.004


@register_task
class MugOnPlate(Task):
    name = "mug_on_plate"
    description = "pick up the mug and put it on the plate"
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
    stages = ("start", "grasped", "lifted", "above_plate", "placed")
    max_steps = 400
    yaw_range = math.pi
    jitter = 0.005
    #: Success thresholds (see the module docstring).
    max_tilt_deg = 20.0
    center_margin = 0.02
    base_gap = (-0.004, 0.008)
    grasp_attempts = 2

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        slots = grid_slots()
        out = {}
        for row, names in (("top", self.top), ("bottom", self.bottom)):
            order = rng.permutation(len(names))
            for name, k in zip(names, order, strict=True):
                x, y = slots[row][int(k)]
                dx, dy = rng.uniform(-self.jitter, self.jitter, size=2)
                out[name] = Placement(
                    (x + dx, y + dy), float(rng.uniform(-self.yaw_range, self.yaw_range))
                )
        return out

    # ------------------------------------------------------------------ success / progress
    def _on_plate(self, sim) -> tuple[bool, bool]:
        """(mug upright over the plate with its base on the plate, xy within the plate)."""
        mug, plate = sim.objects["mug"], sim.objects["plate"]
        mp = sim.body_pose("mug")[:3]
        pp = sim.body_pose("plate")[:3]
        R = sim.body_rot("mug")
        upright = R[2, 2] > math.cos(math.radians(self.max_tilt_deg))
        within = float(np.linalg.norm(mp[:2] - pp[:2])) < plate.dims["radius"] - self.center_margin
        gap = (mp[2] - mug.base_z) - (pp[2] + plate.dims["top"])
        on = upright and within and self.base_gap[0] <= gap <= self.base_gap[1]
        return on, within

    def success(self, sim) -> bool:
        on, _ = self._on_plate(sim)
        return on and not sim.touched_by_gripper("mug")

    def progress(self, sim) -> int:
        pairs = sim.contact_pairs()
        on, within = self._on_plate(sim)
        if on and not sim.touched_by_gripper("mug", pairs):
            return 4
        if sim.held_by("mug", pairs) is None:
            return 0
        lifted = sim.body_pose("mug")[2] - sim.objects["mug"].base_z > 0.02
        if lifted and within:
            return 3
        return 2 if lifted else 1

    # ------------------------------------------------------------------ expert
    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        infos = self.object_infos()
        hh = infos["mug"].dims["half_height"]
        arm = _side(ctx.pos("mug")[0]) or _side(ctx.pos("plate")[0]) or "left"
        base = m.kin[arm].base[:2]
        clear = hh + 0.04  # TCP height above the grasp point that keeps the finger tips clear
        lift = 0.09
        for attempt in range(self.grasp_attempts):
            mug = ctx.pos("mug")
            if ctx.rot("mug")[2, 2] < math.cos(math.radians(30.0)):
                return  # knocked over: nothing sensible left to do
            grasp = mug + np.array([0.0, 0.0, GRASP_ABOVE_CENTER])
            # Fingers close across the mug's body, perpendicular to the handle (local +x).
            R_pick, _ = pick_frame(base, grasp, ctx.yaw("mug") + math.pi / 2)
            ctx.stage = 0
            steps = 45 if attempt == 0 else 25
            yield from m.move_joints_to(arm, grasp + [0, 0, clear], R_pick, steps=steps, grip=1.0)
            yield from m.move(arm, grasp, steps=25)
            yield from m.gripper(arm, 0.0, steps=12)
            yield from m.hold(5)
            ctx.stage = 1
            yield from m.move(arm, grasp + [0, 0, lift], steps=25)
            if ctx.pos("mug")[2] > mug[2] + lift / 2:
                break
            ctx.stage = 0  # the mug slipped out: let go, back off, try again
            yield from m.gripper(arm, 1.0, steps=8)
            p, _ = m.pose(arm)
            yield from m.move(arm, p + [0, 0, 0.04], steps=12)
        else:
            return
        ctx.stage = 2
        plate = ctx.pos("plate")
        top = plate[2] + infos["plate"].dims["top"]
        goal = np.array([plate[0], plate[1], top + infos["mug"].base_z + RELEASE_GAP])
        # Turn the hand about the vertical so that it leans away from the base at the plate too
        # (the mug stays upright: a turn about the vertical), then aim where the mug, as it
        # actually sits in the hand (slip and arm sag both show up), lands on the plate.
        # The hand as it holds the mug (the approach may have ended finger-swapped).
        R_held = m.pose(arm)[1]
        lean = R_held[:2, 0]
        out = goal[:2] - base
        turn = wrap_angle(math.atan2(out[1], out[0]) - math.atan2(lean[1], lean[0]))
        R_place = yaw_rotation(turn) @ R_held
        for steps in (50, 10):
            above = goal + self._hand_offset(ctx, arm, R_place) + [0, 0, 0.07]
            yield from m.move(arm, above, R_place, steps=steps)
            yield from m.hold(4)
        ctx.stage = 3
        yield from m.move(arm, goal + self._hand_offset(ctx, arm, R_place), steps=25)
        yield from m.hold(3)
        yield from m.gripper(arm, 1.0, steps=10)
        ctx.stage = 4
        p, _ = m.pose(arm)
        yield from m.move(arm, p + [0, 0, 0.08], steps=20)
        yield from m.home(arm, steps=40)

    @staticmethod
    def _hand_offset(ctx: ExpertContext, arm: str, R_target: np.ndarray) -> np.ndarray:
        """Commanded TCP minus the mug's centre, turned with the hand to ``R_target``."""
        p_cmd, R_cmd = ctx.motion.pose(arm)
        return R_target @ R_cmd.T @ (p_cmd - ctx.pos("mug"))


def _side(x: float, dead: float = 0.03) -> str | None:
    if x < -dead:
        return "left"
    if x > dead:
        return "right"
    return None
