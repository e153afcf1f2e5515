"""Frozen teachers that CLAR aligns 3D features to (registered in ``BACKBONES``).

- :class:`OpenCLIPImageTeacher`: CLIP image embedding (B, E) + spatial feature map (B, C, h, w).
- :class:`OpenCLIPTextTeacher`: CLIP text embedding (B, E), cached per sentence.
- :class:`MiniLMTextTeacher`: all-MiniLM-L6-v2 sentence embedding (B, 384), offline weights.
- :class:`TeacherFeatureCache` / :func:`precompute_teacher_cache`: per-frame image-teacher
  outputs on disk, keyed by (episode, step, camera) under the teacher's fingerprint.

Weights come from local files only; a random teacher needs ``random_init=True`` and warns
loudly. See docs/teachers.md.
"""

from toolkit.models.teachers._common import (
    RANDOM_TEACHER_BANNER,
    FrozenTeacher,
    RandomTeacherWarning,
)
from toolkit.models.teachers.cache import (
    EpisodeFrames,
    TeacherFeatureCache,
    precompute_teacher_cache,
)
from toolkit.models.teachers.clip import (
    OpenCLIPImageTeacher,
    OpenCLIPTextTeacher,
    build_clip_teachers,
    to_unit_images,
)
from toolkit.models.teachers.clip_loading import (
    TINY_RN_CLIP_CFG,
    TINY_VIT_CLIP_CFG,
    CLIPWeightsInfo,
    LoadedCLIP,
    load_clip,
)
from toolkit.models.teachers.minilm import MiniLMTextTeacher

__all__ = [
    "RANDOM_TEACHER_BANNER",
    "TINY_RN_CLIP_CFG",
    "TINY_VIT_CLIP_CFG",
    "CLIPWeightsInfo",
    "EpisodeFrames",
    "FrozenTeacher",
    "LoadedCLIP",
    "MiniLMTextTeacher",
    "OpenCLIPImageTeacher",
    "OpenCLIPTextTeacher",
    "RandomTeacherWarning",
    "TeacherFeatureCache",
    "build_clip_teachers",
    "load_clip",
    "precompute_teacher_cache",
    "to_unit_images",
]
