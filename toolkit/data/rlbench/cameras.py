"""RLBench (PyRep / CoppeliaSim) camera parameters -> the toolkit's OpenCV convention.

PyRep's ``VisionSensor.get_intrinsic_matrix()`` has *negative* focal lengths
(``f = -res / (2 tan(angle / 2))``) and the principal point at ``res / 2``; ``get_matrix()`` is
the sensor's camera-to-world pose. ``pointcloud_from_depth_and_camera_params(depth, E, K)``
unprojects integer pixel ``(u, v)`` with depth ``d`` as
``E @ K^-1 [u d, v d, d]`` (camera frame: CoppeliaSim sensor axes, looking along +z).

The toolkit's convention (:mod:`toolkit.ops.cameras`) is OpenCV axes (x right, y down, z
forward), positive focal lengths and pixel centres at ``u + 0.5``. With
``D = diag(sign fx, sign fy, 1)`` (``diag(-1, -1, 1)`` for RLBench)::

    K_cv = K_rl @ D, then cx += 0.5, cy += 0.5        R_cv = R_rl @ D,  t_cv = t_rl

so that :func:`toolkit.ops.cameras.unproject_depth` (pixel centres) returns exactly PyRep's
point cloud: ``K_rl^-1 [u, v, 1] = D K_cv^-1 [u + 0.5, v + 0.5, 1]`` and ``R_rl D = R_cv``.
"""

from __future__ import annotations

import numpy as np

from toolkit.data.rlbench.unpickler import RLBenchDataError

__all__ = ["as_extrinsics", "to_opencv"]


def as_extrinsics(value, where: str) -> np.ndarray:
    """``(4, 4)`` float64 from a 4x4 matrix, or a 3x4 / 12-vector (older PyRep ``get_matrix``)."""
    m = np.asarray(value, dtype=np.float64)
    if m.shape == (12,):
        m = m.reshape(3, 4)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise RLBenchDataError(f"{where}: expected a finite 4x4 (or 3x4) pose, found {m.shape}")
    return m


def to_opencv(
    K_rl: np.ndarray, T_rl: np.ndarray, where: str = "camera"
) -> tuple[np.ndarray, np.ndarray]:
    """``(K_cv (3, 3), cam_to_world_cv (4, 4))`` from PyRep's intrinsics and sensor pose.

    Raises:
        RLBenchDataError: ``K`` is not a pinhole matrix with non-zero focal lengths of the same
            sign (a mirrored camera has no rigid OpenCV equivalent), or ``T`` is not 4x4.
    """
    K = np.asarray(K_rl, dtype=np.float64)
    if K.shape == (9,):
        K = K.reshape(3, 3)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise RLBenchDataError(
            f"{where}: intrinsics: expected a finite 3x3 matrix, found {K.shape}"
        )
    fx, fy = K[0, 0], K[1, 1]
    if fx == 0 or fy == 0 or np.sign(fx) != np.sign(fy) or np.any(K[2] != [0.0, 0.0, 1.0]):
        raise RLBenchDataError(
            f"{where}: intrinsics: expected a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
            f"with focal lengths of one sign, found {K.tolist()}"
        )
    D = np.diag([np.sign(fx), np.sign(fy), 1.0])
    K_cv = K @ D
    K_cv[0, 2] += 0.5  # PyRep unprojects integer pixel indices; ours unproject pixel centres
    K_cv[1, 2] += 0.5
    T = as_extrinsics(T_rl, f"{where}: extrinsics")
    T_cv = T.copy()
    T_cv[:3, :3] = T[:3, :3] @ D
    return K_cv, T_cv
