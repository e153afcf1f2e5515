"""MetaWorld camera rig, workspace bounds and a fast offscreen renderer.

Cameras (all defined in MetaWorld's ``xyz_base.xml``; fovy in degrees):

==============  =====  =====================================================================
name            fovy   notes
==============  =====  =====================================================================
corner          45     CLAR / Lift3D default (front-left, looking at the table)
corner2         60     CLAR perspective-variation test camera (front-right, higher)
corner3         45     high, right
corner4         60     low, right
topview         45     straight down
behindGripper   60     attached to the hand
gripperPOV      90     attached to the hand
==============  =====  =====================================================================

The corner cameras are rolled 180 degrees in the XML: rendered as-is their images are upside
down. With ``upright=True`` (the default) the renderer rotates such images by 180 degrees and
rotates the reported camera pose about its optical axis to match
(``T' = T @ diag(-1, -1, 1, 1)`` in OpenCV axes), so images, intrinsics and extrinsics stay
consistent (the principal point is the image center, so ``K`` is unchanged) and the point
cloud is the same either way.

Rendering uses :class:`mujoco.Renderer` with shadows and reflections off and multisample
anti-aliasing off (MetaWorld's model asks for 4x MSAA): on a CPU (Mesa llvmpipe) each of the
two costs about 3x. MSAA off also keeps depth edges sharp (no depth averaged across an
object's silhouette, hence no "flying" points between objects). See docs/suites/metaworld.md.

:meth:`MujocoRig.rgbd` reads RGB and depth from ONE render pass. :class:`mujoco.Renderer`'s
depth mode renders the scene a second time with segmentation colours only to read its depth
buffer; a normal (lit) render writes the same depth buffer, so one ``mjr_render`` followed by
``mjr_readPixels(rgb, depth)`` gives the same RGB and the same depth values (the same near/far
conversion as ``mujoco/renderer.py``), for about half the cost on a CPU renderer, where a pass
is dominated by per-triangle work (the ALOHA arms draw ~60k triangles), not by pixels. It falls
back to two passes where the buffers differ: semi-transparent geoms write no depth in a lit
render, while a skybox does (at its sphere's distance, where the depth mode reads the far
plane), and so may reflections (off here by default). MetaWorld's scene has a skybox (two
passes); ALOHA's has neither (one pass).
"""

from __future__ import annotations

import numpy as np

from toolkit.envs.base import CameraSpec

#: Every MetaWorld camera, with its vertical field of view in degrees.
CAMERA_FOVY: dict[str, float] = {
    "corner": 45.0,
    "corner2": 60.0,
    "corner3": 45.0,
    "corner4": 60.0,
    "topview": 45.0,
    "behindGripper": 60.0,
    "gripperPOV": 90.0,
}

DEFAULT_SIZE = (224, 224)
#: Every camera at the default 224x224 size.
CAMERA_RIG: dict[str, CameraSpec] = {n: CameraSpec(n, *DEFAULT_SIZE) for n in CAMERA_FOVY}
#: CLAR / Lift3D train camera, and the perspective-variation test camera.
DEFAULT_CAMERA = "corner"
PERSPECTIVE_TEST_CAMERA = "corner2"

#: World-frame crop of the point cloud: ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` metres.
#: Keeps the table top (z = 0), everything on it and the arm above it; drops the floor, the
#: table's sides and the background. Same for every task (objects stay inside it).
WORKSPACE_BOUNDS = np.array([[-0.6, 0.2, -0.01], [0.6, 1.1, 0.8]], dtype=np.float64)

#: Depth beyond this (metres) is background (MuJoCo reads empty pixels as zfar * extent).
MAX_DEPTH = 10.0

#: OpenCV-axes rotation of a camera by 180 degrees about its optical axis.
ROLL_180 = np.diag([-1.0, -1.0, 1.0, 1.0])


class MujocoRig:
    """Renders RGB and metric depth of named cameras of one MuJoCo model, shadows off.

    One :class:`mujoco.Renderer` per distinct image size. Images of cameras whose image "up"
    points down in the world are rotated by 180 degrees when ``upright`` (see module doc).
    """

    def __init__(
        self,
        model,
        cameras: tuple[CameraSpec, ...],
        upright: bool = True,
        shadows: bool = False,
        reflections: bool = False,
        msaa_samples: int = 0,
    ) -> None:
        import mujoco

        from toolkit.ops.cameras import mujoco_intrinsics

        self._mujoco = mujoco
        self.model = model
        self.cameras = {c.name: c for c in cameras}
        self.upright = upright
        self._flags = {
            mujoco.mjtRndFlag.mjRND_SHADOW: int(shadows),
            mujoco.mjtRndFlag.mjRND_REFLECTION: int(reflections),
        }
        self._ids = {}
        for c in cameras:
            cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, c.name)
            if cid < 0:
                names = [model.camera(i).name for i in range(model.ncam)]
                from toolkit.utils.errors import ToolkitError

                raise ToolkitError(f"unknown MetaWorld camera {c.name!r}; cameras: {names}")
            self._ids[c.name] = cid
        # Set before the first Renderer: its offscreen buffer is created with this many samples.
        model.vis.quality.offsamples = int(msaa_samples)
        # Offscreen buffer must hold the largest image.
        vis = model.vis.global_
        vis.offwidth = max(int(vis.offwidth), *(c.width for c in cameras))
        vis.offheight = max(int(vis.offheight), *(c.height for c in cameras))
        self._renderers: dict[tuple[int, int], object] = {}
        self._K = {c.name: mujoco_intrinsics(model, c.name, c.height, c.width) for c in cameras}
        self._flip: dict[str, bool] = {}
        self._one_pass: bool | None = None

    def _renderer(self, cam: CameraSpec):
        key = (cam.height, cam.width)
        if key not in self._renderers:
            self._renderers[key] = self._mujoco.Renderer(self.model, cam.height, cam.width)
        return self._renderers[key]

    def flipped(self, data, name: str) -> bool:
        """Whether ``name``'s images are rotated by 180 degrees (decided once per camera)."""
        if name not in self._flip:
            up_z = float(np.asarray(data.cam_xmat[self._ids[name]]).reshape(3, 3)[2, 1])
            self._flip[name] = bool(self.upright and up_z < 0.0)
        return self._flip[name]

    def intrinsics(self, name: str) -> np.ndarray:
        """``(3, 3)`` float64 pinhole K of ``name`` at its image size."""
        return self._K[name].copy()

    def extrinsics(self, data, name: str) -> np.ndarray:
        """``(4, 4)`` float64 OpenCV camera-to-world of ``name`` now (upright-corrected)."""
        from toolkit.ops.cameras import mujoco_cam_to_world

        T = mujoco_cam_to_world(self.model, data, self._ids[name])
        return T @ ROLL_180 if self.flipped(data, name) else T

    def _render(self, data, name: str, depth: bool) -> np.ndarray:
        cam = self.cameras[name]
        r = self._renderer(cam)
        if depth:
            r.enable_depth_rendering()
        else:
            r.disable_depth_rendering()
        r.update_scene(data, camera=self._ids[name])
        for flag, value in self._flags.items():
            r.scene.flags[flag] = value
        img = r.render()
        if self.flipped(data, name):
            img = img[::-1, ::-1]
        return np.ascontiguousarray(img)

    def rgb(self, data, name: str) -> np.ndarray:
        """``(H, W, 3)`` uint8."""
        return self._render(data, name, depth=False)

    def depth(self, data, name: str) -> np.ndarray:
        """``(H, W)`` float32 metric z-depth; background reads as ``zfar * extent`` (~113 m)."""
        return self._render(data, name, depth=True).astype(np.float32, copy=False)

    @property
    def one_pass(self) -> bool:
        """Whether :meth:`rgbd` renders once: no skybox, no reflections and no visible
        semi-transparent geom (module doc)."""
        if self._one_pass is None:
            mj = self._mujoco
            skybox = bool((np.asarray(self.model.tex_type) == mj.mjtTexture.mjTEXTURE_SKYBOX).any())
            reflections = bool(self._flags[mj.mjtRndFlag.mjRND_REFLECTION])
            self._one_pass = not (skybox or reflections or _has_visible_transparency(self.model))
        return self._one_pass

    def rgbd(self, data, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb (H, W, 3) uint8, depth (H, W) float32)``: :meth:`rgb` and :meth:`depth` of
        the same state, read from one render pass (two when :attr:`one_pass` is False)."""
        r = self._renderer(self.cameras[name])
        # The low-level path needs the Renderer's GL objects; fall back if a MuJoCo version
        # renames them.
        ctx, rect = getattr(r, "_mjr_context", None), getattr(r, "_rect", None)
        if not self.one_pass or ctx is None or rect is None:
            return self.rgb(data, name), self.depth(data, name)
        mujoco = self._mujoco
        r.disable_depth_rendering()
        r.update_scene(data, camera=self._ids[name])
        for flag, value in self._flags.items():
            r.scene.flags[flag] = value
        gl = getattr(r, "_gl_context", None)
        if gl is not None:
            gl.make_current()
        rgb = np.empty((r.height, r.width, 3), dtype=np.uint8)
        raw = np.empty((r.height, r.width), dtype=np.float32)
        mujoco.mjr_render(rect, r.scene, ctx)
        mujoco.mjr_readPixels(rgb, raw, rect, ctx)
        depth = _linear_depth(self.model, raw)
        # OpenGL rows run bottom-up (Renderer.render flips them); a flipped camera also mirrors
        # the columns (flip rows, then rotate by 180 degrees).
        if self.flipped(data, name):
            rgb, depth = rgb[:, ::-1], depth[:, ::-1]
        else:
            rgb, depth = rgb[::-1], depth[::-1]
        return np.ascontiguousarray(rgb), np.ascontiguousarray(depth)

    def close(self) -> None:
        for r in self._renderers.values():
            try:
                r.close()
            except Exception:  # noqa: BLE001 - EGL teardown at exit is best-effort
                pass
        self._renderers.clear()


def _linear_depth(model, raw: np.ndarray) -> np.ndarray:
    """OpenGL depth-buffer values ``(H, W)`` -> float32 metric z-depth, with the arithmetic of
    :meth:`mujoco.Renderer.render` (mujoco 3.x ``renderer.py``), so both paths agree bit for bit.
    """
    extent = model.stat.extent
    zfar = np.float32(model.vis.map.zfar * extent)
    znear = np.float32(model.vis.map.znear * extent)
    c_coef = -(zfar + znear) / (zfar - znear)
    d_coef = -(np.float32(2) * zfar * znear) / (zfar - znear)
    c_coef = np.float32(-0.5) * c_coef - np.float32(0.5)
    d_coef = np.float32(-0.5) * d_coef
    return (d_coef / (raw.astype(np.float64) + c_coef)).astype(np.float32)


def _has_visible_transparency(model) -> bool:
    """Whether a geom drawn by default (groups 0-2) is semi-transparent (0 < alpha < 1), by its
    own colour or its material's. Such geoms do not write the depth buffer of a normal render
    (fully transparent ones, alpha 0, are not drawn at all in either mode)."""
    import mujoco

    visible = np.asarray(mujoco.MjvOption().geomgroup, dtype=bool)
    group = np.clip(np.asarray(model.geom_group), 0, len(visible) - 1)
    alpha = np.asarray(model.geom_rgba)[:, 3]
    semi = (alpha > 0) & (alpha < 1)
    matid = np.asarray(model.geom_matid)
    has_mat = (matid >= 0) & (alpha > 0)
    if has_mat.any():
        mat_alpha = np.asarray(model.mat_rgba)[matid[has_mat], 3]
        semi[has_mat] |= (mat_alpha > 0) & (mat_alpha < 1)
    return bool((semi & visible[group]).any())
