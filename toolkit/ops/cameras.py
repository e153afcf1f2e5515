"""Camera math: intrinsics, extrinsics, look-at, depth unprojection, MuJoCo cameras.

Conventions (see docs/rendering.md):

- **Extrinsics** are camera-to-world 4x4 rigid matrices ``T = [[R, t], [0, 1]]`` in the
  **OpenCV** camera convention: camera +x points right in the image, +y down, +z forward
  (along the optical axis). ``p_world = R @ p_cam + t``.
- **MuJoCo** cameras are +x right, +y up and look along -z, so
  ``R_cv = R_mj @ diag(1, -1, -1)`` (``R_mj = data.cam_xmat[i].reshape(3, 3)``).
- **Intrinsics** are a pinhole ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels. The pixel
  with integer index ``(u, v)`` (column, row) covers ``[u, u+1) x [v, v+1)`` and its center is at
  ``(u + 0.5, v + 0.5)``. A camera-frame point projects to ``u' = fx x/z + s y/z + cx``,
  ``v' = fy y/z + cy`` and lands in pixel ``(floor(u'), floor(v'))``.
- **Depth** is z-depth (distance along the optical axis, metres), not ray length.

Every function takes torch tensors or array-likes and works on any leading batch shape; the
MuJoCo helpers return numpy (they read numpy state from the simulator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from toolkit.utils.errors import ShapeError, ToolkitError

__all__ = [
    "NotRigidError",
    "check_rigid",
    "depth_to_points",
    "intrinsics_from_fovy",
    "invert_rigid",
    "look_at",
    "mujoco_cam_to_world",
    "mujoco_intrinsics",
    "project_points",
    "project_to_image",
    "unproject_depth",
]

#: MuJoCo camera frame (x right, y up, looking along -z) -> OpenCV (x right, y down, z forward).
MJ_TO_CV = np.diag([1.0, -1.0, -1.0])


class NotRigidError(ToolkitError, ValueError):
    """A 4x4 matrix that should be a rigid transform (rotation + translation) is not."""


def _as_tensor(x, dtype: torch.dtype | None = None, device=None) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(dtype=dtype or x.dtype, device=device or x.device)
    t = torch.as_tensor(np.asarray(x), device=device)
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


# --------------------------------------------------------------------------------------------
# Intrinsics
# --------------------------------------------------------------------------------------------


def intrinsics_from_fovy(
    fovy_deg: float, height: int, width: int, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Pinhole intrinsics ``(3, 3)`` from a vertical field of view (MuJoCo's ``fovy``).

    Square pixels: ``fx = fy = 0.5 H / tan(fovy / 2)``; principal point at the image center
    ``(W / 2, H / 2)`` (so a point on the optical axis lands on the pixel-center grid corner in
    the middle of the image).
    """
    if not 0.0 < float(fovy_deg) < 180.0:
        raise ToolkitError(f"fovy must be in (0, 180) degrees, got {fovy_deg}")
    if int(height) <= 0 or int(width) <= 0:
        raise ToolkitError(f"image size must be positive, got height={height}, width={width}")
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return torch.tensor(
        [[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]], dtype=dtype
    )


# --------------------------------------------------------------------------------------------
# Rigid transforms
# --------------------------------------------------------------------------------------------


def check_rigid(T, name: str = "extrinsics", atol: float = 1e-4) -> None:
    """Raise :class:`NotRigidError` unless every ``T[..., :, :]`` is a rigid 4x4 transform.

    Checks: shape ``(..., 4, 4)``, finite entries, bottom row ``[0, 0, 0, 1]``,
    ``R^T R = I`` and ``det R = +1`` (each within ``atol``). The message names ``name``, the
    first offending index and the measured error, e.g. a scaled or sheared rotation, or a
    world-to-camera matrix given where camera-to-world was expected is still rigid (so pass the
    right one: this check cannot tell them apart).
    """
    T = _as_tensor(T)
    if T.ndim < 2 or tuple(T.shape[-2:]) != (4, 4):
        raise NotRigidError(f"{name}: expected shape (..., 4, 4), got {tuple(T.shape)}")
    if T.numel() == 0:
        return
    T = T.detach().to(torch.float64).reshape(-1, 4, 4)

    def _where(bad: Tensor) -> str:
        i = int(bad.nonzero()[0, 0])
        return f" (first at flat index {i} of {T.shape[0]})" if T.shape[0] > 1 else ""

    finite = torch.isfinite(T).all(dim=(-2, -1))
    if not bool(finite.all()):
        raise NotRigidError(f"{name}: contains NaN or inf{_where(~finite)}")
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=T.dtype, device=T.device)
    berr = (T[:, 3, :] - bottom).abs().amax(dim=-1)
    if bool((berr > atol).any()):
        i = int((berr > atol).nonzero()[0, 0])
        raise NotRigidError(
            f"{name}: bottom row must be [0, 0, 0, 1], got {T[i, 3].tolist()}{_where(berr > atol)}"
        )
    R = T[:, :3, :3]
    eye = torch.eye(3, dtype=T.dtype, device=T.device)
    oerr = (R.transpose(-1, -2) @ R - eye).abs().amax(dim=(-2, -1))
    if bool((oerr > atol).any()):
        i = int((oerr > atol).nonzero()[0, 0])
        norms = R[i].norm(dim=0).tolist()
        raise NotRigidError(
            f"{name}: rotation block is not orthonormal (max |R^T R - I| = {float(oerr[i]):.3g} > "
            f"atol {atol}; column norms {[round(n, 6) for n in norms]}): scaled or sheared "
            f"matrix?{_where(oerr > atol)}"
        )
    det = torch.linalg.det(R)
    derr = (det - 1.0).abs()
    if bool((derr > atol).any()):
        i = int((derr > atol).nonzero()[0, 0])
        raise NotRigidError(
            f"{name}: rotation determinant must be +1, got {float(det[i]):.6g} (a reflection, "
            f"e.g. a flipped axis convention?){_where(derr > atol)}"
        )


def invert_rigid(T: Tensor) -> Tensor:
    """Inverse of rigid transforms ``(..., 4, 4)``: ``[[R^T, -R^T t], [0, 1]]``."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    out = torch.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def look_at(eye, target, up: Sequence[float] | Tensor = (0.0, 0.0, 1.0)) -> Tensor:
    """Camera-to-world ``(..., 4, 4)`` (OpenCV) of a camera at ``eye`` looking at ``target``.

    The camera +z axis points from ``eye`` to ``target``; +x (image right) is
    ``normalize(z x up)`` and +y (image down) is ``z x x``, so ``up`` appears toward the top of
    the image. When the viewing direction is parallel to ``up`` (e.g. straight down with the
    default ``up = +z``) the world +y axis is used as ``up`` instead (then +x). ``eye``,
    ``target`` and ``up`` broadcast against each other.
    """
    eye = _as_tensor(eye)
    target = _as_tensor(target, dtype=eye.dtype, device=eye.device)
    up = _as_tensor(up, dtype=eye.dtype, device=eye.device)
    eye, target, up = torch.broadcast_tensors(eye, target, up)
    z = target - eye
    zn = z.norm(dim=-1, keepdim=True)
    if bool((zn <= 1e-12).any()):
        raise ToolkitError("look_at: eye and target coincide")
    z = z / zn
    eps = 1e-6
    x = torch.linalg.cross(z, up)
    for alt in ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0)):
        alt_t = torch.tensor(alt, dtype=eye.dtype, device=eye.device).expand_as(up)
        x = torch.where(x.norm(dim=-1, keepdim=True) < eps, torch.linalg.cross(z, alt_t), x)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x)
    T = torch.zeros(eye.shape[:-1] + (4, 4), dtype=eye.dtype, device=eye.device)
    T[..., :3, 0] = x
    T[..., :3, 1] = y
    T[..., :3, 2] = z
    T[..., :3, 3] = eye
    T[..., 3, 3] = 1.0
    return T


# --------------------------------------------------------------------------------------------
# Projection / unprojection
# --------------------------------------------------------------------------------------------


def project_points(points_cam: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Continuous pixel coordinates ``(..., N, 2)`` (u', v') and z-depth ``(..., N)``.

    ``points_cam`` ``(..., N, 3)`` in the OpenCV camera frame, ``K`` ``(..., 3, 3)``. The pixel
    index of a point is ``floor(u'), floor(v')``; points with ``z <= 0`` are behind the camera
    (their u', v' are meaningless).
    """
    x, y, z = points_cam.unbind(-1)
    K = K.to(points_cam.dtype).unsqueeze(-3)  # (..., 1, 3, 3)
    inv_z = 1.0 / z
    u = (K[..., 0, 0] * x + K[..., 0, 1] * y) * inv_z + K[..., 0, 2]
    v = K[..., 1, 1] * y * inv_z + K[..., 1, 2]
    return torch.stack([u, v], dim=-1), z


def project_to_image(
    points_world: Tensor, K: Tensor, cam_to_world: Tensor, image_hw: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Project world points into an image: normalized coordinates, z-depth and visibility.

    Args:
        points_world: ``(..., N, 3)`` world-frame points.
        K: ``(..., 3, 3)`` intrinsics of the ``image_hw`` image (pixels).
        cam_to_world: ``(..., 4, 4)`` OpenCV camera-to-world extrinsics (not checked for
            rigidity here: this runs every training step; :func:`check_rigid` them on load).
        image_hw: ``(H, W)`` of the image ``K`` belongs to.

    Returns:
        ``uv (..., N, 2)``: ``(u' / W, v' / H)``, the continuous pixel coordinates of
        :func:`project_points` divided by the image size, so ``[0, 1)`` spans the image and
        pixel ``(i, j)`` has its center at ``((i + .5) / W, (j + .5) / H)``: the convention of
        ``F.grid_sample(..., align_corners=False)`` after ``grid = 2 uv - 1``.
        ``depth (..., N)``: camera-frame z. ``inside (..., N)`` bool: ``z > 0`` and
        ``0 <= uv < 1`` on both axes. ``uv`` of points with ``z <= 0`` is meaningless
        (possibly inf / NaN): mask it with ``inside`` before use.
    """
    H, W = (int(s) for s in image_hw)
    if H <= 0 or W <= 0:
        raise ShapeError(f"project_to_image: image_hw must be positive (H, W), got {image_hw}")
    if points_world.shape[-1] != 3:
        raise ShapeError(
            f"project_to_image: points_world must be (..., N, 3), got {tuple(points_world.shape)}"
        )
    if tuple(K.shape[-2:]) != (3, 3):
        raise ShapeError(f"project_to_image: K must be (..., 3, 3), got {tuple(K.shape)}")
    if tuple(cam_to_world.shape[-2:]) != (4, 4):
        raise ShapeError(
            f"project_to_image: cam_to_world must be (..., 4, 4), got {tuple(cam_to_world.shape)}"
        )
    world_to_cam = invert_rigid(cam_to_world.to(points_world.dtype))
    R = world_to_cam[..., :3, :3]
    t = world_to_cam[..., :3, 3]
    points_cam = points_world @ R.transpose(-1, -2) + t.unsqueeze(-2)  # (..., N, 3)
    pix, depth = project_points(points_cam, K)
    size = torch.tensor([W, H], dtype=pix.dtype, device=pix.device)
    uv = pix / size
    inside = (depth > 0) & ((uv >= 0) & (uv < 1)).all(dim=-1)
    return uv, depth, inside


def unproject_depth(depth, K, cam_to_world=None) -> Tensor:
    """Back-project z-depth images to 3D points, one per pixel.

    Args:
        depth: ``(..., H, W)`` z-depth in metres (any value; invalid depths give invalid points).
        K: ``(..., 3, 3)`` pinhole intrinsics (broadcast against depth's leading dims).
        cam_to_world: ``(..., 4, 4)`` OpenCV camera-to-world, or ``None`` for camera-frame points.
            Checked with :func:`check_rigid`.

    Returns:
        ``(..., H, W, 3)`` points; pixel ``(u, v)`` is unprojected through its center
        ``(u + 0.5, v + 0.5)``: ``y = (v + .5 - cy) / fy * d``, ``x = (u + .5 - cx - s y/d) / fx * d``,
        ``z = d``.
    """
    depth = _as_tensor(depth)
    if not depth.is_floating_point():
        depth = depth.to(torch.get_default_dtype())
    if depth.ndim < 2:
        raise ShapeError(f"unproject_depth: depth must be (..., H, W), got {tuple(depth.shape)}")
    K = _as_tensor(K, dtype=depth.dtype, device=depth.device)
    if tuple(K.shape[-2:]) != (3, 3):
        raise ShapeError(f"unproject_depth: K must be (..., 3, 3), got {tuple(K.shape)}")
    H, W = depth.shape[-2:]
    u = torch.arange(W, dtype=depth.dtype, device=depth.device) + 0.5
    v = torch.arange(H, dtype=depth.dtype, device=depth.device) + 0.5
    Kb = K[..., None, None, :, :]  # (..., 1, 1, 3, 3)
    fx, s, cx = Kb[..., 0, 0], Kb[..., 0, 1], Kb[..., 0, 2]
    fy, cy = Kb[..., 1, 1], Kb[..., 1, 2]
    yn = (v[:, None] - cy) / fy  # (..., H, 1)
    xn = (u[None, :] - cx - s * yn) / fx  # (..., H, W)
    xn, yn = torch.broadcast_tensors(xn, yn)
    pts = torch.stack(torch.broadcast_tensors(xn * depth, yn * depth, depth), dim=-1)
    if cam_to_world is None:
        return pts
    T = _as_tensor(cam_to_world, dtype=depth.dtype, device=depth.device)
    check_rigid(T, "cam_to_world")
    R = T[..., None, None, :3, :3]
    t = T[..., None, None, :3, 3]
    return (R @ pts.unsqueeze(-1)).squeeze(-1) + t


def depth_to_points(
    depth, K, cam_to_world=None, max_depth: float | None = None
) -> tuple[Tensor, Tensor]:
    """World points of the valid pixels of one depth image.

    Args:
        depth: ``(H, W)`` z-depth in metres.
        K: ``(3, 3)``; cam_to_world: ``(4, 4)`` OpenCV (``None``: camera frame).
        max_depth: pixels with ``depth >= max_depth`` are background and dropped (MuJoCo reads
            the background as ``zfar * extent``; pass e.g. ``0.99 * that`` or a workspace range).

    Returns:
        ``points (M, 3)`` in row-major pixel order, and ``pixel_valid (H, W)`` bool, where a
        pixel is valid iff its depth is finite, ``> 0`` and ``< max_depth``. The number of
        dropped pixels is ``(~pixel_valid).sum()``.
    """
    depth = _as_tensor(depth)
    if depth.ndim != 2:
        raise ShapeError(f"depth_to_points: depth must be (H, W), got {tuple(depth.shape)}")
    valid = torch.isfinite(depth) & (depth > 0)
    if max_depth is not None:
        valid &= depth < max_depth
    pts = unproject_depth(depth, K, cam_to_world)
    return pts[valid], valid


# --------------------------------------------------------------------------------------------
# MuJoCo
# --------------------------------------------------------------------------------------------


def _mj_camera_id(model, camera: str | int) -> int:
    import mujoco

    if isinstance(camera, str):
        cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cid < 0:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise ToolkitError(f"MuJoCo model has no camera named {camera!r}; cameras: {names}")
        return cid
    cid = int(camera)
    if not 0 <= cid < model.ncam:
        raise ToolkitError(f"camera id {cid} out of range: the model has {model.ncam} cameras")
    return cid


def mujoco_cam_to_world(model, data, camera: str | int) -> np.ndarray:
    """OpenCV camera-to-world ``(4, 4)`` float64 of a MuJoCo camera in the current ``data``.

    Reads ``data.cam_xpos`` / ``data.cam_xmat`` (valid after ``mj_forward`` / ``mj_step`` /
    ``mj_kinematics``) and flips the y and z camera axes: ``R_cv = R_mj @ diag(1, -1, -1)``.
    """
    cid = _mj_camera_id(model, camera)
    T = np.eye(4)
    T[:3, :3] = np.asarray(data.cam_xmat[cid], dtype=np.float64).reshape(3, 3) @ MJ_TO_CV
    T[:3, 3] = data.cam_xpos[cid]
    return T


def mujoco_intrinsics(model, camera: str | int, height: int, width: int) -> np.ndarray:
    """Pinhole ``K`` ``(3, 3)`` float64 of a MuJoCo camera rendered at ``height x width``.

    Cameras defined by ``fovy`` (the default) give :func:`intrinsics_from_fovy`. Cameras with a
    physical sensor (``sensorsize`` and ``focal``/``focalpixel``/``principal`` in MJCF) are not
    supported yet and raise (MetaWorld and ALOHA cameras use ``fovy``).
    """
    cid = _mj_camera_id(model, camera)
    sensorsize = getattr(model, "cam_sensorsize", None)
    if sensorsize is not None and np.any(np.asarray(sensorsize[cid]) != 0):
        raise ToolkitError(
            f"MuJoCo camera {camera!r} uses sensorsize/focal intrinsics, which are not supported: "
            "define it with fovy"
        )
    return intrinsics_from_fovy(
        float(model.cam_fovy[cid]), height, width, dtype=torch.float64
    ).numpy()
