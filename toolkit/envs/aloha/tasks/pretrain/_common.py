"""Shared pieces of the pretraining tasks: layout helpers, success read-outs and the expert's
pick / carry / place primitives (built on :class:`toolkit.envs.aloha.ik.Motion`).

The primitives are generators of 14-d actions that experts chain with ``yield from``; the
ones that can fail return a bool (``ok = yield from pick(...)``). They follow the fine-tuning
experts (``tasks/mug_on_plate.py``): a top-down pick leaning away from the arm's base
(:func:`~toolkit.envs.aloha.frames.pick_frame`), a lift that checks the object came up (and
retries), and a place that turns the hand about the vertical, then aims where the object, as
it actually sits in the hand, lands (grasp slip and actuator sag both show in the measured
object pose).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator
from typing import ClassVar

import numpy as np

from toolkit.envs.aloha.ik import Motion, pick_frame, wrap_angle, yaw_rotation
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, grid_slots

__all__ = [
    "MIN_PICK_Z",
    "PickPlaceTask",
    "carry_to",
    "grid_layout",
    "hand_offset",
    "lifted",
    "other",
    "pick",
    "line_check",
    "place_rotation",
    "place_rotations",
    "release",
    "side",
    "straight_line_ok",
    "tilt_of",
    "to_local",
    "together",
]

Actions = Iterator[np.ndarray]

#: Lowest TCP height of a top-down pick: the finger tips (3.4 cm past the TCP) end about 3 mm
#: above the table. Lower, the fingers press on the table and friction stalls their closing.
MIN_PICK_Z = 0.036


def side(x: float, dead: float = 0.03) -> str | None:
    """The arm on the side of table position ``x`` (None within ``dead`` of the centre)."""
    if x < -dead:
        return "left"
    if x > dead:
        return "right"
    return None


def other(arm: str) -> str:
    return "right" if arm == "left" else "left"


def to_local(sim, name: str, p) -> np.ndarray:
    """World point ``p`` (3,) in the frame of body ``name``."""
    pose = sim.body_pose(name)
    return sim.body_rot(name).T @ (np.asarray(p, dtype=np.float64) - pose[:3])


def tilt_of(sim, name: str) -> float:
    """Angle (degrees) between body ``name``'s local z axis and the world vertical."""
    return math.degrees(math.acos(float(np.clip(sim.body_rot(name)[2, 2], -1.0, 1.0))))


def lifted(sim, name: str, height: float = 0.02) -> bool:
    """Object ``name``'s origin is ``height`` above its resting height."""
    return bool(float(sim.body_pose(name)[2]) - sim.objects[name].base_z > height)


def grid_layout(
    rng: np.random.Generator,
    top: tuple[str, ...],
    bottom: tuple[str, ...],
    yaw_range: float = math.pi,
    jitter: float = 0.005,
    yaws: dict[str, float] | None = None,
) -> dict[str, Placement]:
    """Objects over the 2x3 grid of :func:`grid_slots` (CLAMP's layout): ``top`` names
    permuted over the back row's slots, ``bottom`` over the front row's (up to 3 each), each
    turned by a uniform ``+-yaw_range`` (``yaws[name]`` overrides the range per object) and
    moved by up to ``jitter``."""
    slots = grid_slots()
    yaws = yaws or {}
    out = {}
    for row, names in (("top", top), ("bottom", bottom)):
        order = rng.permutation(3)[: len(names)]
        for name, k in zip(names, order, strict=True):
            x, y = slots[row][int(k)]
            dx, dy = rng.uniform(-jitter, jitter, size=2)
            r = yaws.get(name, yaw_range)
            out[name] = Placement((x + dx, y + dy), float(rng.uniform(-r, r)))
    return out


# --------------------------------------------------------------------------------------------
# Expert primitives
# --------------------------------------------------------------------------------------------


def hand_offset(ctx: ExpertContext, arm: str, name: str, R_target: np.ndarray) -> np.ndarray:
    """Commanded TCP minus object ``name``'s origin, turned with the hand to ``R_target``."""
    p_cmd, R_cmd = ctx.motion.pose(arm)
    return R_target @ R_cmd.T @ (p_cmd - ctx.pos(name))


def pick(
    ctx: ExpertContext,
    arm: str,
    name: str,
    grasp: Callable[[ExpertContext], tuple[np.ndarray, float]],
    clear: float = 0.06,
    lift: float = 0.09,
    attempts: int = 2,
    tilt: float = 0.35,
    stages: tuple[int, int] = (0, 1),
    close_steps: int = 12,
) -> Generator[np.ndarray, None, bool]:
    """Top-down pick of ``name`` by ``arm``: ``grasp(ctx) -> (TCP point (3,), finger yaw)``
    (re-evaluated per attempt; raised to :data:`MIN_PICK_Z` at least); approach ``clear``
    above it, descend, close, lift by ``lift``. Returns True once the object came up with the
    hand (half the lift at least)."""
    m = ctx.motion
    base = m.kin[arm].base[:2]
    for attempt in range(attempts):
        z0 = float(ctx.pos(name)[2])
        point, finger_yaw = grasp(ctx)
        point = np.array([point[0], point[1], max(float(point[2]), MIN_PICK_Z)])
        R, _ = pick_frame(base, point, finger_yaw, tilt=tilt)
        ctx.stage = stages[0]
        steps = 45 if attempt == 0 else 30
        yield from m.move_joints_to(arm, point + [0, 0, clear], R, steps=steps, grip=1.0)
        yield from m.move(arm, point, steps=25)
        yield from m.gripper(arm, 0.0, steps=close_steps)
        yield from m.hold(5)
        ctx.stage = stages[1]
        yield from m.move(arm, point + [0, 0, lift], steps=25)
        if float(ctx.pos(name)[2]) > z0 + lift / 2:
            return True
        ctx.stage = stages[0]  # it slipped out: let go, back off, try again
        yield from m.gripper(arm, 1.0, steps=8)
        p, _ = m.pose(arm)
        yield from m.move(arm, p + [0, 0, 0.04], steps=12)
    return False


def place_rotations(
    ctx: ExpertContext,
    arm: str,
    name: str,
    goal_xy,
    yaw: float | None = None,
    period: float = math.pi,
) -> list[tuple[np.ndarray, float]]:
    """Hand orientations for carrying ``name`` to ``goal_xy``, best first: the held hand
    turned about the vertical so that ``name``'s local x ends at world ``yaw`` (modulo
    ``period``: the object is symmetric under that turn; candidates whose lean points away
    from the arm's base and that turn less come first), or, with ``yaw=None``, the one turn
    that makes the hand lean away from the base there. Each is ``(R (3, 3), turn (rad))``."""
    m = ctx.motion
    R_held = m.pose(arm)[1]
    lean = R_held[:2, 0]
    out = np.asarray(goal_xy, dtype=np.float64)[:2] - m.kin[arm].base[:2]
    if yaw is None:
        turn = wrap_angle(math.atan2(out[1], out[0]) - math.atan2(lean[1], lean[0]))
        return [(yaw_rotation(turn) @ R_held, turn)]
    base_turn = wrap_angle(yaw - ctx.yaw(name))
    n = max(1, round(2 * math.pi / period))
    scored = []
    for k in range(n):
        turn = wrap_angle(base_turn + k * period)
        lean_t = yaw_rotation(turn)[:2, :2] @ lean
        # Lean outward, and prefer small turns (a big turn of a held object swings it wide).
        score = float(lean_t @ out) / (np.linalg.norm(lean_t) * np.linalg.norm(out) + 1e-9)
        scored.append((score - 0.3 * abs(turn), turn))
    scored.sort(key=lambda st: -st[0])
    return [(yaw_rotation(turn) @ R_held, turn) for _, turn in scored]


def place_rotation(
    ctx: ExpertContext,
    arm: str,
    name: str,
    goal_xy,
    yaw: float | None = None,
    period: float = math.pi,
) -> tuple[np.ndarray, float]:
    """The best of :func:`place_rotations`: ``(R (3, 3), turn (rad))``."""
    return place_rotations(ctx, arm, name, goal_xy, yaw, period)[0]


def line_check(m: Motion, arm: str, pos, rot: np.ndarray, steps: int) -> tuple[int, float, float]:
    """Dry run of :meth:`Motion.move` of ``arm`` to ``pos`` / ``rot`` on the commanded state
    (restored afterwards): ``(IK misses on the way, end distance to pos (m), largest joint
    change of one step (rad))``."""
    q, fails = m.q[arm].copy(), m.ik_failures
    jump, prev = 0.0, q.copy()
    for _ in m.move(arm, pos, rot, steps=steps):
        jump = max(jump, float(np.abs(m.q[arm] - prev).max()))
        prev = m.q[arm].copy()
    p_end, _ = m.pose(arm)
    out = (m.ik_failures - fails, float(np.linalg.norm(p_end - np.asarray(pos))), jump)
    m.q[arm], m.ik_failures = q, fails
    return out


def straight_line_ok(m: Motion, arm: str, pos, rot: np.ndarray, steps: int) -> bool:
    """Whether a straight-line move gets there smoothly: it ends within 1 cm of ``pos`` and
    no step turns a joint by more than 0.2 rad (IK misses of the orientation alone on the way,
    e.g. the wrist rotation resting on its limit, are harmless; a wrist wound into a limit
    stops short or snaps round, and a snap shakes a held object loose)."""
    _, err, jump = line_check(m, arm, pos, rot, steps)
    return err < 0.01 and jump < 0.2


def carry_to(
    ctx: ExpertContext,
    arm: str,
    name: str,
    goal,
    R_place: np.ndarray,
    above: float = 0.07,
    passes: tuple[int, ...] = (50, 10),
) -> Iterator[np.ndarray]:
    """Carry ``name`` so that its origin ends ``above`` the world point ``goal`` (hand at
    ``R_place``), re-measuring the object in the hand on every pass. A straight-line pass
    whose warm-started IK would stop short (a long reach across the table with a large turn
    can wind the wrist into a limit) goes through joint space to the best IK goal instead
    (only then: a joint-space move swings a held object more)."""
    m = ctx.motion
    goal = np.asarray(goal, dtype=np.float64)
    for steps in passes:
        target = goal + hand_offset(ctx, arm, name, R_place) + [0, 0, above]
        if straight_line_ok(m, arm, target, R_place, steps):
            yield from m.move(arm, target, R_place, steps=steps)
        else:
            yield from m.move_joints_to(arm, target, R_place, steps=steps, symmetric=False)
        yield from m.hold(4)


def together(ctx: ExpertContext, *moves: Iterator[np.ndarray]) -> Actions:
    """Run motion generators of different arms side by side, one control step each per
    action (each generator only changes its own arm's command in the shared ``Motion``)."""
    active = list(moves)
    while active:
        for g in list(active):
            try:
                next(g)
            except StopIteration:
                active.remove(g)
        yield ctx.motion.action()


def release(
    ctx: ExpertContext,
    arm: str,
    up: float = 0.08,
    home: bool = True,
    grip: float = 1.0,
    stage: int | None = None,
) -> Actions:
    """Open ``arm``'s gripper to ``grip`` (then report ``stage``), back off upward and go
    home."""
    m = ctx.motion
    yield from m.gripper(arm, grip, steps=10)
    if stage is not None:
        ctx.stage = stage
    p, _ = m.pose(arm)
    yield from m.move(arm, p + [0, 0, up], steps=20)
    if home:
        yield from m.home(arm, steps=40)


# --------------------------------------------------------------------------------------------
# Pick and place tasks
# --------------------------------------------------------------------------------------------


class PickPlaceTask(Task):
    """Pick ``item`` and put it in / on ``receptacle`` (one arm).

    Subclasses set ``item``, ``receptacle``, ``top`` / ``bottom`` (the grid rows) and
    implement :meth:`grasp` (TCP point and finger yaw), :meth:`placed_in` (item resting in
    the receptacle, from sim state), :meth:`over` (item above the receptacle's opening) and
    :meth:`goal` (where the item's origin is released). Stages: 0 start, 1 grasped (both
    fingers of an arm touch the item), 2 lifted (grasped, 2 cm up), 3 above the receptacle
    (grasped, over it), 4 placed (success: :meth:`placed_in` and no finger touches the item).
    """

    family = "pretrain"
    stages = ("start", "grasped", "lifted", "above", "placed")
    item: ClassVar[str] = ""
    receptacle: ClassVar[str] = ""
    top: ClassVar[tuple[str, ...]] = ()
    bottom: ClassVar[tuple[str, ...]] = ()
    yaws: ClassVar[dict[str, float]] = {}
    clear: ClassVar[float] = 0.06
    lift: ClassVar[float] = 0.1
    above: ClassVar[float] = 0.07
    tilt: ClassVar[float] = 0.35
    #: Gripper opening at release (less than 1 inside narrow receptacles).
    release_grip: ClassVar[float] = 1.0

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        return grid_layout(rng, self.top, self.bottom, yaws=self.yaws)

    # ------------------------------------------------------------------ state
    def placed_in(self, sim) -> bool:
        raise NotImplementedError

    def over(self, sim) -> bool:
        raise NotImplementedError

    def success(self, sim) -> bool:
        return bool(self.placed_in(sim)) and not sim.touched_by_gripper(self.item)

    def progress(self, sim) -> int:
        pairs = sim.contact_pairs()
        if self.placed_in(sim) and not sim.touched_by_gripper(self.item, pairs):
            return 4
        if sim.held_by(self.item, pairs) is None:
            return 0
        if not lifted(sim, self.item):
            return 1
        return 3 if self.over(sim) else 2

    # ------------------------------------------------------------------ expert
    def grasp(self, ctx: ExpertContext) -> tuple[np.ndarray, float]:
        """TCP point (3,) and finger closing yaw of the pick."""
        raise NotImplementedError

    def place_yaw(self, ctx: ExpertContext) -> tuple[float | None, float]:
        """World yaw of the item's local x at release (None: any) and its symmetry period."""
        return None, math.pi

    def goal(self, ctx: ExpertContext, yaw: float) -> np.ndarray:
        """World position of the item's origin at release, given its yaw then."""
        raise NotImplementedError

    def choose_arm(self, ctx: ExpertContext) -> str:
        return side(ctx.pos(self.item)[0]) or side(ctx.pos(self.receptacle)[0]) or "left"

    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        arm = self.choose_arm(ctx)
        ok = yield from pick(
            ctx, arm, self.item, self.grasp, clear=self.clear, lift=self.lift, tilt=self.tilt
        )
        if not ok:
            return
        ctx.stage = 2
        yaw, period = self.place_yaw(ctx)
        rough = ctx.pos(self.receptacle)
        # The first hand turn (best first) whose straight carry reaches cleanly: a turn that
        # rests the wrist rotation on its limit misses the yaw; one that snaps the wrist
        # round shakes the object loose.
        options = []
        for R, turn in place_rotations(ctx, arm, self.item, rough, yaw, period):
            goal = self.goal(ctx, wrap_angle(ctx.yaw(self.item) + turn))
            target = goal + hand_offset(ctx, arm, self.item, R) + [0, 0, self.above]
            fails, err, jump = line_check(m, arm, target, R, 50)
            options.append((fails > 0, err >= 0.01 or jump >= 0.2, R, goal))
        clean = [o for o in options if not o[0] and not o[1]]
        smooth = [o for o in options if not o[1]]
        _, _, R_place, goal = (clean or smooth or options)[0]
        yield from carry_to(ctx, arm, self.item, goal, R_place, above=self.above)
        ctx.stage = 3
        target = goal + hand_offset(ctx, arm, self.item, R_place)
        yield from m.move(arm, target, steps=25)
        yield from m.hold(3)
        yield from release(ctx, arm, grip=self.release_grip, stage=4)
