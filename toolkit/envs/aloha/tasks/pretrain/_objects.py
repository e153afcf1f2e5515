"""Objects of the pretraining tasks, registered into :data:`toolkit.envs.aloha.objects.BUILDERS`.

Same conventions as :mod:`toolkit.envs.aloha.objects` (primitives, explicit masses, torsional
friction, the body origin on the object's vertical axis, ``base_z`` = origin height when
resting, yaw 0 as described per builder). Importing this module registers:

Free: ``cube`` (4 cm, red), ``block`` (5 cm, green; the base of a stack), ``bar`` (a
16 x 2.5 x 3 cm baton handed between the arms), ``fruit_bowl`` (20 cm across, 3.5 cm tall),
``bin`` (an open tray 18 x 12 cm, 4.5 cm walls), ``peg`` (a 13 x 2 x 2 cm square peg) and
``socket`` (a square tube 8 cm long, 3.2 cm inner opening, open at both ends).
Fixed: ``target`` (a flat 9 cm square marker on the table, visual only: nothing collides
with it, so pushed objects slide over it).
"""

from __future__ import annotations

import math

from toolkit.envs.aloha.objects import BUILDERS
from toolkit.envs.aloha.scene import ObjectInfo, Part, SceneBuilder
from toolkit.utils.errors import ToolkitError

__all__ = ["PRETRAIN_BUILDERS"]

_FRICTION_GRASP = (1.2, 0.005, 0.0001)


def _yaw(a: float) -> tuple[float, float, float, float]:
    return (math.cos(a / 2), 0.0, 0.0, math.sin(a / 2))


def _box(
    sb: SceneBuilder, name: str, half, rgba, mass: float, friction=_FRICTION_GRASP
) -> ObjectInfo:
    body = sb.add_body(name)
    geoms = sb.add_parts(body, [Part("box", half)], rgba, mass=mass, friction=friction)
    hx, hy, hz = half
    dims = {"half_x": hx, "half_y": hy, "half_z": hz}
    return ObjectInfo(name, "free", math.hypot(hx, hy), 2 * hz, geoms, dims=dims, base_z=hz)


def cube(sb: SceneBuilder, name: str = "cube", rgba=(0.85, 0.15, 0.12, 1.0)) -> ObjectInfo:
    """A 4 cm cube (50 g); origin at its centre."""
    return _box(sb, name, (0.02, 0.02, 0.02), rgba, 0.05)


def block(sb: SceneBuilder, name: str = "block", rgba=(0.2, 0.65, 0.3, 1.0)) -> ObjectInfo:
    """A 5 cm cube (150 g): heavy enough to stay put while a cube is stacked on it."""
    return _box(sb, name, (0.025, 0.025, 0.025), rgba, 0.15)


def bar(sb: SceneBuilder, name: str = "bar", rgba=(0.9, 0.6, 0.1, 1.0)) -> ObjectInfo:
    """A light baton 16 cm long (local x), 2.5 cm wide, 3 cm tall (40 g), darker at the +x end
    (so its direction shows in images); origin at its centre. The gripper pinches with only
    ~2-3 N (position-controlled fingers, kp 200 N/m), so a pinch 4 cm off the centre let the
    bar swing down about the closing axis while the hand turned (5 mm torsional friction, as
    the other objects): it is light, wide (a wider bar is pinched harder) and has a 3 cm
    torsional friction patch (the finger pads cover about 3 x 3 cm of it)."""
    hx, hy, hz = 0.08, 0.0125, 0.015
    body = sb.add_body(name)
    parts = [
        Part("box", (hx / 2, hy, hz), pos=(-hx / 2, 0, 0)),
        Part("box", (hx / 2, hy, hz), pos=(hx / 2, 0, 0), rgba=(0.6, 0.35, 0.05, 1.0)),
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=0.04, friction=(1.2, 0.03, 0.0001))
    dims = {"half_length": hx, "half_width": hy, "half_height": hz}
    return ObjectInfo(name, "free", math.hypot(hx, hy), 2 * hz, geoms, dims=dims, base_z=hz)


def _ring(radius: float, half_height: float, z: float, n: int, thick: float) -> list[Part]:
    parts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        parts.append(
            Part(
                "box",
                (thick / 2, radius * math.tan(math.pi / n) + thick / 2, half_height),
                pos=(math.cos(a) * radius, math.sin(a) * radius, z),
                quat=_yaw(a),
            )
        )
    return parts


def fruit_bowl(
    sb: SceneBuilder, name: str = "fruit_bowl", rgba=(0.8, 0.35, 0.3, 1.0)
) -> ObjectInfo:
    """A wide, shallow bowl 20 cm across and 3.5 cm tall (24-sided wall, 400 g): a banana
    (16 cm end to end) lies flat in it; origin at the base centre. ``dims["inner_radius"]``
    is the wall's inner face."""
    r, h, t = 0.1, 0.035, 0.005
    body = sb.add_body(name)
    parts = [Part("cylinder", (r - t, 0.003), pos=(0, 0, 0.003))]
    parts += _ring(r - t / 2, h / 2 - 0.003, h / 2 + 0.003, 24, t)
    geoms = sb.add_parts(body, parts, rgba, mass=0.4)
    dims = {"radius": r, "inner_radius": r - t, "height": h, "floor": 0.006}
    return ObjectInfo(name, "free", r, h, geoms, dims=dims, base_z=0.0)


def bin_(sb: SceneBuilder, name: str = "bin", rgba=(0.35, 0.45, 0.7, 1.0)) -> ObjectInfo:
    """An open tray 18 cm long (local x), 12 cm wide, 4.5 cm tall (300 g); origin at the base
    centre. ``dims["inner_x"]`` / ``["inner_y"]`` are the inner half extents."""
    hx, hy, h, t = 0.09, 0.06, 0.045, 0.005
    body = sb.add_body(name)
    parts = [Part("box", (hx, hy, t / 2), pos=(0, 0, t / 2))]
    zc = t + (h - t) / 2
    parts += [
        Part("box", (t / 2, hy, (h - t) / 2), pos=(hx - t / 2, 0, zc)),
        Part("box", (t / 2, hy, (h - t) / 2), pos=(-hx + t / 2, 0, zc)),
        Part("box", (hx - t, t / 2, (h - t) / 2), pos=(0, hy - t / 2, zc)),
        Part("box", (hx - t, t / 2, (h - t) / 2), pos=(0, -hy + t / 2, zc)),
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=0.3)
    dims = {"half_x": hx, "half_y": hy, "inner_x": hx - t, "inner_y": hy - t, "height": h}
    dims["floor"] = t
    return ObjectInfo(name, "free", math.hypot(hx, hy), h, geoms, dims=dims, base_z=0.0)


def peg(sb: SceneBuilder, name: str = "peg", rgba=(0.9, 0.2, 0.2, 1.0)) -> ObjectInfo:
    """A square peg 13 x 2 x 2 cm along local x (40 g); origin at its centre."""
    info = _box(sb, name, (0.065, 0.01, 0.01), rgba, 0.04)
    info.dims["half_length"], info.dims["half_width"] = 0.065, 0.01
    return info


def socket(sb: SceneBuilder, name: str = "socket", rgba=(0.2, 0.5, 0.85, 1.0)) -> ObjectInfo:
    """A square tube along local x: 8 cm long, 4.4 cm outside, a 3.2 cm square opening through
    it (80 g); origin at its centre (the tube's axis)."""
    hl, ho, t = 0.04, 0.022, 0.006
    hi = ho - t
    body = sb.add_body(name)
    parts = [
        Part("box", (hl, ho, t / 2), pos=(0, 0, -ho + t / 2)),
        Part("box", (hl, ho, t / 2), pos=(0, 0, ho - t / 2)),
        Part("box", (hl, t / 2, hi), pos=(0, ho - t / 2, 0)),
        Part("box", (hl, t / 2, hi), pos=(0, -ho + t / 2, 0)),
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=0.08, friction=_FRICTION_GRASP)
    dims = {"half_length": hl, "half_outer": ho, "half_inner": hi}
    return ObjectInfo(name, "free", math.hypot(hl, ho), 2 * ho, geoms, dims=dims, base_z=ho)


def target(sb: SceneBuilder, name: str = "target", rgba=(0.95, 0.85, 0.2, 1.0)) -> ObjectInfo:
    """A flat 9 cm square marker, 1 mm thick, lying on the table (visual only: no collisions,
    so it never blocks a pushed object and never counts as an overlap)."""
    half = 0.045
    body = sb.add_body(name, kind="fixed")
    geoms = sb.add_parts(body, [Part("box", (half, half, 0.0005), pos=(0, 0, 0.0005))], rgba, 0.1)
    for g in geoms:
        geom = sb.spec.geom(g)
        geom.contype, geom.conaffinity = 0, 0
    return ObjectInfo(name, "fixed", half * math.sqrt(2), 0.001, geoms, dims={"half": half})


#: The builders this module adds to ``BUILDERS`` (kind -> builder).
PRETRAIN_BUILDERS = {
    "cube": cube,
    "block": block,
    "bar": bar,
    "fruit_bowl": fruit_bowl,
    "bin": bin_,
    "peg": peg,
    "socket": socket,
    "target": target,
}

for _kind, _fn in PRETRAIN_BUILDERS.items():
    if BUILDERS.get(_kind, _fn) is not _fn:
        raise ToolkitError(f"ALOHA object kind {_kind!r} is already registered by another module")
    BUILDERS[_kind] = _fn
