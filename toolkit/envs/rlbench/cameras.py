"""RLBench's camera rig: five vision sensors (``cam_<name>`` in the scene), 128x128 by default.

Poses and intrinsics come from the simulator (``obs.misc``) every step, so nothing here is
hard-coded beyond names and default sizes.
"""

from __future__ import annotations

from toolkit.data.rlbench.format import CAMERAS
from toolkit.envs.base import CameraSpec

__all__ = ["CAMERA_RIG", "DEFAULT_CAMERA"]

#: CLAR / Lift3D evaluate RLBench with the front camera only.
DEFAULT_CAMERA = "front"
#: RLBench's dataset generator renders 128x128 by default (PerAct's shared demos too).
CAMERA_RIG = {name: CameraSpec(name, 128, 128) for name in CAMERAS}
