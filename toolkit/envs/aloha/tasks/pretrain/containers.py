"""Pick-and-place pretraining tasks: put an object into a receptacle (one arm).

Every task lays its objects over the 2x3 grid (CLAMP's layout, :func:`grid_slots`): the
receptacle over the three back (top) slots, the object to move and a distractor over the
front (bottom) ones, every object turned by a uniform +-180 degrees (the bin by +-30, below;
plus up to 5 mm of jitter); layouts where objects intersect are re-drawn. Stages (all four tasks): 0 start,
1 grasped (both fingers of an arm touch the object), 2 lifted (grasped and 2 cm up),
3 above (grasped, over the receptacle's opening), 4 placed (success).

- ``banana_in_bowl`` (banana, fruit_bowl; distractor cube): success when the banana's centre
  is within ``inner radius - 3 cm`` of the bowl's axis and below the bowl's rim, the bowl is
  upright and no finger touches the banana.
- ``mug_in_bowl`` (mug, fruit_bowl; distractor block): the mug stands upright (tilt < 20
  degrees) in the bowl (centre within ``inner radius - 2 cm`` of the axis, base within
  -4..+10 mm of the bowl's floor), no finger touching it.
- ``scissors_in_bin`` (scissors, bin; distractor thumb drive): the scissors' origin lies
  inside the bin's inner rectangle, below its wall tops, the bin is upright and no finger
  touches the scissors. The bin is 17 x 11 cm inside and the scissors 12 cm long: the expert
  turns them along the bin, whose long side stays within +-30 degrees of the x axis (so the
  hand, leaning along the scissors, leans roughly away from its base and reaches every slot).
- ``thumb_drive_in_container`` (thumb drive, container; distractors bowl and scissors): the
  drive's origin lies inside the 8 cm container's inner square, below its wall tops, no finger
  touching it. The drive (7.2 cm) only fits lying along the container's diagonal: the expert
  turns it so and opens the gripper only part way inside.

Expert (all): the arm on the object's side (the receptacle's side when the object is in the
middle column) picks it top-down with the fingers closing across it, leaning away from its
base; lifts it (retrying once when it did not come up); turns the hand about the vertical
(to lean outward at the receptacle, or to give the object the yaw it needs there); carries it
over the receptacle, correcting for where the object actually sits in the hand (measured
twice); lowers it, opens, backs off and goes home.
"""

from __future__ import annotations

import math

import numpy as np

from toolkit.envs.aloha.ik import yaw_rotation
from toolkit.envs.aloha.tasks.base import ExpertContext, register_task
from toolkit.envs.aloha.tasks.pretrain import _objects  # noqa: F401  (registers the builders)
from toolkit.envs.aloha.tasks.pretrain._common import (
    MIN_PICK_Z,
    PickPlaceTask,
    tilt_of,
    to_local,
)


def _finger_yaw_across(ctx: ExpertContext, name: str) -> float:
    """Fingers closing across the object's local x axis."""
    return ctx.yaw(name) + math.pi / 2


@register_task
class BananaInBowl(PickPlaceTask):
    name = "banana_in_bowl"
    description = "put the banana in the bowl"
    objects = {"fruit_bowl": "fruit_bowl", "banana": "banana", "cube": "cube"}
    item, receptacle = "banana", "fruit_bowl"
    top, bottom = ("fruit_bowl",), ("banana", "cube")
    max_steps = 400
    center_margin = 0.03
    max_bowl_tilt = 15.0

    def _local(self, sim) -> np.ndarray:
        return to_local(sim, "fruit_bowl", sim.body_pose("banana")[:3])

    def over(self, sim) -> bool:
        p = self._local(sim)
        return float(np.hypot(p[0], p[1])) < sim.objects["fruit_bowl"].dims["inner_radius"]

    def placed_in(self, sim) -> bool:
        d = sim.objects["fruit_bowl"].dims
        p = self._local(sim)
        within = float(np.hypot(p[0], p[1])) < d["inner_radius"] - self.center_margin
        low = p[2] < d["height"]
        return bool(within and low and tilt_of(sim, "fruit_bowl") < self.max_bowl_tilt)

    def grasp(self, ctx: ExpertContext) -> tuple[np.ndarray, float]:
        p = ctx.pos("banana")
        return np.array([p[0], p[1], p[2] + 0.023]), _finger_yaw_across(ctx, "banana")

    def goal(self, ctx: ExpertContext, yaw: float) -> np.ndarray:
        b = ctx.pos("fruit_bowl")
        d = self.object_infos()["fruit_bowl"].dims
        # The banana bends toward its local +y: centre the arc, not the middle capsule.
        shift = yaw_rotation(yaw) @ np.array([0.0, 0.006, 0.0])
        return b + np.array([0, 0, d["floor"] + 0.015 + 0.008]) - shift


@register_task
class MugInBowl(PickPlaceTask):
    name = "mug_in_bowl"
    description = "put the mug in the bowl"
    objects = {"fruit_bowl": "fruit_bowl", "mug": "mug", "block": "block"}
    item, receptacle = "mug", "fruit_bowl"
    top, bottom = ("fruit_bowl",), ("mug", "block")
    max_steps = 400
    max_tilt_deg = 20.0
    center_margin = 0.02
    base_gap = (-0.004, 0.01)

    def _local(self, sim) -> np.ndarray:
        return to_local(sim, "fruit_bowl", sim.body_pose("mug")[:3])

    def over(self, sim) -> bool:
        p = self._local(sim)
        return float(np.hypot(p[0], p[1])) < sim.objects["fruit_bowl"].dims["inner_radius"]

    def placed_in(self, sim) -> bool:
        d = sim.objects["fruit_bowl"].dims
        p = self._local(sim)
        within = float(np.hypot(p[0], p[1])) < d["inner_radius"] - self.center_margin
        gap = p[2] - sim.objects["mug"].base_z - d["floor"]
        upright = tilt_of(sim, "mug") < self.max_tilt_deg
        return bool(within and upright and self.base_gap[0] <= gap <= self.base_gap[1])

    def grasp(self, ctx: ExpertContext) -> tuple[np.ndarray, float]:
        # Fingers across the mug's body, perpendicular to the handle (local +x).
        return ctx.pos("mug") + [0, 0, 0.012], _finger_yaw_across(ctx, "mug")

    def goal(self, ctx: ExpertContext, yaw: float) -> np.ndarray:
        d = self.object_infos()["fruit_bowl"].dims
        base_z = self.object_infos()["mug"].base_z
        # The handle sticks out on local +x: centre the mug's footprint, handle included.
        shift = yaw_rotation(yaw) @ np.array([0.012, 0.0, 0.0])
        return ctx.pos("fruit_bowl") + np.array([0, 0, d["floor"] + base_z + 0.004]) - shift


@register_task
class ScissorsInBin(PickPlaceTask):
    name = "scissors_in_bin"
    description = "put the scissors in the bin"
    objects = {"bin": "bin", "scissors": "scissors", "thumb_drive": "thumb_drive"}
    item, receptacle = "scissors", "bin"
    top, bottom = ("bin",), ("scissors", "thumb_drive")
    #: The bin's long side stays within +-30 degrees of the x axis (the arms' axis): the
    #: scissors must lie along it, and a hand leaning along x reaches every slot.
    yaws = {"bin": math.pi / 6}
    max_steps = 400
    max_bin_tilt = 15.0
    #: Grasp point on the blades (local x) and the middle of the scissors' extent.
    grasp_x = 0.013
    extent_center_x = 0.0245

    def _local(self, sim) -> np.ndarray:
        return to_local(sim, "bin", sim.body_pose("scissors")[:3])

    def _within(self, sim, p: np.ndarray) -> bool:
        d = sim.objects["bin"].dims
        return bool(abs(p[0]) < d["inner_x"] and abs(p[1]) < d["inner_y"])

    def over(self, sim) -> bool:
        return self._within(sim, self._local(sim))

    def placed_in(self, sim) -> bool:
        p = self._local(sim)
        low = p[2] < sim.objects["bin"].dims["height"]
        return bool(self._within(sim, p) and low and tilt_of(sim, "bin") < self.max_bin_tilt)

    def grasp(self, ctx: ExpertContext) -> tuple[np.ndarray, float]:
        yaw = ctx.yaw("scissors")
        p = ctx.pos("scissors") + yaw_rotation(yaw) @ np.array([self.grasp_x, 0.0, 0.0])
        return np.array([p[0], p[1], MIN_PICK_Z]), yaw + math.pi / 2

    def place_yaw(self, ctx: ExpertContext) -> tuple[float | None, float]:
        return ctx.yaw("bin"), math.pi  # along the bin's long side

    def goal(self, ctx: ExpertContext, yaw: float) -> np.ndarray:
        d = self.object_infos()["bin"].dims
        shift = yaw_rotation(yaw) @ np.array([self.extent_center_x, 0.0, 0.0])
        return ctx.pos("bin") + np.array([0, 0, d["floor"] + 0.004 + 0.01]) - shift


@register_task
class ThumbDriveInContainer(PickPlaceTask):
    name = "thumb_drive_in_container"
    description = "put the thumb drive in the container"
    objects = {
        "container": "container",
        "bowl": "bowl",
        "thumb_drive": "thumb_drive",
        "scissors": "scissors",
    }
    item, receptacle = "thumb_drive", "container"
    top, bottom = ("container", "bowl"), ("thumb_drive", "scissors")
    max_steps = 400
    release_grip = 0.45
    above = 0.08
    extent_center_x = 0.006

    def _local(self, sim) -> np.ndarray:
        return to_local(sim, "container", sim.body_pose("thumb_drive")[:3])

    def _within(self, sim, p: np.ndarray) -> bool:
        d = sim.objects["container"].dims
        inner = d["half_width"] - 0.004  # walls are 4 mm thick
        return bool(abs(p[0]) < inner and abs(p[1]) < inner)

    def over(self, sim) -> bool:
        return self._within(sim, self._local(sim))

    def placed_in(self, sim) -> bool:
        p = self._local(sim)
        low = p[2] < sim.objects["container"].dims["height"]
        return bool(self._within(sim, p) and low and tilt_of(sim, "container") < 15.0)

    def grasp(self, ctx: ExpertContext) -> tuple[np.ndarray, float]:
        p = ctx.pos("thumb_drive")
        return np.array([p[0], p[1], MIN_PICK_Z]), _finger_yaw_across(ctx, "thumb_drive")

    def place_yaw(self, ctx: ExpertContext) -> tuple[float | None, float]:
        return ctx.yaw("container") + math.pi / 4, math.pi / 2  # along a diagonal

    def goal(self, ctx: ExpertContext, yaw: float) -> np.ndarray:
        shift = yaw_rotation(yaw) @ np.array([self.extent_center_x, 0.0, 0.0])
        return ctx.pos("container") + np.array([0, 0, 0.004 + 0.005 + 0.012]) - shift
