"""Hooks of CLAR pretraining: teacher-feature caching (pictures: :mod:`toolkit.engine.clar_viz`)."""

from __future__ import annotations

import os
from typing import Any

from mmengine.dist import barrier, get_rank
from mmengine.hooks import Hook

from toolkit.registry import HOOKS

__all__ = ["TeacherCacheHook"]


@HOOKS.register_module()
class TeacherCacheHook(Hook):
    """Before training, runs the frozen image teacher once over every frame of the pretraining
    dataset and serves its outputs from disk afterwards.

    The image teacher is the most expensive part of a CLAR step on CPU (a ViT-B/32 frame costs
    more than the Point-MAE forward and backward), and its outputs never change: caching them
    turns every later epoch into a read. The cache is keyed by the teacher's fingerprint
    (weights / config), so changing the teacher recomputes it; a rerun reuses it.

    Args:
        cache_dir: where caches live (default ``<data_root>/.teacher_cache``).
        batch_size: frames per teacher forward while filling.
    """

    priority = "VERY_HIGH"

    def __init__(self, cache_dir: str | None = None, batch_size: int = 32) -> None:
        self.cache_dir = cache_dir
        self.batch_size = batch_size

    def before_train(self, runner: Any) -> None:
        from toolkit.models.teachers import TeacherFeatureCache, precompute_teacher_cache

        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        teacher = getattr(model, "image_teacher", None)
        if teacher is None:
            runner.logger.info("TeacherCacheHook: no image teacher, nothing to cache")
            return
        dataset = runner.train_dataloader.dataset
        root = dataset.data_root
        cache_dir = self.cache_dir or os.path.join(root, ".teacher_cache")
        by_camera: dict[str, list[str]] = {}
        for path, cam in zip(dataset.paths, dataset.cameras, strict=True):
            by_camera.setdefault(cam, []).append(path)
        if get_rank() == 0:
            for cam, paths in by_camera.items():
                stats = precompute_teacher_cache(
                    teacher, paths, cam, cache_dir, root, batch_size=self.batch_size
                )
                runner.logger.info(
                    f"TeacherCacheHook: camera {cam}: {stats['episodes']} episodes, "
                    f"{stats['frames']} frames computed ({stats['filled']} files written) in "
                    f"{stats['cache'].root}"
                )
        barrier()
        cache = TeacherFeatureCache.for_teacher(teacher, cache_dir, root)
        cameras = {
            os.path.relpath(p, root): c for p, c in zip(dataset.paths, dataset.cameras, strict=True)
        }
        model.attach_teacher_cache(cache, root, cameras)
