"""Virtual cameras and the camera rigs that render point clouds into them (CLAMP / RVT style).

:class:`VirtualCameras` holds ``V`` cameras (perspective or orthographic, optionally per batch
element); the rigs build the standard sets: CLAMP's fixed + wrist views, RVT's 5 orthographic
views and the 16-view dome ablation. :mod:`toolkit.ops.render` renders clouds into them (and
re-exports everything here). See docs/rendering.md for the conventions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from toolkit.ops.cameras import _as_tensor, check_rigid, intrinsics_from_fovy, invert_rigid, look_at
from toolkit.utils.errors import ShapeError, ToolkitError

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
    "wrist_cameras",
]

CLAMP_VIEW_NAMES = ("overhead", "front_left", "back_right", "wrist_left", "wrist_right")
ORTHOGONAL_VIEW_NAMES = ("top", "front", "back", "left", "right")


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
            raise ShapeError(
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
                raise ShapeError(
                    f"VirtualCameras: K must be (..., V={lead[-1]}, 3, 3), got {tuple(self.K.shape)}"
                )
        elif self.projection == "orthographic":
            if self.ortho_extent is None:
                raise ToolkitError("VirtualCameras: projection='orthographic' needs ortho_extent")
            self.ortho_extent = _as_tensor(
                self.ortho_extent, dtype=self.cam_to_world.dtype, device=self.cam_to_world.device
            )
            if self.ortho_extent.shape[-1] != 2 or self.ortho_extent.shape[-2] != lead[-1]:
                raise ShapeError(
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
                raise ShapeError(
                    f"VirtualCameras: names must have one entry per view ({self.num_views}), "
                    f"got {len(self.names)}"
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
                raise ShapeError(
                    f"VirtualCameras.expand: camera batch must be 1 or {batch_size}, "
                    f"got {t.shape[0]} (shape {tuple(t.shape)})"
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
# Camera rigs
# --------------------------------------------------------------------------------------------


def _bounds(workspace_bounds) -> Tensor:
    b = _as_tensor(workspace_bounds)
    if tuple(b.shape[-2:]) != (2, 3):
        raise ShapeError(
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
        raise ShapeError(f"gripper_poses must be (..., G, 4, 4), got {tuple(G.shape)}")
    check_rigid(G, "gripper_poses")
    off = _as_tensor(offset, dtype=G.dtype, device=G.device)
    if off.shape == (4, 4):
        check_rigid(off, "wrist offset")
    elif off.shape == (3,):
        off = look_at(off, _as_tensor(target, dtype=G.dtype), _as_tensor(up, dtype=G.dtype))
    else:
        raise ShapeError(f"wrist_cameras: offset must be (4, 4) or (3,), got {tuple(off.shape)}")
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
