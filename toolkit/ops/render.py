"""Virtual multi-view rendering of point clouds (CLAMP / RVT style), in pure batched torch.

A point cloud ``(B, N, 3)`` in the world frame is splatted into ``V`` virtual cameras per cloud,
giving ``(B, V, 4, H, W)`` images with channels ``(depth, x, y, z)``: the z-depth of the nearest
point in the camera and its world coordinates. See docs/rendering.md for the conventions,
camera rigs and benchmark figures.

Z-buffer: every (point, view) pair that lands in the image gets an int64 key
``bits(float32 depth) * 2**32 + point_index``; the bit pattern of a positive float32 is monotonic
in its value, so ``scatter_reduce_(amin)`` over the pixel index keeps the nearest point, and
**ties (equal float32 depth) go to the lowest point index**. This is the RVT-2 packing without
depth quantization. Invalid pairs are sent to one dummy slot (``torch.where``, no boolean-mask
indexing, so shapes stay static and torch.compile-friendly).
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from toolkit.ops.cameras import _as_tensor, check_rigid, intrinsics_from_fovy, invert_rigid, look_at
from toolkit.utils.errors import ToolkitError

__all__ = [
    "CLAMP_VIEW_NAMES",
    "DEFAULT_WRIST_EYE",
    "DEFAULT_WRIST_TARGET",
    "DEFAULT_WRIST_UP",
    "ORTHOGONAL_VIEW_NAMES",
    "VirtualCameras",
    "clamp_cameras",
    "clamp_fixed_cameras",
    "dome_cameras",
    "orthogonal_cameras",
    "patch_coordinates",
    "render_views",
    "tile_views",
    "untile_views",
    "valid_pixels",
    "wrist_cameras",
]

CLAMP_VIEW_NAMES = ("overhead", "front_left", "back_right", "wrist_left", "wrist_right")
ORTHOGONAL_VIEW_NAMES = ("top", "front", "back", "left", "right")

_SENTINEL = torch.iinfo(torch.int64).max
_SHIFT = 1 << 32  # multiply, not <<: int64 shifts are not vectorized on CPU (10x slower)
_LOW32 = 0xFFFFFFFF


def _image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    h, w = image_size
    return int(h), int(w)


# --------------------------------------------------------------------------------------------
# Cameras
# --------------------------------------------------------------------------------------------


@dataclass
class VirtualCameras:
    """A set of ``V`` virtual cameras, optionally per batch element.

    Attributes:
        cam_to_world: ``(V, 4, 4)`` (shared by the batch) or ``(B, V, 4, 4)``, OpenCV convention.
        height, width: image size in pixels (one size for all views).
        projection: ``"perspective"`` (needs ``K``) or ``"orthographic"`` (needs
            ``ortho_extent``).
        K: ``(V, 3, 3)`` or ``(B, V, 3, 3)`` pinhole intrinsics (pixel centers at ``u + 0.5``).
        ortho_extent: ``(V, 2)`` or ``(B, V, 2)``: the (width, height) in metres of the
            orthographic window centred on the optical axis; a camera-frame point projects to
            ``u' = (x / extent_w + 0.5) W``, ``v' = (y / extent_h + 0.5) H``, depth ``z``.
        names: optional view names (length ``V``).
        near: points with camera depth ``z <= near`` are not rendered (both projections).
    """

    cam_to_world: Tensor
    height: int
    width: int
    projection: str = "perspective"
    K: Tensor | None = None
    ortho_extent: Tensor | None = None
    names: tuple[str, ...] | None = None
    near: float = 1e-4

    def __post_init__(self) -> None:
        self.cam_to_world = _as_tensor(self.cam_to_world)
        if self.cam_to_world.ndim not in (3, 4) or tuple(self.cam_to_world.shape[-2:]) != (4, 4):
            raise ToolkitError(
                f"VirtualCameras.cam_to_world must be (V, 4, 4) or (B, V, 4, 4), "
                f"got {tuple(self.cam_to_world.shape)}"
            )
        lead = tuple(self.cam_to_world.shape[:-2])
        if self.projection == "perspective":
            if self.K is None:
                raise ToolkitError("VirtualCameras: projection='perspective' needs K")
            self.K = _as_tensor(
                self.K, dtype=self.cam_to_world.dtype, device=self.cam_to_world.device
            )
            if self.K.ndim == 2:  # one K for every view
                self.K = self.K.expand(lead[-1], 3, 3)
            if tuple(self.K.shape[-2:]) != (3, 3) or self.K.shape[-3] != lead[-1]:
                raise ToolkitError(
                    f"VirtualCameras: K must be (..., V={lead[-1]}, 3, 3), got {tuple(self.K.shape)}"
                )
        elif self.projection == "orthographic":
            if self.ortho_extent is None:
                raise ToolkitError("VirtualCameras: projection='orthographic' needs ortho_extent")
            self.ortho_extent = _as_tensor(
                self.ortho_extent, dtype=self.cam_to_world.dtype, device=self.cam_to_world.device
            )
            if self.ortho_extent.shape[-1] != 2 or self.ortho_extent.shape[-2] != lead[-1]:
                raise ToolkitError(
                    f"VirtualCameras: ortho_extent must be (..., V={lead[-1]}, 2), "
                    f"got {tuple(self.ortho_extent.shape)}"
                )
        else:
            raise ToolkitError(
                f"VirtualCameras: projection must be 'perspective' or 'orthographic', "
                f"got {self.projection!r}"
            )
        self.height, self.width = int(self.height), int(self.width)
        if self.height <= 0 or self.width <= 0:
            raise ToolkitError(f"VirtualCameras: bad image size {self.height}x{self.width}")
        if self.names is not None:
            self.names = tuple(self.names)
            if len(self.names) != self.num_views:
                raise ToolkitError(
                    f"VirtualCameras: {len(self.names)} names for {self.num_views} views"
                )

    @classmethod
    def from_world_to_cam(cls, world_to_cam, height: int, width: int, **kwargs) -> VirtualCameras:
        """Build from world-to-camera extrinsics (checked rigid, then inverted)."""
        w2c = _as_tensor(world_to_cam)
        check_rigid(w2c, "world_to_cam")
        return cls(invert_rigid(w2c), height, width, **kwargs)

    @property
    def num_views(self) -> int:
        return self.cam_to_world.shape[-3]

    @property
    def world_to_cam(self) -> Tensor:
        return invert_rigid(self.cam_to_world)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """``()`` for cameras shared by the batch, ``(B,)`` otherwise."""
        return tuple(self.cam_to_world.shape[:-3])

    def to(self, device=None, dtype=None) -> VirtualCameras:
        def mv(t):
            return None if t is None else t.to(device=device, dtype=dtype or t.dtype)

        return replace(
            self,
            cam_to_world=mv(self.cam_to_world),
            K=mv(self.K),
            ortho_extent=mv(self.ortho_extent),
        )

    def expand(self, batch_size: int) -> VirtualCameras:
        """Cameras with an explicit batch dimension ``(B, V, ...)``."""

        def ex(t: Tensor | None, per_view_ndim: int) -> Tensor | None:
            if t is None:
                return None
            if t.ndim == per_view_ndim:
                t = t.unsqueeze(0)
            if t.shape[0] not in (1, batch_size):
                raise ToolkitError(
                    f"VirtualCameras: batch {t.shape[0]} does not match {batch_size}"
                )
            return t.expand(batch_size, *t.shape[1:])

        return replace(
            self,
            cam_to_world=ex(self.cam_to_world, 3),
            K=ex(self.K, 3),
            ortho_extent=ex(self.ortho_extent, 2),
        )

    @staticmethod
    def cat(cameras: Sequence[VirtualCameras]) -> VirtualCameras:
        """Concatenate camera sets along the view axis (same projection and image size)."""
        first = cameras[0]
        for c in cameras[1:]:
            if (c.projection, c.height, c.width) != (first.projection, first.height, first.width):
                raise ToolkitError(
                    "VirtualCameras.cat: all camera sets need the same projection and image size, "
                    f"got {(first.projection, first.height, first.width)} and "
                    f"{(c.projection, c.height, c.width)}"
                )
        batch = max((c.batch_shape[0] if c.batch_shape else 0) for c in cameras)
        if batch:
            cameras = [c.expand(batch) for c in cameras]
        names = None
        if all(c.names is not None for c in cameras):
            names = sum((c.names for c in cameras), ())

        def cat_field(attr):
            vals = [getattr(c, attr) for c in cameras]
            return (
                None
                if vals[0] is None
                else torch.cat(vals, dim=-3 if attr != "ortho_extent" else -2)
            )

        return replace(
            first,
            cam_to_world=cat_field("cam_to_world"),
            K=cat_field("K"),
            ortho_extent=cat_field("ortho_extent"),
            names=names,
        )

    def projection_matrices(self) -> Tensor:
        """``(..., V, 3, 4)`` matrices ``P`` with ``P @ [p; 1] = (u' z, v' z, z)`` (perspective)
        or ``(u', v', z)`` (orthographic) for a world point ``p``."""
        w2c = invert_rigid(self.cam_to_world.to(torch.float64))
        if self.projection == "perspective":
            A = self.K.to(torch.float64)
            offset = torch.zeros(A.shape[:-1], dtype=torch.float64, device=A.device)
        else:
            ext = self.ortho_extent.to(torch.float64)
            scale = torch.stack(
                [self.width / ext[..., 0], self.height / ext[..., 1], torch.ones_like(ext[..., 0])],
                -1,
            )
            A = torch.diag_embed(scale)
            offset = torch.tensor(
                [self.width / 2.0, self.height / 2.0, 0.0], dtype=torch.float64, device=A.device
            ).expand(A.shape[:-1])
        P = A @ w2c[..., :3, :]
        P[..., :, 3] += offset
        return P


# --------------------------------------------------------------------------------------------
# Renderer
# --------------------------------------------------------------------------------------------


def _project_keys(
    points: Tensor,
    P: Tensor,
    mask: Tensor | None,
    H: int,
    W: int,
    perspective: bool,
    near: float,
    arithmetic_keys: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """points (b, N, 3), P (b, V, 3, 4) -> flat pixel (b V N) int64 (dummy = b V H W for
    invalid pairs), z-buffer keys (b V N) int64, depth z (b, V, N), invalid (b, V, N) bool."""
    b, N, _ = points.shape
    V = P.shape[1]
    # One fused (b, 3V, 3) @ (b, 3, N) + bias: broadcasting matmul + add is 20x slower on CPU.
    q = torch.baddbmm(
        P[..., 3:].reshape(b, 3 * V, 1), P[..., :3].reshape(b, 3 * V, 3), points.transpose(1, 2)
    )
    u, v, z = q.view(b, V, 3, N).unbind(2)
    # In-place where possible: fresh multi-MB buffers cost page faults on CPU.
    if perspective:
        inv_z = torch.reciprocal(z)
        u.mul_(inv_z)
        v.mul_(inv_z)
    invalid = z <= near
    invalid |= u < 0
    invalid |= u >= W
    invalid |= v < 0
    invalid |= v >= H
    if mask is not None:
        invalid |= ~mask.unsqueeze(1)
    # u, v >= 0 where valid, so truncation == floor. int32 arithmetic (b V H W < 2**31) is 3x
    # faster than int64; scatter needs int64 indices.
    itype = torch.int32 if b * V * H * W < 2**31 - 1 else torch.int64
    pix = v.to(itype).mul_(W).add_(u.to(itype))
    pix += torch.arange(b * V, device=points.device, dtype=itype).view(b, V, 1) * (H * W)
    pix = pix.masked_fill_(invalid, b * V * H * W).to(torch.int64)
    zbits = z.to(torch.float32).view(torch.int32)  # >= 0 for z > 0, monotonic in z
    if arithmetic_keys:
        key = zbits.to(torch.int64) * _SHIFT + torch.arange(N, device=points.device)
    else:  # same value: little-endian (low = index, high = depth bits) pair viewed as int64
        idx = torch.arange(N, device=points.device, dtype=torch.int32).expand(b, V, N)
        key = torch.stack([idx, zbits], dim=-1).view(torch.int64).squeeze(-1)
    return pix.view(-1), key.view(-1), z, invalid


def _gather(buf: Tensor, points: Tensor, z: Tensor, H: int, W: int, fill_value: float) -> Tensor:
    """Winner keys (b V H W) -> (b, V, 4, H, W) (depth, x, y, z)."""
    b, V, N = z.shape
    win = buf.view(b, V, H * W)
    empty = win == _SENTINEL
    idx = torch.where(empty, 0, win & _LOW32)
    out = torch.empty(b, V, 4, H * W, dtype=z.dtype, device=z.device)
    out[:, :, 0] = z.gather(2, idx)
    xyz = points.transpose(1, 2).gather(2, idx.view(b, 1, V * H * W).expand(b, 3, V * H * W))
    out[:, :, 1:] = xyz.view(b, 3, V, H * W).transpose(1, 2)
    out.masked_fill_(empty.unsqueeze(2), fill_value)
    return out.view(b, V, 4, H, W)


_compiled: dict[str, object] = {}


def _maybe_compiled(name: str, fn, use: bool):
    if not use:
        return fn
    if name not in _compiled:
        _compiled[name] = torch.compile(fn, dynamic=None)
    return _compiled[name]


def _compile_default() -> bool:
    return os.environ.get("TOOLKIT_RENDER_COMPILE", "0").lower() in ("1", "true", "yes", "on")


def _render_one(points, P, mask, H, W, perspective, near, fill_value, splat_radius, compiled):
    b, N, _ = points.shape
    V = P.shape[1]
    project = _maybe_compiled("project", _project_keys, compiled)
    gather = _maybe_compiled("gather", _gather, compiled)
    arithmetic = compiled or sys.byteorder != "little"
    pix, key, z, invalid = project(points, P, mask, H, W, perspective, near, arithmetic)
    size = b * V * H * W
    buf = torch.full((size + 1,), _SENTINEL, dtype=torch.int64, device=points.device)
    if splat_radius <= 0:
        buf.scatter_reduce_(0, pix, key, "amin")
    else:
        # Splat each point into the (2r+1)^2 square around its pixel, with the same key.
        local = pix.view(b, V, N) % (H * W)
        row, col = local // W, local % W
        valid = ~invalid
        for dy in range(-splat_radius, splat_radius + 1):
            for dx in range(-splat_radius, splat_radius + 1):
                ok = valid & (row + dy >= 0) & (row + dy < H) & (col + dx >= 0) & (col + dx < W)
                shifted = torch.where(ok, pix.view(b, V, N) + (dy * W + dx), size)
                buf.scatter_reduce_(0, shifted.view(-1), key, "amin")
    return gather(buf[:size], points, z, H, W, fill_value)


def render_views(
    points: Tensor,
    cameras: VirtualCameras,
    mask: Tensor | None = None,
    fill_value: float = 0.0,
    splat_radius: int = 0,
    *,
    compile: bool | None = None,
) -> Tensor:
    """Render point clouds into virtual views with a z-buffer.

    Args:
        points: ``(B, N, 3)`` world-frame points (float32 or float64).
        cameras: :class:`VirtualCameras`, shared ``(V, ...)`` or per cloud ``(B, V, ...)``.
        mask: ``(B, N)`` bool, ``False`` = padding point that is not rendered (e.g. the origin
            points that pad a cloud to a fixed size).
        fill_value: value of all four channels (depth and XYZ) of empty pixels. Rendered depths
            are always ``> near > 0``, so any ``fill_value <= 0`` (or NaN) keeps empty pixels
            distinguishable; :func:`valid_pixels` recovers the mask.
        splat_radius: each point also covers the ``(2r+1)^2`` pixels around its own, with its
            own depth (closes holes of sparse clouds; ``0`` = one pixel per point).
        compile: run the projection/key computation and the gather through ``torch.compile``
            (inductor). ``None`` reads ``TOOLKIT_RENDER_COMPILE`` (default off). Same output
            either way; the first call per shape pays the compile time.

    Returns:
        ``(B, V, 4, H, W)`` in the dtype of ``points``: channel 0 = z-depth in the virtual
        camera (metres; orthographic: distance from the image plane), channels 1-3 = world
        XYZ of the visible point. Ties at equal float32 depth go to the lowest point index.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ToolkitError(f"render_views: points must be (B, N, 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        points = points.to(torch.get_default_dtype())
    B, N, _ = points.shape
    if N >= _SHIFT:
        raise ToolkitError(f"render_views: at most 2**32 - 1 points per cloud, got {N}")
    if mask is not None:
        if tuple(mask.shape) != (B, N):
            raise ToolkitError(
                f"render_views: mask must be (B, N) = {(B, N)}, got {tuple(mask.shape)}"
            )
        mask = mask.to(device=points.device, dtype=torch.bool)
    check_rigid(cameras.cam_to_world, "VirtualCameras.cam_to_world")
    if cameras.batch_shape and cameras.batch_shape[0] not in (1, B):
        raise ToolkitError(
            f"render_views: cameras have batch {cameras.batch_shape[0]} but points have batch {B}"
        )
    P = cameras.to(device=points.device).projection_matrices().to(points.dtype)
    V = P.shape[-3]
    P = P.expand(B, V, 3, 4) if P.ndim == 4 else P.unsqueeze(0).expand(B, V, 3, 4)
    H, W = cameras.height, cameras.width
    if B == 0:
        return points.new_zeros(0, V, 4, H, W)
    compiled = _compile_default() if compile is None else bool(compile)
    args = (
        H,
        W,
        cameras.projection == "perspective",
        float(cameras.near),
        float(fill_value),
        int(splat_radius),
    )
    # One cloud at a time: bounded memory (about 40 bytes per (view, point) pair), static shapes
    # for torch.compile, and results that do not depend on the batch they came in (a batched
    # matmul may round differently for different batch sizes).
    outs = []
    for i in range(B):
        m = None if mask is None else mask[i : i + 1]
        try:
            outs.append(_render_one(points[i : i + 1], P[i : i + 1], m, *args, compiled))
        except Exception as exc:  # a failed inductor build must not break rendering
            if not compiled:
                raise
            warnings.warn(
                f"render_views: torch.compile failed ({exc!r}); using eager", stacklevel=2
            )
            compiled = False
            outs.append(_render_one(points[i : i + 1], P[i : i + 1], m, *args, False))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)


# --------------------------------------------------------------------------------------------
# Rendered views -> patches / tiles
# --------------------------------------------------------------------------------------------


def valid_pixels(views: Tensor, fill_value: float = 0.0) -> Tensor:
    """``(..., 4, H, W)`` rendered views -> ``(..., H, W)`` bool: pixels that show a point."""
    depth = views[..., 0, :, :]
    valid = depth > 0
    if not math.isnan(fill_value):
        valid = valid & (depth != fill_value)
    return valid


def patch_coordinates(
    views: Tensor, patch_size: int, fill_value: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Mean world XYZ of the visible points of each ``P x P`` patch (STRING token positions).

    Args:
        views: ``(B, V, 4, H, W)`` from :func:`render_views` (H and W divisible by P).
        patch_size: P.
        fill_value: the ``fill_value`` the views were rendered with.

    Returns:
        ``coords (B, V, H/P, W/P, 3)`` (0 for empty patches) and ``valid (B, V, H/P, W/P)``
        bool (``False`` where no pixel of the patch shows a point).
    """
    *lead, C, H, W = views.shape
    P = int(patch_size)
    if C != 4 or H % P or W % P:
        raise ToolkitError(
            f"patch_coordinates: views must be (..., 4, H, W) with H, W divisible by "
            f"patch_size={P}, got {tuple(views.shape)}"
        )
    pv = valid_pixels(views, fill_value)  # (..., H, W)
    xyz = torch.where(pv.unsqueeze(-3), views[..., 1:, :, :], 0.0)
    gh, gw = H // P, W // P
    sums = xyz.reshape(*lead, 3, gh, P, gw, P).sum(dim=(-3, -1))  # (..., 3, gh, gw)
    counts = pv.reshape(*lead, gh, P, gw, P).sum(dim=(-3, -1))  # (..., gh, gw)
    valid = counts > 0
    coords = sums / counts.clamp(min=1).unsqueeze(-3).to(sums.dtype)
    return coords.movedim(-3, -1), valid


def tile_views(views: Tensor) -> Tensor:
    """``(B, V, C, H, W)`` -> ``(B, C, H, V*W)``: views side by side (CLAMP's 224x1120 input)."""
    B, V, C, H, W = views.shape
    return views.permute(0, 2, 3, 1, 4).reshape(B, C, H, V * W)


def untile_views(x: Tensor, num_views: int) -> Tensor:
    """Inverse of :func:`tile_views`: ``(B, C, H, V*W)`` -> ``(B, V, C, H, W)``."""
    B, C, H, VW = x.shape
    if VW % num_views:
        raise ToolkitError(f"untile_views: width {VW} is not divisible by num_views={num_views}")
    W = VW // num_views
    return x.reshape(B, C, H, num_views, W).permute(0, 3, 1, 2, 4)


# --------------------------------------------------------------------------------------------
# Camera rigs
# --------------------------------------------------------------------------------------------


def _bounds(workspace_bounds) -> Tensor:
    b = _as_tensor(workspace_bounds)
    if tuple(b.shape[-2:]) != (2, 3):
        raise ToolkitError(
            f"workspace_bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] (2, 3), "
            f"got shape {tuple(b.shape)}"
        )
    if bool((b[..., 1, :] <= b[..., 0, :]).any()):
        raise ToolkitError(f"workspace_bounds: max must exceed min on every axis, got {b.tolist()}")
    return b


def _fit_eyes(
    bounds: Tensor,
    dirs: Tensor,
    ups: Tensor,
    fovy_deg: float,
    H: int,
    W: int,
    distance: float | None,
    margin: float,
) -> Tensor:
    """Camera-to-world ``(..., V, 4, 4)`` of cameras looking at the center of ``bounds`` from
    unit directions ``dirs`` ``(V, 3)``, each at the smallest distance at which all 8 corners
    of the box are in view with ``margin`` (or at ``distance``)."""
    center = bounds.mean(dim=-2).unsqueeze(-2)  # (..., 1, 3)
    R = look_at(center + dirs, center, ups)[..., :3, :3]  # orientation does not depend on distance
    if distance is None:
        corners = torch.cartesian_prod(*[torch.arange(2, device=bounds.device)] * 3)
        pts = torch.stack([bounds[..., corners[:, i], i] for i in range(3)], dim=-1)  # (..., 8, 3)
        q = (pts - center).unsqueeze(-3) @ R  # (..., V, 8, 3): camera axes, camera at center
        tan_v = math.tan(math.radians(fovy_deg) / 2) / margin
        tan_h = tan_v * W / H
        need = torch.maximum(q[..., 0].abs() / tan_h, q[..., 1].abs() / tan_v) - q[..., 2]
        clearance = (
            0.05 * (bounds[..., 1, :] - bounds[..., 0, :]).norm(dim=-1)[..., None, None] - q[..., 2]
        )
        dist = torch.maximum(need, clearance).amax(dim=-1)  # (..., V)
    else:
        dist = torch.full(R.shape[:-2], float(distance), dtype=R.dtype, device=R.device)
    return look_at(center + dist.unsqueeze(-1) * dirs, center, ups)


def _perspective_rig(c2w: Tensor, fovy_deg: float, H: int, W: int, names) -> VirtualCameras:
    K = intrinsics_from_fovy(fovy_deg, H, W, dtype=c2w.dtype).to(c2w.device)
    return VirtualCameras(c2w, H, W, K=K.expand(*c2w.shape[:-2], 3, 3), names=names)


def clamp_fixed_cameras(
    workspace_bounds,
    image_size: int | Sequence[int] = 224,
    fovy_deg: float = 60.0,
    elevation_deg: float = 45.0,
    azimuths_deg: Sequence[float] = (225.0, 45.0),
    distance: float | None = None,
    margin: float = 1.05,
) -> VirtualCameras:
    """CLAMP's three fixed views: overhead, front-left, back-right, looking at the workspace.

    All cameras look at the center of ``workspace_bounds`` ``(2, 3)``. Overhead: straight down,
    image top toward +y, +x to the right. Front-left / back-right: at ``elevation_deg`` above
    the horizontal, in the horizontal direction ``azimuths_deg`` from the center
    (counter-clockwise from +x; 225 = toward -x -y: the front-left corner when the robot works
    toward +y from the -y side, as in MetaWorld), image top toward +z. Each camera sits at the
    smallest distance that keeps the whole box in view (``margin`` = 5 % slack), or at
    ``distance``. UNVERIFIED (the paper gives no numbers): fovy, elevation, azimuths, distance.
    """
    b = _bounds(workspace_bounds)
    H, W = _image_hw(image_size)
    el = math.radians(elevation_deg)
    dirs = [[0.0, 0.0, 1.0]]
    for az in azimuths_deg:
        a = math.radians(az)
        dirs.append([math.cos(el) * math.cos(a), math.cos(el) * math.sin(a), math.sin(el)])
    opts = dict(dtype=b.dtype, device=b.device)
    ups = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], **opts)
    c2w = _fit_eyes(b, torch.tensor(dirs, **opts), ups, fovy_deg, H, W, distance, margin)
    return _perspective_rig(c2w, fovy_deg, H, W, CLAMP_VIEW_NAMES[:3])


#: Default wrist camera placement in the gripper frame, for a gripper frame with +x toward the
#: fingertips (the approach axis) and +z the gripper's "up" (ALOHA's ``gripper_link``; MetaWorld's
#: ``hand`` also has +x toward the fingers). It copies the pose of gym_aloha's real wrist
#: cameras relative to ``gripper_link``: 10 cm behind and 16 cm above the origin, looking
#: 31 degrees down toward a point 16 cm ahead of it, gripper +z toward the top of the image.
#: Suites with other gripper frames pass their own offset.
DEFAULT_WRIST_EYE = (-0.10, 0.0, 0.16)
DEFAULT_WRIST_TARGET = (0.16, 0.0, 0.0)
DEFAULT_WRIST_UP = (0.0, 0.0, 1.0)


def wrist_cameras(
    gripper_poses,
    offset=DEFAULT_WRIST_EYE,
    image_size: int | Sequence[int] = 224,
    fovy_deg: float = 75.0,
    target=DEFAULT_WRIST_TARGET,
    up=DEFAULT_WRIST_UP,
    names: Sequence[str] | None = None,
) -> VirtualCameras:
    """Dynamic views attached to grippers: ``cam_to_world = gripper_pose @ offset``.

    Args:
        gripper_poses: ``(..., G, 4, 4)`` gripper-to-world poses (rigid).
        offset: ``(4, 4)`` camera-to-gripper transform (OpenCV camera), or ``(3,)`` camera
            position in the gripper frame, which then looks at ``target`` (gripper frame) with
            ``up`` (gripper frame) toward the top of the image.
        image_size, fovy_deg: perspective intrinsics (UNVERIFIED default 75 degrees).
    """
    G = _as_tensor(gripper_poses)
    if G.ndim < 3:
        raise ToolkitError(f"gripper_poses must be (..., G, 4, 4), got {tuple(G.shape)}")
    check_rigid(G, "gripper_poses")
    off = _as_tensor(offset, dtype=G.dtype, device=G.device)
    if off.shape == (4, 4):
        check_rigid(off, "wrist offset")
    elif off.shape == (3,):
        off = look_at(off, _as_tensor(target, dtype=G.dtype), _as_tensor(up, dtype=G.dtype))
    else:
        raise ToolkitError(f"wrist offset must be (4, 4) or (3,), got {tuple(off.shape)}")
    H, W = _image_hw(image_size)
    c2w = G @ off
    K = intrinsics_from_fovy(fovy_deg, H, W, dtype=c2w.dtype).to(c2w.device)
    if names is None:
        n = G.shape[-3]
        names = ("wrist_left", "wrist_right") if n == 2 else tuple(f"wrist_{i}" for i in range(n))
    return VirtualCameras(c2w, H, W, K=K.expand(*c2w.shape[:-2], 3, 3), names=tuple(names))


def clamp_cameras(
    gripper_poses,
    workspace_bounds,
    image_size: int | Sequence[int] = 224,
    wrist: bool = True,
    wrist_offset=DEFAULT_WRIST_EYE,
    **fixed_kwargs,
) -> VirtualCameras:
    """The CLAMP rig: overhead, front-left, back-right (fixed) + one wrist view per gripper.

    ``gripper_poses`` ``(B, G, 4, 4)`` (G = 2 for a bimanual robot: left, right) gives
    ``(B, 3 + G, ...)`` cameras; ``wrist=False`` (the "no wrist views" ablation) or
    ``gripper_poses=None`` gives the 3 fixed views only. ``fixed_kwargs`` go to
    :func:`clamp_fixed_cameras`.
    """
    fixed = clamp_fixed_cameras(workspace_bounds, image_size, **fixed_kwargs)
    if not wrist or gripper_poses is None:
        return fixed
    wr = wrist_cameras(gripper_poses, wrist_offset, image_size)
    return VirtualCameras.cat([fixed.to(wr.cam_to_world.device, wr.cam_to_world.dtype), wr])


def orthogonal_cameras(
    workspace_bounds, image_size: int | Sequence[int] = 224, margin: float = 1.05
) -> VirtualCameras:
    """The standard 5 orthographic views of RVT / 3D-MVP: top, front, back, left, right.

    Each camera looks at the workspace center along a world axis (top: -z, image top = +y;
    front: +y from the -y side; back: -y; left: +x from the -x side; right: -x; side views have
    +z up) from just outside the workspace, with a square window of side
    ``margin * max(extent)`` (same metric scale in every view, like RVT's cube).
    """
    b = _bounds(workspace_bounds)
    H, W = _image_hw(image_size)
    center = b.mean(dim=-2)
    ext = b[..., 1, :] - b[..., 0, :]
    side = margin * ext.max(dim=-1, keepdim=True).values
    dist = 0.5 * ext.norm(dim=-1, keepdim=True) + 0.01 * side
    opts = dict(dtype=b.dtype, device=b.device)
    dirs = torch.tensor([[0, 0, 1], [0, -1, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0]], **opts)
    ups = torch.tensor([[0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]], **opts)
    eyes = center.unsqueeze(-2) + dist.unsqueeze(-2) * dirs
    c2w = look_at(eyes, center.unsqueeze(-2), ups)
    extent = torch.cat([side * W / max(H, W), side * H / max(H, W)], dim=-1)
    extent = extent.unsqueeze(-2).expand(*c2w.shape[:-2], 2)
    return VirtualCameras(
        c2w, H, W, projection="orthographic", ortho_extent=extent, names=ORTHOGONAL_VIEW_NAMES
    )


def dome_cameras(
    n: int = 16,
    workspace_bounds=None,
    image_size: int | Sequence[int] = 96,
    fovy_deg: float = 60.0,
    min_elevation_deg: float = 15.0,
    max_elevation_deg: float = 75.0,
    distance: float | None = None,
    margin: float = 1.05,
) -> VirtualCameras:
    """``n`` perspective cameras on a dome over the workspace, all looking at its center.

    CLAMP's 16-view dome ablation (16 x 96x96 views, tiled to 96x1536). Elevations are spread
    evenly in ``sin(elevation)`` between the two limits and azimuths advance by the golden
    angle (a Fibonacci spiral), so any ``n`` covers the dome evenly; image top toward +z.
    Distances as in :func:`clamp_fixed_cameras`.
    """
    if workspace_bounds is None:
        raise ToolkitError("dome_cameras: workspace_bounds is required")
    b = _bounds(workspace_bounds)
    H, W = _image_hw(image_size)
    lo, hi = math.sin(math.radians(min_elevation_deg)), math.sin(math.radians(max_elevation_deg))
    golden = math.pi * (3.0 - math.sqrt(5.0))
    dirs = []
    for i in range(n):
        s = lo + (hi - lo) * (i + 0.5) / n
        c = math.sqrt(1.0 - s * s)
        dirs.append([c * math.cos(i * golden), c * math.sin(i * golden), s])
    opts = dict(dtype=b.dtype, device=b.device)
    up = torch.tensor([0.0, 0.0, 1.0], **opts)
    c2w = _fit_eyes(b, torch.tensor(dirs, **opts), up, fovy_deg, H, W, distance, margin)
    return _perspective_rig(c2w, fovy_deg, H, W, tuple(f"dome_{i}" for i in range(n)))
