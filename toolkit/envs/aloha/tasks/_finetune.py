"""Shared pieces of the CLAMP fine-tuning tasks: 2x3-grid layouts with a clearance rule,
object footprints, and small read-outs the success checks and experts share.

Layouts (CLAMP Appendix C): three objects permuted over the back ("top") row of a 2x3 grid,
three over the front ("bottom") row, each turned by a uniform random yaw. The base class
re-draws layouts whose objects intersect; :func:`grid_layout` additionally re-draws (from the
same generator, so still reproducible) layouts where two objects come closer than a minimum
gap in a 2-D footprint model, because a gripper needs room around the object it grasps (an
open ViperX gripper is about 12 cm across its finger pads).

Footprints: each object kind is a list of 2-D capsules (segment end points and a radius, in
the object's frame, metres) that covers its outline seen from above (:data:`FOOTPRINTS`);
kinds without one use a disc of the object's :attr:`ObjectInfo.radius`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from toolkit.envs.aloha.tasks.base import Placement, grid_slots

__all__ = [
    "FOOTPRINTS",
    "finger_distances",
    "footprint_gaps",
    "gripper_clear",
    "grid_layout",
    "held_by",
    "rect_footprint",
    "segment_distances",
    "side",
    "to_local",
]

#: One footprint capsule: (x0, y0, x1, y1, radius) in the object's frame (metres).
Capsule = tuple[float, float, float, float, float]


def rect_footprint(hw: float, hd: float, rows: int = 3) -> list[Capsule]:
    """A ``2 hw x 2 hd`` rectangle as ``rows`` capsules along x (corners rounded by ~hd/rows)."""
    r = hd / rows
    return [(-hw + r, -hd + r * (2 * i + 1), hw - r, -hd + r * (2 * i + 1), r) for i in range(rows)]


def _banana() -> list[Capsule]:
    out = []
    for a, x, y in ((-0.45, -0.043, 0.01), (0.0, 0.0, 0.0), (0.45, 0.043, 0.01)):
        dx, dy = 0.024 * math.cos(a), 0.024 * math.sin(a)
        out.append((x - dx, y - dy, x + dx, y + dy, 0.015))
    return out


#: Footprints of the object kinds the fine-tuning tasks use (see the module docstring); they
#: follow the builders in :mod:`toolkit.envs.aloha.objects`.
FOOTPRINTS: dict[str, list[Capsule]] = {
    "mug": [(0.0, 0.0, 0.0, 0.0, 0.024), (0.024, 0.0, 0.044, 0.0, 0.006)],
    "plate": [(0.0, 0.0, 0.0, 0.0, 0.06)],
    "bowl": [(0.0, 0.0, 0.0, 0.0, 0.05)],
    "container": rect_footprint(0.04, 0.04, 2),
    "pen": [(-0.058, 0.0, 0.058, 0.0, 0.0075)],
    "banana": _banana(),
    "screwdriver": [(-0.08, 0.0, 0.0, 0.0, 0.011), (0.0, 0.0, 0.06, 0.0, 0.004)],
    "can_opener": [(-0.09, 0.0, 0.0, 0.0, 0.009), (0.02, -0.005, 0.02, 0.005, 0.02)],
    "magnifier": [(-0.08, 0.0, 0.0, 0.0, 0.008), (0.035, 0.0, 0.035, 0.0, 0.035)],
    "thumb_drive": [(-0.02, 0.0, 0.032, 0.0, 0.01)],
    "scissors": [
        (0.0, 0.0, 0.08, 0.0, 0.006),
        (-0.02, 0.016, -0.02, 0.016, 0.016),
        (-0.02, -0.016, -0.02, -0.016, 0.016),
    ],
}


def side(x: float, dead: float = 0.03) -> str | None:
    """The arm on the side of table position ``x`` (None within ``dead`` of the centre)."""
    if x < -dead:
        return "left"
    if x > dead:
        return "right"
    return None


def finger_distances(sim, arm: str, name: str, cap: float = 0.05) -> tuple[float, float]:
    """Distances (m, capped at ``cap``) from ``arm``'s left and right finger pads to object
    ``name``. Contact lists flicker while an object is pinched (the solver pushes the surfaces
    a hair apart, and a contact at zero distance comes and goes), so holding and letting go
    are judged by distance instead."""
    mj = sim._mj
    fromto = np.zeros(6)
    out = []
    for finger in sim.finger_geoms[arm]:
        d = cap
        for g in sim.geom_ids[name]:
            d = min(d, float(mj.mj_geomDistance(sim.model, sim.data, finger, g, cap, fromto)))
        out.append(d)
    return out[0], out[1]


def held_by(sim, name: str, tol: float = 0.002) -> str | None:
    """The arm whose two finger pads are both within ``tol`` of object ``name``, or None."""
    for arm in ("left", "right"):
        left, right = finger_distances(sim, arm, name)
        if left < tol and right < tol:
            return arm
    return None


def gripper_clear(sim, name: str, tol: float = 0.002) -> bool:
    """No finger pad of either arm is within ``tol`` of object ``name``."""
    return all(min(finger_distances(sim, arm, name)) >= tol for arm in ("left", "right"))


def to_local(sim, name: str, p) -> np.ndarray:
    """World point ``p`` (3,) in the frame of body ``name``."""
    return sim.body_rot(name).T @ (np.asarray(p, dtype=np.float64) - sim.body_pose(name)[:3])


# --------------------------------------------------------------------------------------------
# Footprint geometry (2-D capsules)
# --------------------------------------------------------------------------------------------


def _point_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances ``(...)`` from points ``p`` to segments ``a b`` (all ``(..., 2)``)."""
    ab = b - a
    denom = np.maximum((ab * ab).sum(-1), 1e-16)
    s = np.clip(((p - a) * ab).sum(-1) / denom, 0.0, 1.0)
    return np.linalg.norm(p - (a + s[..., None] * ab), axis=-1)


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def segment_distances(a0, a1, b0, b1) -> np.ndarray:
    """Distances between 2-D segments ``a0 a1`` and ``b0 b1`` (broadcast ``(..., 2)``
    arrays; 0 where they cross)."""
    a0, a1, b0, b1 = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (a0, a1, b0, b1))
    )
    d = np.minimum(
        np.minimum(_point_segment(a0, b0, b1), _point_segment(a1, b0, b1)),
        np.minimum(_point_segment(b0, a0, a1), _point_segment(b1, a0, a1)),
    )
    cross = (_cross(b0, b1, a0) * _cross(b0, b1, a1) < 0) & (
        _cross(a0, a1, b0) * _cross(a0, a1, b1) < 0
    )
    return np.where(cross, 0.0, d)


def footprint_gaps(
    footprints: Mapping[str, Sequence[Capsule]], layout: Mapping[str, Placement]
) -> dict[tuple[str, str], float]:
    """Footprint distance (m, negative = overlapping) of every pair of placed objects, keyed
    by name pairs in ``layout`` order."""
    names = list(layout)
    p0, p1, rad, owner = [], [], [], []
    for i, n in enumerate(names):
        caps = np.asarray(footprints[n], dtype=np.float64).reshape(-1, 5)
        c, s = math.cos(layout[n].yaw), math.sin(layout[n].yaw)
        R = np.array([[c, -s], [s, c]])
        t = np.asarray(layout[n].xy, dtype=np.float64)
        p0.append(caps[:, 0:2] @ R.T + t)
        p1.append(caps[:, 2:4] @ R.T + t)
        rad.append(caps[:, 4])
        owner.append(np.full(len(caps), i))
    P0, P1 = np.concatenate(p0), np.concatenate(p1)
    r, own = np.concatenate(rad), np.concatenate(owner)
    d = segment_distances(P0[:, None], P1[:, None], P0[None], P1[None]) - r[:, None] - r[None]
    out = {}
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            out[(a, names[j])] = float(d[np.ix_(own == i, own == j)].min())
    return out


def _shortfall(gaps: Mapping[tuple[str, str], float], min_gap) -> float:
    """How far (m) the closest pair falls short of its required gap (<= 0: all clear).

    ``min_gap``: a float for every pair, or a mapping with a ``"default"`` and entries for
    name pairs (``("screwdriver", "caddy")``, either order)."""
    if not isinstance(min_gap, Mapping):
        return max((min_gap - g for g in gaps.values()), default=-math.inf)
    default = float(min_gap.get("default", 0.0))
    worst = -math.inf
    for (a, b), g in gaps.items():
        need = min_gap.get((a, b), min_gap.get((b, a), default))
        worst = max(worst, float(need) - g)
    return worst


def grid_layout(
    rng: np.random.Generator,
    top: Sequence[str],
    bottom: Sequence[str],
    footprints: Mapping[str, Sequence[Capsule]],
    yaw_range: float | Mapping[str, float] = math.pi,
    jitter: float = 0.005,
    min_gap: float | Mapping = 0.0,
    tries: int = 300,
    slots: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> dict[str, Placement]:
    """Objects over a 2x3 grid (:func:`~toolkit.envs.aloha.tasks.base.grid_slots`): ``top``
    permuted over the back row, ``bottom`` over the front row, each turned by a uniform
    ``+-yaw_range`` (a float, or per object name) and moved by up to ``jitter``. ``slots``
    (``{"top": [(x, y) x3], "bottom": [...]}``) replaces the default grid.

    Draws again (same generator) while two footprints are closer than ``min_gap`` (a float,
    or per name pair with a ``"default"``, see :func:`_shortfall`). After ``tries`` draws
    the draw closest to the rule is returned (the task's reset still re-draws layouts whose
    objects intersect).
    """
    slots = grid_slots() if slots is None else slots
    best, best_short = None, math.inf
    for _ in range(max(1, int(tries))):
        out = {}
        for row, names in (("top", top), ("bottom", bottom)):
            order = rng.permutation(len(slots[row]))[: len(names)]
            for name, k in zip(names, order, strict=True):
                x, y = slots[row][int(k)]
                dx, dy = rng.uniform(-jitter, jitter, size=2)
                yr = yaw_range[name] if isinstance(yaw_range, Mapping) else yaw_range
                out[name] = Placement((x + dx, y + dy), float(rng.uniform(-yr, yr)))
        short = _shortfall(footprint_gaps(footprints, out), min_gap)
        if short <= 0.0:
            return out
        if short < best_short:
            best, best_short = out, short
    return best
