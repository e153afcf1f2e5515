"""toolkit: 3D representation pretraining for robot manipulation (CLAMP, CLAR).

Importing the package is cheap: heavy submodules (models, envs) load on first use through the
registries' ``locations`` or explicit imports.
"""

import os as _os

__version__ = "0.1.0"

# Headless machines render MuJoCo offscreen through EGL (osmesa / glfw fail without a display;
# see docs/suites/metaworld.md). Must be set before mujoco is first imported.
if "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    _os.environ["MUJOCO_GL"] = "egl"
