"""Peg Insertion (pretraining, bimanual): lift the socket and the peg, one in each hand, and
insert the peg into the socket in mid-air (gym-aloha's insertion task on our objects).

Layout: the socket (a square tube 8 cm long with a 3.2 cm opening, open at both ends) on one
half of the table and the 13 x 2 x 2 cm peg on the other (which half is drawn per seed), each
at a uniform |x| in [0.09, 0.17], y in [0.42, 0.62] and turned by a uniform +-90 degrees (both
are symmetric under a half turn).

Success (sim state): the peg's axis, sampled every 5 mm, runs at least 2 cm inside the
socket's opening (points within the tube's length and within its 1.6 cm inner half-width of
its axis), the two axes are within 20 degrees of each other, and both objects are held up
(3 cm or more above their resting heights). Stages: 0 start, 1 grasped (each object is
grasped by an arm), 2 lifted (both 3 cm up, grasped), 3 aligned (both up, axes within 20
degrees and the peg's nearer tip within 3 cm of a socket entrance), 4 inserted (success).

Expert: each arm picks the object on its side top-down at the same time, across its middle
(a pinch off the centre lets the peg swing down about the fingers' axis), lifts it, and
carries it over the table's centre with the axes along x: the socket held 7 cm to its side,
the peg's tip 2 cm outside the socket's entrance. After re-measuring both objects in the
hands, the peg arm turns the peg parallel to the socket's axis, puts its tip 1 cm before
the entrance on that axis and pushes it in 3.5 cm in three pushes, re-centring the tip on
the axis before each (a moving arm drifts a few millimetres off its straight-line command;
the opening leaves 6 mm); both arms then hold.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator

import numpy as np

from toolkit.envs.aloha.tasks.base import ExpertContext, Placement, Task, register_task
from toolkit.envs.aloha.tasks.pretrain import _objects  # noqa: F401  (registers the builders)
from toolkit.envs.aloha.tasks.pretrain._common import (
    carry_to,
    lifted,
    other,
    pick,
    place_rotation,
    together,
)

#: Inserted length (m) of the peg's axis inside the socket that counts as success.
MIN_DEPTH = 0.02
MAX_ANGLE = 20.0
#: Height (m) above rest at which both objects count as held up.
UP = 0.03
#: Where the socket's centre is held (m from the table's centre line along x) and its height.
SOCKET_X, MEET_Y, MEET_Z = 0.07, 0.52, 0.16


def peg_in_socket(sim) -> tuple[float, float, float]:
    """``(inserted length (m), angle between the axes (deg), distance (m) from the peg's
    nearer tip to the nearer socket entrance's centre)`` from the bodies' poses."""
    peg, sock = sim.objects["peg"].dims, sim.objects["socket"].dims
    Rs = sim.body_rot("socket")
    ps = sim.body_pose("socket")[:3]
    Rp = sim.body_rot("peg")
    pp = sim.body_pose("peg")[:3]
    d = Rs.T @ Rp[:, 0]  # the peg's axis in the socket's frame
    c = Rs.T @ (pp - ps)
    s = np.arange(-peg["half_length"], peg["half_length"] + 1e-9, 0.005)
    pts = c[None, :] + s[:, None] * d[None, :]
    L, hi = sock["half_length"], sock["half_inner"]
    inside = (np.abs(pts[:, 0]) <= L) & (np.abs(pts[:, 1]) < hi) & (np.abs(pts[:, 2]) < hi)
    angle = math.degrees(math.acos(min(1.0, abs(float(d[0])))))
    tips = [c + peg["half_length"] * d, c - peg["half_length"] * d]
    entrances = [np.array([L, 0.0, 0.0]), np.array([-L, 0.0, 0.0])]
    gap = min(float(np.linalg.norm(t - e)) for t in tips for e in entrances)
    return float(inside.sum()) * 0.005, angle, gap


@register_task
class PegInsertion(Task):
    name = "peg_insertion"
    description = "insert the peg into the socket with both arms"
    family = "pretrain"
    objects = {"socket": "socket", "peg": "peg"}
    stages = ("start", "grasped", "lifted", "aligned", "inserted")
    max_steps = 400
    abs_x = (0.09, 0.17)
    y_range = (0.42, 0.62)
    yaw_range = math.pi / 2

    def sample_layout(self, rng: np.random.Generator) -> dict[str, Placement]:
        sign = -1.0 if rng.random() < 0.5 else 1.0
        out = {}
        for name, sgn in (("socket", sign), ("peg", -sign)):
            xy = (sgn * float(rng.uniform(*self.abs_x)), float(rng.uniform(*self.y_range)))
            out[name] = Placement(xy, float(rng.uniform(-self.yaw_range, self.yaw_range)))
        return out

    def _up(self, sim) -> bool:
        return lifted(sim, "peg", UP) and lifted(sim, "socket", UP)

    def success(self, sim) -> bool:
        depth, angle, _ = peg_in_socket(sim)
        return bool(depth >= MIN_DEPTH and angle < MAX_ANGLE and self._up(sim))

    def progress(self, sim) -> int:
        depth, angle, gap = peg_in_socket(sim)
        up = self._up(sim)
        if up and depth >= MIN_DEPTH and angle < MAX_ANGLE:
            return 4
        if up and angle < MAX_ANGLE and (gap < 0.03 or depth > 0):
            return 3
        pairs = sim.contact_pairs()
        holders = {sim.held_by("peg", pairs), sim.held_by("socket", pairs)}
        if None in holders or len(holders) < 2:
            return 0
        return 2 if up else 1

    # ------------------------------------------------------------------ expert
    def script(self, ctx: ExpertContext) -> Iterator[np.ndarray]:
        m = ctx.motion
        s_arm = "left" if ctx.pos("socket")[0] < 0 else "right"
        p_arm = other(s_arm)
        toward_peg = 1.0 if p_arm == "right" else -1.0  # world x from the socket to the peg
        peg = self.object_infos()["peg"].dims
        sock = self.object_infos()["socket"].dims

        def socket_grasp(c: ExpertContext) -> tuple[np.ndarray, float]:
            return c.pos("socket") + [0, 0, 0.012], c.yaw("socket") + math.pi / 2

        # The peg's end nearer the socket goes in: k is the local x sign of the other end.
        k = 1.0 if float(ctx.rot("peg")[0, 0]) * toward_peg > 0 else -1.0

        def peg_grasp(c: ExpertContext) -> tuple[np.ndarray, float]:
            return c.pos("peg") + [0, 0, 0.012], c.yaw("peg") + math.pi / 2

        ok = yield from _both(
            ctx,
            pick(ctx, s_arm, "socket", socket_grasp, lift=0.1, stages=(0, 0)),
            pick(ctx, p_arm, "peg", peg_grasp, lift=0.1, stages=(0, 0)),
        )
        if not ok:
            return
        ctx.stage = 2
        s_goal = np.array([-toward_peg * SOCKET_X, MEET_Y, MEET_Z])
        entrance_x = s_goal[0] + toward_peg * sock["half_length"]
        # The peg lies along x with its local +x pointing away from the socket when k = +1.
        peg_yaw = 0.0 if k * toward_peg > 0 else math.pi
        p_goal = np.array([entrance_x + toward_peg * (0.02 + peg["half_length"]), MEET_Y, MEET_Z])
        R_s, _ = place_rotation(ctx, s_arm, "socket", s_goal, 0.0, period=math.pi)
        R_p, _ = place_rotation(ctx, p_arm, "peg", p_goal, peg_yaw, period=2 * math.pi)
        yield from together(
            ctx,
            carry_to(ctx, s_arm, "socket", s_goal, R_s, above=0.0, passes=(60,)),
            carry_to(ctx, p_arm, "peg", p_goal, R_p, above=0.0, passes=(60,)),
        )
        yield from together(
            ctx,
            carry_to(ctx, s_arm, "socket", s_goal, R_s, above=0.0, passes=(12,)),
            carry_to(ctx, p_arm, "peg", p_goal, R_p, above=0.0, passes=(12,)),
        )
        # Line the peg up with the socket, both as they actually sit in the hands now.
        ctx.stage = 3
        for steps in (20, 10):
            # Turn the peg's hand so the peg's axis lines up with the socket's (the peg sags a
            # little in the hand), then put its tip 1 cm before the entrance on that axis.
            tip, axis_s, entrance = self._frames(ctx, toward_peg)
            a_p = tip - ctx.pos("peg")
            a_p /= np.linalg.norm(a_p)
            p_cmd, R_cmd = m.pose(p_arm)
            R_new = _align(a_p, -axis_s) @ R_cmd
            yield from m.move(p_arm, p_cmd, R_new, steps=steps)
            yield from m.hold(4)
            tip, axis_s, entrance = self._frames(ctx, toward_peg)
            start = entrance + 0.01 * axis_s
            yield from m.move(p_arm, m.pose(p_arm)[0] + (start - tip), steps=steps)
            yield from m.hold(4)
        # Push in, re-centring the tip on the socket's axis before each push: a moving arm
        # lags its command (joint damping), which shows as a drift of a few millimetres off
        # the axis; the opening leaves 6 mm.
        for depth, steps in ((0.005, 25), (0.02, 20), (0.035, 20)):
            tip, axis_s, entrance = self._frames(ctx, toward_peg)
            err = entrance - depth * axis_s - tip
            yield from m.move(p_arm, m.pose(p_arm)[0] + err, steps=steps)
            yield from m.hold(3)
        yield from m.hold(20)  # stage 4 (inserted) comes from the observed progress

    def _frames(
        self, ctx: ExpertContext, toward_peg: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The peg's tip that goes in, the socket's axis (pointing toward the peg) and the
        entrance's centre, all in the world, measured now."""
        peg = self.object_infos()["peg"].dims
        sock = self.object_infos()["socket"].dims
        a_s = ctx.rot("socket")[:, 0]
        if float(a_s[0]) * toward_peg < 0:
            a_s = -a_s
        entrance = ctx.pos("socket") + sock["half_length"] * a_s
        a_p = ctx.rot("peg")[:, 0]
        tips = [ctx.pos("peg") + sgn * peg["half_length"] * a_p for sgn in (1.0, -1.0)]
        tip = min(tips, key=lambda t: float(np.linalg.norm(t - entrance)))
        return tip, a_s, entrance


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(3, 3)`` smallest rotation taking unit vector ``a`` onto unit vector ``b``."""
    v = np.cross(a, b)
    c = float(np.clip(a @ b, -1.0, 1.0))
    s = float(np.linalg.norm(v))
    if s < 1e-9:
        return np.eye(3)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / s
    angle = math.atan2(s, c)
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def _both(
    ctx: ExpertContext, a: Generator[np.ndarray, None, bool], b: Generator[np.ndarray, None, bool]
) -> Generator[np.ndarray, None, bool]:
    """Run two picks side by side; returns True when both succeeded."""
    results: dict[int, bool] = {}

    def wrap(i: int, g: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        results[i] = yield from g

    yield from together(ctx, wrap(0, a), wrap(1, b))
    return bool(results.get(0)) and bool(results.get(1))
