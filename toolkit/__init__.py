"""toolkit: 3D representation pretraining for robot manipulation (CLAMP, CLAR).

Importing the package is cheap: heavy submodules (models, envs) load on first use through the
registries' ``locations`` or explicit imports.
"""

__version__ = "0.1.0"
