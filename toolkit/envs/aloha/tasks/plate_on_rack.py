"""Plate on Rack (CLAMP Appendix C): grasp the plate and stand it upright in the drying rack,
between two of its dividers.

Layout: two objects. The dish rack (:func:`toolkit.envs.aloha.objects.rack`, fixed to the
table; 5 slots between 6 dividers 9 cm tall, 4 cm apart) stands in the top (back) half of the
workspace, its base centre at x in [-0.06, 0.06], y in [0.66, 0.70], turned about the
vertical by a uniform +-86.4 degrees (CLAMP's range); the plate (12 cm across, 100 g: a
saucer) lies flat in the bottom (front) half, x in [-0.06, 0.06], y in [0.38, 0.44], turned
by a uniform +-180 degrees. (The x ranges keep the plate within the top-down reach of both
arms, since the rack's orientation decides which arm can approach its slots.)

Success (sim state): the plate stands in a slot: its centre, in the rack's frame, lies
between two neighbouring dividers (``|x - slot centre| < pitch / 2 - divider half
thickness``), within the dividers' length (``|y| < divider half length``) and below their
top; the plate is upright (its normal within 30 degrees of horizontal) and faces the
dividers (its normal within 30 degrees of the rack's x axis); no finger is within 2 mm of
it. Stages: 0 start, 1 grasped (both finger pads of an arm within 2 mm of the plate),
2 upright (grasped and tilted more than 60 degrees from flat), 3 above the rack (grasped,
upright, its centre over the rack's base), 4 placed (success). CLAMP's real-robot partial
success (a successful grasp of the plate) is stage >= 1.

Expert (:meth:`PlateOnRack._plan` picks the arm, slot and approach): the arm pinches the
plate's rim top-down on the side away from its base, fingers closing across the rim, and
flips the plate up toward itself: the hand turns about the rim's tangent while the TCP
follows the arc about the plate's near edge, which stays on the table (the plate pivots on
it), until the plate stands on that edge, 78 degrees up, with the hand on top. It lifts the
plate, which now hangs from the pinch, well above the rack; turns about the vertical so the
plate faces the dividers while carrying it (slowly, in joint space) over one of the middle
three slots; lowers it until its lower edge is 4.5 cm into the slot; lets go (the plate
drops to the rack's base between the dividers, which are smooth: friction 0.4) and goes
home. The rim pinch is the weak point: the finger tips hold the 8 mm rim by about 5 mm, and
the plate sometimes swings off the lower finger before the release (it then usually drops
into the slot below anyway).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.ik import Motion, flipped, gripper_frame, wrap_angle, yaw_rotation
from toolkit.envs.aloha.tasks._finetune import gripper_clear, held_by, to_local
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task

#: CLAMP's rack orientation range (degrees either way about the vertical).
RACK_YAW_DEG = 86.4
#: Plate mass (kg): a 12 cm saucer; the default 250 g plate of mug_on_plate is too heavy for
#: the ViperX's rim pinch (the finger tips hold the 8 mm rim by 5 mm).
PLATE_MASS = 0.1
#: Finger-tip height above the plate's disc when pinching its rim.
TIP_ABOVE_DISC = 0.0035
TIP_BEYOND_TCP = 0.034
#: Smallest distance (radians) to a joint limit that a planned path may come (see
#: :meth:`PlateOnRack._plan`).
JOINT_MARGIN = 0.2
#: Farthest rim point (m from the arm's base, horizontally) a top-down pinch reaches.
MAX_PICK_REACH = 0.6
#: How far the flip turns the plate up (radians): not quite upright, because the plate then
#: hangs from its rim about 11 degrees off vertical (its centre of mass lies below the disc's
#: mid-plane side of the pinch), and stopping there leaves it nothing to swing to.
FLIP_ANGLE = math.radians(78.0)
#: Lower edge of the plate below the dividers' top when it is let go.
RELEASE_DEPTH = 0.045
#: Height of the TCP above the dividers' top while the plate is carried (it hangs ~13 cm
#: below the TCP).
CARRY_CLEARANCE = 0.2
#: Steps of the carry to the rack: slowly, because the plate hangs on the lower finger by
#: its rim and swings off it when the hand stops short.
CARRY_STEPS = 130


@register_task
class PlateOnRack(Task):
    name = "plate_on_rack"
    description = "put the plate upright in the dish rack"
    family = "finetune"
    objects = {"rack": "rack", "plate": "plate"}
    stages = ("start", "grasped", "upright", "above_rack", "placed")
    max_steps = 400
    yaw_range = math.radians(RACK_YAW_DEG)
    rack_x = (-0.06, 0.06)
    rack_y = (0.66, 0.70)
    plate_x = (-0.06, 0.06)
    plate_y = (0.38, 0.44)
    #: Success thresholds (degrees).
    max_upright_tilt_deg = 30.0
    max_facing_deg = 30.0

    def build(self, sb) -> None:
        sb.add("rack", "rack")
        sb.add("plate", "plate", mass=PLATE_MASS)
        self._infos = dict(sb.objects)

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        rack = (float(rng.uniform(*self.rack_x)), float(rng.uniform(*self.rack_y)))
        rack_yaw = float(rng.uniform(-self.yaw_range, self.yaw_range))
        plate = (float(rng.uniform(*self.plate_x)), float(rng.uniform(*self.plate_y)))
        return {
            "rack": Placement(rack, rack_yaw),
            "plate": Placement(plate, float(rng.uniform(-math.pi, math.pi))),
        }

    # ------------------------------------------------------------------ success / progress
    def _slot_state(self, sim) -> tuple[bool, bool, bool]:
        """(centre within a slot and below the dividers' top, plate upright and facing the
        dividers, centre over the rack's base)."""
        d = sim.objects["rack"].dims
        p = to_local(sim, "rack", sim.body_pose("plate")[:3])
        n = sim.body_rot("rack").T @ sim.body_rot("plate")[:, 2]  # plate normal, rack frame
        upright = abs(n[2]) < math.sin(math.radians(self.max_upright_tilt_deg))
        facing = abs(n[0]) > math.cos(math.radians(self.max_facing_deg))
        slots = round(d["slots"])
        k = min(max(math.floor((p[0] + d["pitch"] * slots / 2) / d["pitch"]), 0), slots - 1)
        centre = -d["pitch"] * slots / 2 + (k + 0.5) * d["pitch"]
        between = abs(p[0] - centre) < d["pitch"] / 2 - d["divider_half_thickness"]
        within = abs(p[1]) < d["divider_half_length"]
        below = 0.0 < p[2] < d["base"] + d["divider_height"]
        over = abs(p[0]) < d["half_width"] and abs(p[1]) < d["half_depth"]
        return bool(between and within and below), bool(upright and facing), bool(over)

    def success(self, sim) -> bool:
        in_slot, upright, _ = self._slot_state(sim)
        return in_slot and upright and gripper_clear(sim, "plate")

    def progress(self, sim) -> int:
        in_slot, upright_facing, over = self._slot_state(sim)
        if in_slot and upright_facing and gripper_clear(sim, "plate"):
            return 4
        if held_by(sim, "plate") is None:
            return 0
        tilt = math.degrees(math.acos(min(1.0, abs(float(sim.body_rot("plate")[2, 2])))))
        if tilt <= 60.0:
            return 1
        return 3 if over else 2

    # ------------------------------------------------------------------ expert
    def _places(self, ctx: ExpertContext, arm: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(slot centre (3,), approach (3,)) options for ``arm``, best first: the middle three
        slots, approached along the rack's x axis either way, ranked by how far the approach
        turns from the arm's radial direction to the slot."""
        d = self.object_infos()["rack"].dims
        R = ctx.rot("rack")
        slots = round(d["slots"])
        x = R[:, 0].copy()
        x[2] = 0.0
        x /= np.linalg.norm(x)
        base = ctx.motion.kin[arm].base[:2]
        options = []
        for k in range(1, slots - 1):
            slot = ctx.pos("rack") + R @ [-d["pitch"] * slots / 2 + (k + 0.5) * d["pitch"], 0, 0]
            for a in (x, -x):
                options.append((_off_radial(a, slot[:2] - base), slot, a))
        options.sort(key=lambda o: o[0])
        return [(slot, a) for _, slot, a in options]

    def _candidates(self, ctx: ExpertContext) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(arm, slot centre (3,), approach (3,)) plans, best first: each arm's best
        :meth:`_places` option, ranked by its turn from the radial direction; an arm that
        cannot reach the plate's far rim top-down comes last."""
        c = ctx.pos("plate")
        reach = self.object_infos()["plate"].dims["radius"]
        ranked = []
        for arm in ("left", "right"):
            base = ctx.motion.kin[arm].base[:2]
            far = float(np.linalg.norm(c[:2] - base)) + reach
            for slot, a in self._places(ctx, arm)[:2]:
                cost = _off_radial(a, slot[:2] - base) + (10.0 if far > MAX_PICK_REACH else 0.0)
                ranked.append((cost, arm, slot, a))
        ranked.sort(key=lambda item: item[0])
        return [(arm, slot, a) for _, arm, slot, a in ranked]

    def _plan(self, ctx: ExpertContext):
        """(arm, slot, approach a, flip direction r, first grasp frame). The plate is pinched
        on its rim at ``+r`` from its centre, r pointing away from the arm's base, and
        flipped up toward the base so that its normal ends along ``r``; then the hand turns
        about the vertical to approach the slot along ``a``. (Flips along other directions
        are reachable too, but the plate then slides out of the pinch.) Tried in turn for
        each candidate of :meth:`_candidates`, with both finger orders: the first plan whose
        whole commanded path, run through the IK beforehand with the plate where the flip
        nominally leaves it, stays within reach and at least ``JOINT_MARGIN`` inside the
        joint limits wins (the plate really hangs a little elsewhere); else the reachable one
        with the widest margin; else the best candidate."""
        c = ctx.pos("plate")
        fallback, best, best_margin = None, None, -math.inf
        for arm, slot, a in self._candidates(ctx):
            base = ctx.motion.kin[arm].base
            r = np.array([c[0] - base[0], c[1] - base[1], 0.0])
            r /= np.linalg.norm(r)
            R0 = gripper_frame((0.0, 0.0, -1.0), r)
            for R in (R0, flipped(R0)):
                m = Motion(ctx.obs["qpos"], ctx.motion.kin)
                margin = _path_margin(m, arm, self._path(m, arm, c, r, R, slot, a, None))
                plan = (arm, slot, a, r, R)
                fallback = fallback or plan
                if margin >= JOINT_MARGIN:
                    return plan
                if margin > best_margin:
                    best, best_margin = plan, margin
        return best or fallback

    def _path(self, m: Motion, arm, c, r, R0, slot, a, ctx: ExpertContext | None):
        """The expert's commanded motion (generator of actions). With ``ctx`` the hand offsets
        come from the observed plate and the script's stages are set; without it (a dry run
        for :meth:`_plan`) the plate is assumed to sit where the flip nominally leaves it."""
        infos = self.object_infos()
        pd, rd = infos["plate"].dims, infos["rack"].dims
        ez = np.array([0.0, 0.0, 1.0])
        # Pinch the rim on the far side, fingers closing along r (across the rim).
        grasp = c + (pd["radius"] - 0.004) * r
        grasp[2] = c[2] + pd["top"] + TIP_ABOVE_DISC + TIP_BEYOND_TCP
        yield from m.move_joints_to(arm, grasp + [0, 0, 0.06], R0, 35, grip=0.45, symmetric=False)
        yield from m.move(arm, grasp, steps=15)
        yield from m.gripper(arm, 0.0, steps=10)
        yield from m.hold(3)
        if ctx is not None:
            ctx.stage = 1
        # Flip: hand and plate turn together about the rim's tangent, pivoting on the
        # plate's near edge, until the plate stands on it with the hand on top.
        pivot = c - pd["radius"] * r
        pivot[2] = c[2] - infos["plate"].base_z
        yield from self._flip(m, arm, pivot, r, FLIP_ANGLE, steps=70)
        yield from m.hold(5)
        # Nominal (dry run): the plate's band that enters the slot sits just above the pivot.
        band = RELEASE_DEPTH / 2
        p_end, R_end = m.pose(arm)
        nominal = R_end.T @ (p_end - (pivot + band * ez))
        if ctx is not None:
            ctx.stage = 2
        # Lift the plate clear of the rack's dividers before the carry.
        p_cmd, _ = m.pose(arm)
        p_cmd[2] = max(p_cmd[2] + 0.07, rd["base"] + rd["divider_height"] + CARRY_CLEARANCE)
        yield from m.move(arm, p_cmd, steps=25)
        yield from m.hold(5)
        if ctx is not None and ctx.pos("plate")[2] < c[2] + 0.04:
            return  # the plate did not come up
        # Face the dividers: a turn about the vertical only (the plate keeps hanging as it
        # does) until the hand approaches along the rack's x axis. The plate hangs from its
        # rim a few degrees off vertical (its centre of mass is not below the pinch), so what
        # goes over the slot's centre line is the plate's lower part, the band that enters
        # the slot, not its centre (measured on the way).
        R_place = _facing(m.pose(arm)[1], a)

        def offset() -> np.ndarray:
            if ctx is None:
                return R_place @ nominal
            return self._hand_offset(ctx, arm, R_place, band)

        yield from self._carry(m, arm, slot, R_place, offset, ctx)

    def _carry(
        self, m: Motion, arm: str, slot, R_place, offset, ctx: ExpertContext | None = None
    ) -> Iterator[np.ndarray]:
        """Over the slot (joint space to the nearest IK solution, at the lift's height), down
        to 3 cm above the dividers, then down until the plate's edge is in the slot;
        ``offset()`` gives the hand's offset from the plate's band (turned to ``R_place``)."""
        rd = self.object_infos()["rack"].dims
        band = RELEASE_DEPTH / 2
        top = slot[2] + rd["base"] + rd["divider_height"]
        above = slot.copy()
        above[2] = top + 0.03 + band
        low = above.copy()
        low[2] = top - band
        high = above + offset()
        high[2] = m.pose(arm)[0][2]
        yield from _move_joints_near(m, arm, high, R_place, steps=CARRY_STEPS)
        yield from m.hold(5)
        yield from m.move(arm, above + offset(), steps=20)
        yield from m.hold(5)
        if ctx is not None:
            ctx.stage = 3
        yield from m.move(arm, low + offset(), steps=20)

    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        arm, slot, a, r, R0 = self._plan(ctx)
        c = ctx.pos("plate")
        ctx.stage = 0
        yield from self._path(m, arm, c, r, R0, slot, a, ctx)
        if ctx.stage < 3:
            return
        yield from m.hold(5)
        yield from m.gripper(arm, 1.0, steps=8)
        yield from m.hold(12)
        ctx.stage = 4
        # Back the fingers off the rim along the approach before going up.
        p, _ = m.pose(arm)
        yield from m.move(arm, p - 0.07 * a, steps=15)
        yield from m.move(arm, p - 0.07 * a + [0.0, 0.0, 0.05], steps=10)
        yield from m.home(arm, steps=40)

    @staticmethod
    def _flip(m: Motion, arm: str, pivot: np.ndarray, r: np.ndarray, angle: float, steps: int):
        """Turn the hand (and the plate it pinches) by ``angle`` about the horizontal axis
        normal to ``r`` through ``pivot``, lifting the far side (+r) over toward the base."""
        ez = np.array([0.0, 0.0, 1.0])
        p0, R0 = m.pose(arm)

        def rot(v: np.ndarray, phi: float) -> np.ndarray:
            # r -> cos r + sin ez, ez -> cos ez - sin r (the far side comes up).
            vr, vz = float(v @ r), float(v @ ez)
            rest = v - vr * r - vz * ez
            return (
                vr * (math.cos(phi) * r + math.sin(phi) * ez)
                + vz * (math.cos(phi) * ez - math.sin(phi) * r)
                + rest
            )

        v0 = p0 - pivot
        for i in range(1, steps + 1):
            phi = (0.5 - 0.5 * math.cos(math.pi * i / steps)) * angle
            R = np.stack([rot(R0[:, k], phi) for k in range(3)], axis=1)
            m.q[arm] = m.solve(arm, pivot + rot(v0, phi), R)
            yield m.action()

    def _hand_offset(
        self, ctx: ExpertContext, arm: str, R_target: np.ndarray, up: float
    ) -> np.ndarray:
        """Commanded TCP minus the plate's point ``up`` above its lowest point (along the
        plate), turned with the hand to ``R_target``."""
        p_cmd, R_cmd = ctx.motion.pose(arm)
        return R_target @ R_cmd.T @ (p_cmd - self._low_point(ctx, up))

    def _low_point(self, ctx: ExpertContext, up: float) -> np.ndarray:
        """The plate's point ``up`` above its lowest rim point, along the plate's plane."""
        n = ctx.rot("plate")[:, 2]
        down = np.array([0.0, 0.0, -1.0]) - n * float(-n[2])
        norm = float(np.linalg.norm(down))
        if norm < 1e-6:  # lying flat: no lowest point along the plane
            return ctx.pos("plate")
        down /= norm
        radius = self.object_infos()["plate"].dims["radius"]
        return ctx.pos("plate") + (radius - up) * down


def _off_radial(direction: np.ndarray, radial: np.ndarray) -> float:
    """Angle (radians) between a horizontal direction and a radial one (from an arm's base)."""
    a = math.atan2(float(direction[1]), float(direction[0]))
    b = math.atan2(float(radial[1]), float(radial[0]))
    return abs(wrap_angle(a - b))


def _move_joints_near(m: Motion, arm: str, pos, R: np.ndarray, steps: int) -> Iterator[np.ndarray]:
    """Joint-space interpolation to the IK solution nearest the current command (a solve
    warm-started from it; :meth:`Motion.goal`'s multi-start search as the fallback). The
    multi-start goal prefers an unwound wrist, which can lie on another branch: the
    interpolation then swings the hand through orientations far from both ends, and the
    plate, pinched by its rim, falls out."""
    res = m.kin[arm].solve(pos, R, m.q[arm], iters=200)
    q1 = res.q if res.ok else m.goal(arm, pos, R, symmetric=False)
    q0 = m.q[arm].copy()
    for i in range(1, steps + 1):
        m.q[arm] = q0 + (q1 - q0) * (0.5 - 0.5 * math.cos(math.pi * i / steps))
        yield m.action()


def _path_margin(m: Motion, arm: str, path: Iterator[np.ndarray]) -> float:
    """Run ``path`` (a generator driving ``m``) to its end; the smallest distance (radians)
    of ``arm``'s commanded joints to their limits along it, or -inf if an IK solve failed."""
    ik = m.kin[arm]
    margin = math.inf
    for _ in path:
        q = m.q[arm]
        margin = min(margin, float(np.min(np.minimum(q - ik.lo, ik.hi - q))))
    return -math.inf if m.ik_failures else margin


def _facing(R_held: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``R_held`` turned about the vertical so that the hand's heading is along ``a``."""
    heading = R_held[:2, 0]
    turn = wrap_angle(math.atan2(a[1], a[0]) - math.atan2(heading[1], heading[0]))
    return yaw_rotation(turn) @ R_held
