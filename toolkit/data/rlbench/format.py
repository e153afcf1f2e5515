"""RLBench's on-disk dataset format: folder / file names, depth encoding, camera names.

What this reader matches (read from stepjam/RLBench, the 1.2.0 line on ``master``):

- ``rlbench/backend/const.py`` (commit f214b6ecc177babce12d3ad13dd92049c824c1d9): the folder and
  file names below and ``DEPTH_SCALE = 2**24 - 1``.
- ``rlbench/dataset_generator.py`` ``save_demo`` (commit c00e250ed7848f7fa95e29de868cd9e9a879ce58):
  per camera, RGB saved with ``Image.fromarray(rgb)``; depth **normalized to [0, 1] between the
  camera's near and far planes** (``depth_in_meters = False``) and packed by
  ``float_array_to_rgb_image(depth, scale_factor=DEPTH_SCALE)`` into a 24-bit integer with R the
  high byte; masks as the RGB-coded object handles ``(mask * 255).astype(uint8)``. Every image
  field of each ``Observation`` is then set to None (point clouds included: they are never
  written) and the ``Demo`` is pickled to ``low_dim_obs.pkl``.
- ``rlbench/backend/scene.py`` ``_get_misc`` (commit 446ad187b134697b9779c74834df2a6c4d762f52):
  ``obs.misc`` holds per camera ``<cam>_camera_extrinsics`` (4x4 camera-to-world pose of the
  vision sensor, ``VisionSensor.get_matrix()``), ``<cam>_camera_intrinsics`` (3x3,
  ``get_intrinsic_matrix()``: negative focal lengths, principal point at resolution / 2),
  ``<cam>_camera_near`` / ``<cam>_camera_far`` (clipping planes, metres), plus
  ``variation_index``, ``joint_poses`` and, during demo collection, ``joint_position_action``.
- ``rlbench/utils.py`` ``get_stored_demos``: depth = ``near + decoded * (far - near)``; point cloud
  = ``VisionSensor.pointcloud_from_depth_and_camera_params(depth, extrinsics, intrinsics)``.

Datasets written before misc carried camera parameters (RLBench < 1.0, ``DEPTH_SCALE = 1000``)
are refused with a message saying so: their clouds cannot be rebuilt.

Layouts::

    <root>/<task>/variation<V>/variation_descriptions.pkl        list[str]
    <root>/<task>/variation<V>/episodes/episode<K>/low_dim_obs.pkl
    <root>/<task>/variation<V>/episodes/episode<K>/<cam>_{rgb,depth,mask}/<i>.png

    # PerAct's widely shared pre-generated demos: descriptions and variation per episode
    <root>/<task>/all_variations/episodes/episode<K>/{low_dim_obs.pkl,
        variation_descriptions.pkl, variation_number.pkl, <cam>_{rgb,depth,mask}/<i>.png}
"""

from __future__ import annotations

__all__ = [
    "ALL_VARIATIONS_FOLDER",
    "CAMERAS",
    "DEPTH_SCALE",
    "EPISODES_FOLDER",
    "IMAGE_FORMAT",
    "LOW_DIM_PICKLE",
    "RLBENCH_VERSION",
    "VARIATION_DESCRIPTIONS",
    "VARIATION_NUMBER",
    "camera_folder",
]

#: The upstream format this package reads (see the module docstring for the commits).
RLBENCH_VERSION = "stepjam/RLBench 1.2.0 (dataset_generator.py c00e250e, const.py f214b6ec)"

#: Cameras of RLBench's scene, as named in folder names and ``misc`` keys.
CAMERAS = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")

IMAGE_FORMAT = "%d.png"
EPISODES_FOLDER = "episodes"
EPISODE_PREFIX = "episode"  # EPISODE_FOLDER = 'episode%d'
VARIATION_PREFIX = "variation"  # VARIATIONS_FOLDER = 'variation%d'
ALL_VARIATIONS_FOLDER = "all_variations"  # PerAct's layout
LOW_DIM_PICKLE = "low_dim_obs.pkl"
VARIATION_DESCRIPTIONS = "variation_descriptions.pkl"
VARIATION_NUMBER = "variation_number.pkl"  # PerAct's layout: one per episode

#: Depth PNGs hold round(depth01 * DEPTH_SCALE) as a 24-bit integer (R high byte, B low byte).
DEPTH_SCALE = 2**24 - 1

#: Image kinds stored per camera (``<cam>_<kind>`` folders). RLBench never writes point clouds.
IMAGE_KINDS = ("rgb", "depth", "mask")


def camera_folder(camera: str, kind: str) -> str:
    """``front`` + ``depth`` -> ``front_depth`` (RLBench's ``<CAM>_<KIND>_FOLDER`` constants)."""
    return f"{camera}_{kind}"
