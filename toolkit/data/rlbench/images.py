"""RLBench's per-frame PNGs: RGB, RGB-encoded depth, RGB-coded mask handles.

Decoding mirrors RLBench (``rlbench/backend/utils.py``, see :mod:`.format`):

- depth: ``image_to_float_array(img, DEPTH_SCALE)`` = ``(65536 R + 256 G + B) / (2**24 - 1)``,
  a depth normalized between the camera's clipping planes, then metres as
  ``near + d * (far - near)`` (``get_stored_demos``);
- mask: object handle ``R + 256 G + 65536 B`` (the RGB coding of RLBench's mask sensors).
  RLBench's own ``rgb_handles_to_mask`` multiplies the uint8 image by 255 in place, which wraps
  around for PNG input; we decode the stored bytes directly.
"""

from __future__ import annotations

import os

import numpy as np

from toolkit.data.rlbench.format import DEPTH_SCALE
from toolkit.data.rlbench.unpickler import RLBenchDataError

__all__ = ["decode_depth", "decode_mask", "depth_to_metres", "read_png"]


def read_png(path: str | os.PathLike, what: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels of an 8-bit RGB PNG.

    Args:
        path: the PNG. what: what it should hold, for messages ("front depth frame 3").
        size: expected ``(H, W)``; another size raises.

    Raises:
        RLBenchDataError: missing file, unreadable / truncated image, not 8-bit RGB, wrong size;
            the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RLBenchDataError(f"{path}: expected the {what}, found nothing (missing frame)")
    try:
        with Image.open(path) as img:
            mode = img.mode
            arr = np.asarray(img.convert("RGB") if mode in ("RGBA", "P") else img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RLBenchDataError(
            f"{path}: expected the {what} as a PNG, found an unreadable image "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise RLBenchDataError(
            f"{path}: expected the {what} as an 8-bit RGB image, found mode {mode} "
            f"{arr.dtype} {tuple(arr.shape)}"
        )
    if size is not None and tuple(arr.shape[:2]) != tuple(size):
        raise RLBenchDataError(
            f"{path}: expected the {what} of size {tuple(size)} (H, W), found {tuple(arr.shape[:2])}"
        )
    return arr


def decode_depth(img: np.ndarray, scale: float = DEPTH_SCALE) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB-packed depth -> ``(H, W)`` float64 ``(65536 R + 256 G + B) / scale``.

    The inverse of RLBench's ``float_array_to_rgb_image(d, scale_factor=DEPTH_SCALE)``, up to its
    rounding (``floor(d * scale + 0.5)``): the result is within ``0.5 / scale`` of ``d``.
    """
    rgb = np.asarray(img).astype(np.int64)
    return (rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]) / float(scale)


def depth_to_metres(depth01: np.ndarray, near: float, far: float) -> np.ndarray:
    """RLBench's normalized depth -> metric z-depth: ``near + d * (far - near)``."""
    return near + np.asarray(depth01, dtype=np.float64) * (far - near)


def decode_mask(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB-coded mask -> ``(H, W)`` int32 object handles ``R + 256 G + 65536 B``."""
    rgb = np.asarray(img).astype(np.int32)
    return rgb[..., 0] + rgb[..., 1] * 256 + rgb[..., 2] * 65536
