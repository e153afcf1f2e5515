"""Objects of the ALOHA scenes, built from primitives (boxes, cylinders, capsules).

Each builder takes a :class:`~toolkit.envs.aloha.scene.SceneBuilder` and a name, adds one body
(plus child bodies for articulated objects) and returns its
:class:`~toolkit.envs.aloha.scene.ObjectInfo`. Frames: the body origin sits on the object's
vertical axis; ``base_z`` is its height above the table when the object rests upright; yaw 0
is the orientation described in each builder. Masses are set explicitly (spread over the
parts by volume); every contact uses torsional friction (condim 4) so pinched objects hold.

Free objects (grasped and moved): ``mug``, ``plate``, ``bowl``, ``container``, ``pen``,
``banana``, ``screwdriver``, ``can_opener``, ``magnifier``, ``thumb_drive``, ``scissors``.
Fixed objects (mocap; placed per episode, never pushed): ``drawer`` (a two-drawer cabinet on
slide joints), ``rack`` (a dish rack with dividers), ``caddy`` (two compartments).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from toolkit.envs.aloha.scene import ObjectInfo, Part, SceneBuilder, _geom_volume

__all__ = ["BUILDERS"]

_FRICTION_GRASP = (1.2, 0.005, 0.0001)
#: Quaternions turning a part's local z axis (cylinder / capsule axis) onto x and onto y.
_Z_TO_X = (math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0)
_Z_TO_Y = (math.cos(math.pi / 4), -math.sin(math.pi / 4), 0.0, 0.0)


def _yaw(a: float) -> tuple[float, float, float, float]:
    return (math.cos(a / 2), 0.0, 0.0, math.sin(a / 2))


def _qmul(a, b) -> tuple[float, ...]:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return (
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    )


# --------------------------------------------------------------------------------------------
# Free objects
# --------------------------------------------------------------------------------------------


def mug(sb: SceneBuilder, name: str = "mug", rgba=(0.85, 0.85, 0.9, 1.0)) -> ObjectInfo:
    """A mug 7 cm tall, 4.8 cm across, handle toward local +x; origin at its centre."""
    r, hh = 0.024, 0.035
    body = sb.add_body(name)
    parts = [
        Part("cylinder", (r, hh)),
        # Dark disc at the rim: the opening (a solid body keeps grasps and contacts simple).
        Part("cylinder", (r - 0.004, 0.001), pos=(0, 0, hh), rgba=(0.25, 0.15, 0.1, 1.0)),
        Part("box", (0.012, 0.005, 0.004), pos=(r + 0.010, 0, 0.02)),
        Part("box", (0.012, 0.005, 0.004), pos=(r + 0.010, 0, -0.02)),
        Part("box", (0.004, 0.005, 0.024), pos=(r + 0.020, 0, 0.0)),
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=0.12, friction=_FRICTION_GRASP)
    dims = {"body_radius": r, "half_height": hh, "handle_reach": r + 0.024}
    return ObjectInfo(name, "free", r + 0.024, 2 * hh, geoms, dims=dims, base_z=hh)


def plate(
    sb: SceneBuilder,
    name: str = "plate",
    rgba=(0.95, 0.95, 0.92, 1.0),
    foot: float = 0.0,
    mass: float = 0.25,
) -> ObjectInfo:
    """A flat plate 12 cm across, 8 mm thick with a 4 mm rim; origin at the disc's centre.

    ``foot`` (m, default none): a foot ring 7 cm across under the disc (a solid short
    cylinder) that lifts the plate's edge off the table, so that a finger can slide under it
    (plate_on_rack pinches the edge through its thickness). ``dims``: ``radius``, ``top``
    / ``bottom`` (disc faces) and ``rim_top`` relative to the origin, ``foot``.
    """
    r, hh = 0.06, 0.004
    body = sb.add_body(name)
    parts = [Part("cylinder", (r, hh))]
    n = 16  # rim: short boxes around the edge
    for i in range(n):
        a = 2 * math.pi * i / n
        parts.append(
            Part(
                "box",
                (0.004, r * math.tan(math.pi / n) + 0.001, 0.004),
                pos=(math.cos(a) * (r - 0.004), math.sin(a) * (r - 0.004), 2 * hh),
                quat=_yaw(a),
            )
        )
    if foot > 0:
        parts.append(Part("cylinder", (0.035, foot / 2), pos=(0, 0, -hh - foot / 2)))
    geoms = sb.add_parts(body, parts, rgba, mass=mass, friction=_FRICTION_GRASP)
    dims = {"radius": r, "top": hh, "bottom": -hh, "rim_top": 3 * hh, "foot": foot}
    return ObjectInfo(name, "free", r, 4 * hh + foot, geoms, dims=dims, base_z=hh + foot)


def _ring(radius: float, half_height: float, z: float, n: int, thick: float = 0.004) -> list[Part]:
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


def bowl(sb: SceneBuilder, name: str = "bowl", rgba=(0.3, 0.55, 0.85, 1.0)) -> ObjectInfo:
    """A round bowl 10 cm across and 5 cm tall (12-sided wall); origin at the base centre."""
    r, h = 0.05, 0.05
    body = sb.add_body(name)
    parts = [Part("cylinder", (r - 0.005, 0.004), pos=(0, 0, 0.004))]
    parts += _ring(r - 0.002, h / 2 - 0.002, h / 2 + 0.002, 12)
    geoms = sb.add_parts(body, parts, rgba, mass=0.2)
    return ObjectInfo(name, "free", r, h, geoms, dims={"radius": r}, base_z=0.0)


def container(
    sb: SceneBuilder, name: str = "container", rgba=(0.55, 0.75, 0.45, 1.0)
) -> ObjectInfo:
    """An open square box 8 cm wide and 6 cm tall; origin at the base centre."""
    w, h, t = 0.04, 0.06, 0.004
    body = sb.add_body(name)
    parts = [Part("box", (w, w, t / 2), pos=(0, 0, t / 2))]
    for sx, sy, hx, hy in (
        (1, 0, t / 2, w),
        (-1, 0, t / 2, w),
        (0, 1, w, t / 2),
        (0, -1, w, t / 2),
    ):
        # Walls stand on the base (not on the table): fewer resting contacts.
        wall = Part(
            "box", (hx, hy, (h - t) / 2), pos=(sx * (w - t / 2), sy * (w - t / 2), t + (h - t) / 2)
        )
        parts.append(wall)
    geoms = sb.add_parts(body, parts, rgba, mass=0.15)
    dims = {"half_width": w, "height": h, "wall": t}
    return ObjectInfo(name, "free", w * math.sqrt(2), h, geoms, dims=dims, base_z=0.0)


def pen(sb: SceneBuilder, name: str = "pen", rgba=(0.1, 0.1, 0.6, 1.0)) -> ObjectInfo:
    """A pen 13 cm long, 1.4 cm thick, along local x; origin at its centre."""
    r, hl = 0.007, 0.058
    body = sb.add_body(name)
    parts = [
        Part("capsule", (r, hl), quat=_Z_TO_X),
        Part(
            "cylinder",
            (r + 0.0005, 0.012),
            pos=(hl - 0.01, 0, 0),
            quat=_Z_TO_X,
            rgba=(0.9, 0.9, 0.9, 1),
        ),
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=0.02, friction=_FRICTION_GRASP)
    return ObjectInfo(
        name, "free", hl + r, 2 * r, geoms, dims={"radius": r, "half_length": hl}, base_z=r
    )


def banana(sb: SceneBuilder, name: str = "banana", rgba=(0.95, 0.85, 0.2, 1.0)) -> ObjectInfo:
    """A banana: three capsules along a 14 cm arc bending toward local +y."""
    r = 0.015
    body = sb.add_body(name)
    parts = []
    for a, x, y in ((-0.45, -0.043, 0.01), (0.0, 0.0, 0.0), (0.45, 0.043, 0.01)):
        parts.append(Part("capsule", (r, 0.024), pos=(x, y, 0.0), quat=_qmul(_yaw(a), _Z_TO_X)))
    geoms = sb.add_parts(body, parts, rgba, mass=0.12, friction=_FRICTION_GRASP)
    return ObjectInfo(name, "free", 0.075, 2 * r, geoms, dims={"radius": r}, base_z=r)


def _tool(
    sb: SceneBuilder,
    name: str,
    handle_rgba,
    head: list[Part],
    handle_len: float,
    handle_r: float,
    head_rgba,
    mass: float,
) -> ObjectInfo:
    """A tool lying along local x: a capsule handle on -x, ``head`` parts toward +x.

    ``dims``: ``handle_radius``, ``handle_center`` / ``handle_length`` (along x), ``com_x``
    (the centre of mass on the x axis: mass is spread over the parts by volume) and
    ``x_min`` / ``x_max`` (the tool's extent along x).
    """
    body = sb.add_body(name)
    parts = [Part("capsule", (handle_r, handle_len / 2), pos=(-handle_len / 2, 0, 0), quat=_Z_TO_X)]
    parts += [Part(p.type, p.size, p.pos, p.quat, p.rgba or head_rgba) for p in head]
    geoms = sb.add_parts(body, parts, handle_rgba, mass=mass, friction=_FRICTION_GRASP)
    reach = max(handle_len + handle_r, *(abs(p.pos[0]) + max(p.size) for p in head))
    vols = [_geom_volume(p.type, p.size) for p in parts]
    com_x = sum(v * p.pos[0] for v, p in zip(vols, parts, strict=True)) / sum(vols)
    x_max = max(p.pos[0] + (p.size[1] if p.quat == _Z_TO_X else p.size[0]) for p in head)
    dims = {
        "handle_radius": handle_r,
        "handle_center": -handle_len / 2,
        "handle_length": handle_len,
        "com_x": com_x,
        "x_min": -handle_len - handle_r,
        "x_max": x_max,
    }
    return ObjectInfo(name, "free", reach, 2 * handle_r, geoms, dims=dims, base_z=handle_r)


def screwdriver(sb: SceneBuilder, name: str = "screwdriver") -> ObjectInfo:
    """A screwdriver 15 cm long: an 8 cm handle (2.2 cm thick) and a 6 cm steel shaft."""
    head = [Part("cylinder", (0.003, 0.03), pos=(0.03, 0, 0), quat=_Z_TO_X)]
    return _tool(sb, name, (0.85, 0.2, 0.15, 1), head, 0.08, 0.011, (0.7, 0.7, 0.72, 1), 0.06)


def can_opener(sb: SceneBuilder, name: str = "can_opener") -> ObjectInfo:
    """A can opener 14 cm long: a 9 cm handle and a flat 4 x 5 cm head."""
    head = [Part("box", (0.02, 0.025, 0.006), pos=(0.02, 0, -0.002))]
    return _tool(sb, name, (0.15, 0.15, 0.15, 1), head, 0.09, 0.009, (0.7, 0.7, 0.72, 1), 0.08)


def magnifier(sb: SceneBuilder, name: str = "magnifier") -> ObjectInfo:
    """A magnifying glass: an 8 cm handle and a 7 cm lens disc."""
    head = [Part("cylinder", (0.035, 0.004), pos=(0.035, 0, -0.004))]
    return _tool(sb, name, (0.35, 0.2, 0.1, 1), head, 0.08, 0.008, (0.6, 0.8, 0.9, 1), 0.07)


def thumb_drive(sb: SceneBuilder, name: str = "thumb_drive", rgba=(0.2, 0.4, 0.9, 1)) -> ObjectInfo:
    """A USB stick: a 6 x 2 x 1 cm box with a metal plug on +x."""
    body = sb.add_body(name)
    parts = [
        Part("box", (0.03, 0.01, 0.005)),
        Part("box", (0.006, 0.006, 0.0025), pos=(0.036, 0, 0), rgba=(0.75, 0.75, 0.75, 1)),
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=0.015, friction=_FRICTION_GRASP)
    return ObjectInfo(name, "free", 0.045, 0.01, geoms, dims={"half_length": 0.03}, base_z=0.005)


def scissors(sb: SceneBuilder, name: str = "scissors", rgba=(0.9, 0.4, 0.1, 1)) -> ObjectInfo:
    """Closed scissors: two blades toward +x and two finger rings toward -x."""
    body = sb.add_body(name)
    parts = [
        Part("box", (0.045, 0.006, 0.003), pos=(0.04, 0.0, 0.0), rgba=(0.75, 0.75, 0.78, 1)),
        Part("cylinder", (0.016, 0.004), pos=(-0.02, 0.016, 0.0)),
        Part("cylinder", (0.016, 0.004), pos=(-0.02, -0.016, 0.0)),
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=0.06, friction=_FRICTION_GRASP)
    return ObjectInfo(name, "free", 0.09, 0.008, geoms, dims={}, base_z=0.004)


# --------------------------------------------------------------------------------------------
# Fixed (mocap) and articulated objects
# --------------------------------------------------------------------------------------------


def drawer(
    sb: SceneBuilder,
    name: str = "drawer",
    rgba=(0.6, 0.45, 0.3, 1.0),
    travel: float = 0.12,
) -> ObjectInfo:
    """A two-drawer cabinet (20 x 16 x 15.5 cm) whose front faces local -y.

    The ``bottom`` and ``top`` drawers slide out along local -y on joints
    ``{name}/bottom_slide`` / ``{name}/top_slide`` (0 closed .. ``travel`` fully out). Each has a
    vertical bar handle 4 cm in front of its front panel; sites ``{name}/{drawer}_handle`` mark
    the bar centres (at joint position 0). Origin: the cabinet's base centre.
    """
    w, d, t = 0.10, 0.08, 0.008  # half width (x), half depth (y), wall thickness
    plinth, dh = 0.015, 0.065  # plinth height, drawer bay height
    top_z = plinth + 2 * dh
    body = sb.add_body(name, kind="fixed")
    carcass = [
        Part("box", (w, d, plinth / 2), pos=(0, 0, plinth / 2)),
        Part("box", (w, d, t / 2), pos=(0, 0, top_z + t / 2)),
        Part("box", (t / 2, d, dh), pos=(w - t / 2, 0, plinth + dh)),
        Part("box", (t / 2, d, dh), pos=(-w + t / 2, 0, plinth + dh)),
        Part("box", (w, t / 2, dh), pos=(0, d - t / 2, plinth + dh)),
        Part("box", (w - t, d - t, t / 4), pos=(0, 0, plinth + dh)),  # shelf between bays
    ]
    geoms = sb.add_parts(body, carcass, rgba, mass=2.0)  # static: any positive mass
    joints, sites = {}, {}
    handle_local: dict[str, tuple[float, float]] = {}
    standoff = 0.04
    for k, which in enumerate(("bottom", "top")):
        zc = plinth + dh * k + dh / 2
        dw = w - t - 0.002  # drawer half width inside the carcass
        dd = d - t / 2 - 0.004  # drawer half depth
        child = sb.add_body(f"{name}/{which}", kind="child", parent=body, pos=(0, 0, zc))
        jn = f"{name}/{which}_slide"
        child.add_joint(
            name=jn,
            type=sb.mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0.0, -1.0, 0.0],
            range=[0.0, travel],
            damping=2.0,
            frictionloss=0.3,
            armature=0.02,
        )
        hz = dh / 2 - 0.006  # drawer box half height (clear of the shelf)
        front_y = -d + 0.001  # the tray's front, just inside the carcass
        face_y = -d - 0.013  # the front panel covers the opening from outside (1 mm gap)
        handle = (0.6, 0.6, 0.62, 1.0)
        parts = [
            Part("box", (w - 0.002, 0.006, dh / 2 - 0.002), pos=(0, face_y + 0.006, 0)),  # front
            Part("box", (dw, dd, 0.003), pos=(0, front_y + dd, -hz + 0.003)),  # floor
            Part("box", (0.003, dd, hz - 0.01), pos=(dw - 0.003, front_y + dd, -0.01)),
            Part("box", (0.003, dd, hz - 0.01), pos=(-dw + 0.003, front_y + dd, -0.01)),
            Part("box", (dw, 0.003, hz - 0.01), pos=(0, front_y + 2 * dd - 0.003, -0.01)),
            # Handle: a vertical bar on two horizontal standoffs.
            Part(
                "box",
                (0.005, standoff / 2, 0.004),
                pos=(0, face_y - standoff / 2, 0.018),
                rgba=handle,
            ),
            Part(
                "box",
                (0.005, standoff / 2, 0.004),
                pos=(0, face_y - standoff / 2, -0.018),
                rgba=handle,
            ),
            Part("box", (0.006, 0.006, 0.024), pos=(0, face_y - standoff, 0), rgba=handle),
        ]
        geoms += sb.add_parts(child, parts, rgba, mass=0.3, prefix=f"{name}/{which}")
        joints[which] = jn
        handle_local[which] = (face_y - standoff, zc)
        sites[f"{which}_handle"] = sb.add_site(
            child, f"{name}/{which}_handle", pos=(0, face_y - standoff, 0)
        )
    dims = {
        "half_width": w,
        "half_depth": d,
        "height": top_z + t,
        "travel": travel,
        "handle_standoff": standoff,
        "handle_half_height": 0.024,
        "handle_half_thickness": 0.006,
    }
    for which, (hy, hz) in handle_local.items():  # bar centre in the cabinet frame, closed
        dims[f"{which}_handle_y"], dims[f"{which}_handle_z"] = hy, hz
    radius = math.hypot(w, d + 0.013 + standoff)
    return ObjectInfo(name, "fixed", radius, top_z + t, geoms, joints, sites, dims)


def rack(
    sb: SceneBuilder, name: str = "rack", rgba=(0.75, 0.75, 0.78, 1.0), slots: int = 5
) -> ObjectInfo:
    """A dish rack: a 23 x 14 cm base (5 slots) with ``slots + 1`` dividers along local x.

    The dividers are thin plates (4 mm) parallel to the local y-z plane, 9 cm tall and 12 cm
    long, 4 cm apart; a plate stands upright in a slot between two of them. The rack is
    smooth (friction 0.4, which its contacts use whatever the other geom's: ``priority`` 1),
    so a plate leaning on a divider slides down into its slot. Sites
    ``{name}/slot{i}`` mark the slot centres at the base's top. Origin: the base centre on the
    table. ``dims``: ``pitch``, ``slots``, ``half_width`` / ``half_depth`` (base), ``base``
    (its thickness), ``divider_height`` (above the base), ``divider_half_thickness``,
    ``divider_half_length``.
    """
    pitch, hd, base_t, h, dt = 0.04, 0.07, 0.01, 0.09, 0.002
    hw = pitch * slots / 2 + 0.015
    body = sb.add_body(name, kind="fixed")
    parts = [Part("box", (hw, hd, base_t / 2), pos=(0, 0, base_t / 2))]
    for i in range(slots + 1):
        x = -pitch * slots / 2 + i * pitch
        parts.append(Part("box", (dt, hd - 0.01, h / 2), pos=(x, 0, base_t + h / 2)))
    # Static (mocap): any positive mass.
    geoms = sb.add_parts(body, parts, rgba, mass=1.0, friction=(0.4, 0.005, 0.0001))
    for g in geoms:
        sb.spec.geom(g).priority = 1
    sites = {}
    for i in range(slots):
        x = -pitch * slots / 2 + (i + 0.5) * pitch
        sites[f"slot{i}"] = sb.add_site(body, f"{name}/slot{i}", pos=(x, 0, base_t))
    dims = {
        "pitch": pitch,
        "slots": float(slots),
        "half_width": hw,
        "half_depth": hd,
        "divider_height": h,
        "base": base_t,
        "divider_half_thickness": dt,
        "divider_half_length": hd - 0.01,
    }
    return ObjectInfo(name, "fixed", math.hypot(hw, hd), base_t + h, geoms, sites=sites, dims=dims)


def caddy(sb: SceneBuilder, name: str = "caddy", rgba=(0.35, 0.35, 0.4, 1.0)) -> ObjectInfo:
    """A tool caddy 17.5 x 18 cm with 5 cm walls, split into a ``left`` (local -x) and a
    ``right`` compartment by a central divider along local y, 1 cm taller than the walls and
    topped by a round grip.

    Each compartment is 8 cm wide (x) and 17 cm long (y) inside: a tool lies in it along
    local y. Sites ``{name}/left`` / ``{name}/right`` mark the compartment centres on the
    floor. ``dims``: ``half_width`` / ``half_depth`` (outer, x / y), ``wall_height``,
    ``wall`` (thickness), ``floor`` (top of the floor), ``compartment_x`` (|x| of the
    compartment centres), ``compartment_half_width`` / ``compartment_half_length`` (inside).
    """
    hw, hd, h, t = 0.0875, 0.09, 0.05, 0.005
    divider_h = h + 0.01
    body = sb.add_body(name, kind="fixed")
    parts = [
        Part("box", (hw, hd, t / 2), pos=(0, 0, t / 2)),
        Part("box", (t / 2, hd, h / 2), pos=(hw - t / 2, 0, h / 2)),
        Part("box", (t / 2, hd, h / 2), pos=(-hw + t / 2, 0, h / 2)),
        Part("box", (hw, t / 2, h / 2), pos=(0, hd - t / 2, h / 2)),
        Part("box", (hw, t / 2, h / 2), pos=(0, -hd + t / 2, h / 2)),
        Part("box", (t / 2, hd - t, divider_h / 2), pos=(0, 0, divider_h / 2)),  # divider
        Part("capsule", (0.006, hd - t - 0.006), pos=(0, 0, divider_h), quat=_Z_TO_Y),  # grip
    ]
    geoms = sb.add_parts(body, parts, rgba, mass=1.0)  # static: any positive mass
    cx = (hw - t + t / 2) / 2  # midway between the outer wall and the divider (inner faces)
    sites = {
        "left": sb.add_site(body, f"{name}/left", pos=(-cx, 0, t)),
        "right": sb.add_site(body, f"{name}/right", pos=(cx, 0, t)),
    }
    dims = {
        "half_width": hw,
        "half_depth": hd,
        "wall_height": h,
        "wall": t,
        "floor": t,
        "compartment_x": cx,
        "compartment_half_width": (hw - t - t / 2) / 2,
        "compartment_half_length": hd - t,
    }
    height = divider_h + 0.006
    return ObjectInfo(name, "fixed", math.hypot(hw, hd), height, geoms, sites=sites, dims=dims)


#: Object builders by kind (``SceneBuilder.add(kind, name)``).
BUILDERS: dict[str, Callable[..., ObjectInfo]] = {
    "mug": mug,
    "plate": plate,
    "bowl": bowl,
    "container": container,
    "pen": pen,
    "banana": banana,
    "screwdriver": screwdriver,
    "can_opener": can_opener,
    "magnifier": magnifier,
    "thumb_drive": thumb_drive,
    "scissors": scissors,
    "drawer": drawer,
    "rack": rack,
    "caddy": caddy,
}
