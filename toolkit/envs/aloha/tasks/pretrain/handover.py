"""Handover Bar (pretraining, bimanual): pick the bar up with one arm and hand it to the other.

Layout: the 14 cm bar lies on one half of the table (drawn per seed), at a uniform |x| in
[0.08, 0.17], y in [0.42, 0.62], turned by a uniform +-180 degrees. The arm on that half is
the giver, the other one the receiver (:attr:`HandoverBar.giver` is set by :meth:`reset`
from the layout).

Success (sim state): the receiver grasps the bar (both of its fingers touch it), no finger of
the giver touches it, and the bar's centre is at least 6 cm above its resting height.
Stages: 0 start, 1 grasped (the giver grasps the bar), 2 lifted (the giver holds it 2 cm or
more up), 3 both holding (both arms grasp it; or the receiver holds it alone below 6 cm),
4 handed over (success).

Expert: the giver picks the bar top-down 4 cm from its centre (fingers across the bar), at
the end whose other end already points toward the receiver, lifts it and carries it to a meeting point above the table's centre, turning it so
that its free end points at the receiver, while the receiver comes over the meeting point;
the receiver then grasps the free end top-down, the giver lets go and goes home while the
receiver lifts the bar a little more.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from toolkit.envs.aloha.ik import pick_frame, yaw_rotation
from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task
from toolkit.envs.aloha.tasks.pretrain import _objects  # noqa: F401  (registers the builders)
from toolkit.envs.aloha.tasks.pretrain._common import (
    carry_to,
    lifted,
    other,
    pick,
    place_rotation,
    side,
    together,
)

#: Height (m) above its resting height at which the receiver must hold the bar.
HOLD_HEIGHT = 0.06
#: Meeting point of the bar's centre (world, m).
MEET = (0.0, 0.52, 0.16)
#: Grasp points along the bar (m from its centre): the giver's and the receiver's ends.
GRASP_X = 0.04


@register_task
class HandoverBar(Task):
    name = "handover_bar"
    description = "pick up the bar and hand it over to the other arm"
    family = "pretrain"
    objects = {"bar": "bar"}
    stages = ("start", "grasped", "lifted", "both_holding", "handed_over")
    max_steps = 400
    abs_x = (0.08, 0.17)
    y_range = (0.42, 0.62)

    def __init__(self) -> None:
        super().__init__()
        #: The arm on the bar's starting half (set by :meth:`reset`).
        self.giver = "left"

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        sign = -1.0 if rng.random() < 0.5 else 1.0
        x = sign * float(rng.uniform(*self.abs_x))
        y = float(rng.uniform(*self.y_range))
        return {"bar": Placement((x, y), float(rng.uniform(-math.pi, math.pi)))}

    def reset(self, sim, seed: int) -> dict[str, Placement]:
        layout = super().reset(sim, seed)
        self.giver = "left" if layout["bar"].xy[0] < 0 else "right"
        return layout

    @property
    def receiver(self) -> str:
        return other(self.giver)

    def success(self, sim) -> bool:
        pairs = sim.contact_pairs()
        giver = set(sim.finger_geoms[self.giver])
        return (
            sim.grasping(self.receiver, "bar", pairs)
            and not sim.touching(giver, sim.geom_ids["bar"], pairs)
            and lifted(sim, "bar", HOLD_HEIGHT)
        )

    def progress(self, sim) -> int:
        if self.success(sim):
            return 4
        pairs = sim.contact_pairs()
        by_giver = sim.grasping(self.giver, "bar", pairs)
        by_receiver = sim.grasping(self.receiver, "bar", pairs)
        if by_receiver:
            return 3
        if by_giver:
            return 2 if lifted(sim, "bar", 0.02) else 1
        return 0

    # ------------------------------------------------------------------ expert
    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        giver = side(ctx.pos("bar")[0], dead=0.0) or "left"
        receiver = other(giver)
        toward_receiver = 1.0 if receiver == "right" else -1.0  # world x direction

        # The giver holds the end whose other (free) end already points toward the receiver
        # (local x sign s of the grasp point): the hand then turns the bar by 90 degrees at
        # most on the way (a fast half turn swings the bar about the pinch).
        s = -1.0 if math.cos(ctx.yaw("bar")) * toward_receiver > 0 else 1.0

        def grasp_end(c: ExpertContext) -> tuple[np.ndarray, float]:
            R = yaw_rotation(c.yaw("bar"))
            p = c.pos("bar") + R @ np.array([s * GRASP_X, 0.0, 0.0]) + [0, 0, 0.012]
            return p, c.yaw("bar") + math.pi / 2

        ok = yield from pick(ctx, giver, "bar", grasp_end, lift=0.1)
        if not ok:
            return
        ctx.stage = 2
        meet = np.array(MEET)
        # Free end (local -s x) toward the receiver: local x points along -s * toward_receiver.
        yaw = 0.0 if -s * toward_receiver > 0 else math.pi
        R_carry, _ = place_rotation(ctx, giver, "bar", meet, yaw, period=2 * math.pi)
        r_point = meet + np.array([toward_receiver * GRASP_X, 0.0, 0.006])
        R_recv, _ = pick_frame(m.kin[receiver].base[:2], r_point, math.pi / 2, tilt=0.35)
        yield from together(
            ctx,
            carry_to(ctx, giver, "bar", meet, R_carry, above=0.0, passes=(60,)),
            m.move_joints_to(receiver, r_point + [0, 0, 0.07], R_recv, steps=50, grip=1.0),
        )
        yield from carry_to(ctx, giver, "bar", meet, R_carry, above=0.0, passes=(12,))

        # The receiver grasps the free end where it actually is now.
        R = yaw_rotation(ctx.yaw("bar"))
        point = ctx.pos("bar") + R @ np.array([-s * GRASP_X, 0.0, 0.0]) + [0, 0, 0.012]
        R_recv, _ = pick_frame(
            m.kin[receiver].base[:2], point, ctx.yaw("bar") + math.pi / 2, tilt=0.35
        )
        yield from m.move(receiver, point + [0, 0, 0.07], R_recv, steps=20, symmetric=True)
        yield from m.move(receiver, point, steps=25)
        yield from m.gripper(receiver, 0.0, steps=12)
        yield from m.hold(5)
        ctx.stage = 3
        yield from m.gripper(giver, 1.0, steps=10)
        ctx.stage = 4
        p_g, _ = m.pose(giver)
        p_r, _ = m.pose(receiver)
        yield from together(
            ctx,
            m.move(giver, p_g + [0, 0, 0.06], steps=20),
            m.move(receiver, p_r + [toward_receiver * 0.04, 0, 0.03], steps=25),
        )
        yield from m.home(giver, steps=40)
