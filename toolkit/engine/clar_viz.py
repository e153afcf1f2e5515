"""CLAR pictures: where the local alignment samples the teacher image, and what the MAE rebuilds.

``draw_local_alignment`` and ``draw_reconstruction`` take numpy arrays (one sample);
:class:`CLARVisualizationHook` draws both for fixed training frames during pretraining.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from torch.utils.data import default_collate

from toolkit.registry import HOOKS
from toolkit.utils.io import atomic_write

__all__ = ["CLARVisualizationHook", "draw_local_alignment", "draw_reconstruction"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_local_alignment(
    rgb: np.ndarray,
    reference_points: np.ndarray,
    valid: np.ndarray,
    locations: np.ndarray,
    weights: np.ndarray,
    path: str,
    max_patches: int = 12,
    title: str = "",
) -> None:
    """Teacher image with every patch centre's projection and the deformable samples of a few.

    Args:
        rgb: (H, W, 3) uint8. reference_points: (G, 2) normalized (x, y). valid: (G,) bool.
        locations: (G, heads, points, 2) normalized sampling locations. weights: (G, heads,
            points) attention weights (marker area proportional to the weight).
        max_patches: patches (evenly spread over the valid ones) whose samples are drawn.
    """
    plt = _plt()
    h, w = rgb.shape[:2]
    fig, ax = plt.subplots(figsize=(5.6, 5.6), dpi=120)
    ax.imshow(rgb)
    ref = reference_points * np.array([w, h])
    ok = valid.astype(bool)
    ax.scatter(ref[ok, 0], ref[ok, 1], s=22, c="white", edgecolors="black", lw=0.8, zorder=3,
               label=f"patch centres ({ok.sum()} valid)")  # fmt: skip
    if (~ok).any():
        inside = (~ok) & np.all((reference_points >= 0) & (reference_points < 1), axis=-1)
        ax.scatter(ref[inside, 0], ref[inside, 1], s=14, c="red", marker="x",
                   label=f"masked out ({(~ok).sum()})")  # fmt: skip
    chosen = np.flatnonzero(ok)
    if len(chosen) > max_patches:
        chosen = chosen[np.linspace(0, len(chosen) - 1, max_patches).round().astype(int)]
    cmap = plt.get_cmap("tab20")
    for n, g in enumerate(chosen):
        loc = locations[g].reshape(-1, 2) * np.array([w, h])
        wt = weights[g].reshape(-1)
        color = cmap(n % 20)
        for p in loc:
            ax.plot([ref[g, 0], p[0]], [ref[g, 1], p[1]], color=color, lw=0.4, alpha=0.5)
        ax.scatter(loc[:, 0], loc[:, 1], s=2 + 40 * wt / max(wt.max(), 1e-8), color=color,
                   alpha=0.8, edgecolors="none")  # fmt: skip
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
    ax.set_title(
        title or "local alignment: deformable samples (area ~ attention weight)", fontsize=9
    )
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def draw_reconstruction(
    centers: np.ndarray,
    neighborhoods: np.ndarray,
    mask: np.ndarray,
    pred: np.ndarray,
    masked_idx: np.ndarray,
    path: str,
    title: str = "",
) -> None:
    """Three 3D views: the grouped input, the visible patches, visible + predicted patches.

    Args:
        centers: (G, 3). neighborhoods: (G, K, 3) relative to their centres. mask: (G,) bool
            (True = masked). pred: (M, K', 3) predictions relative to the masked centres, in
            the order of ``masked_idx`` (M,).
    """
    plt = _plt()
    full = (neighborhoods + centers[:, None]).reshape(-1, 3)
    vis = (neighborhoods[~mask] + centers[~mask][:, None]).reshape(-1, 3)
    rec = (pred + centers[masked_idx][:, None]).reshape(-1, 3)
    gt_masked = (neighborhoods[mask] + centers[mask][:, None]).reshape(-1, 3)
    fig = plt.figure(figsize=(12, 4.2), dpi=110)
    panels = [
        ("input patches", [(full, "tab:gray")]),
        (f"visible ({(~mask).sum()} of {len(mask)} patches)", [(vis, "tab:blue")]),
        ("visible + predicted (red); masked truth (grey)",
         [(gt_masked, "lightgray"), (vis, "tab:blue"), (rec, "tab:red")]),
    ]  # fmt: skip
    lo, hi = full.min(0), full.max(0)
    for i, (name, layers) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        for pts, color in layers:
            ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=1.5, c=color, depthshade=False)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_zlim(lo[2], hi[2])
        ax.view_init(elev=25, azim=-60)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def draw_clar_batch(model: Any, batch: dict[str, Any], out_dir: str, tag: str) -> list[str]:
    """Run ``model.inspect`` on a batch and draw sample 0; returns the written paths."""
    details = {k: v.detach().cpu().numpy() for k, v in model.inspect(batch).items()}
    written = []
    if "pred" in details:
        p = os.path.join(out_dir, f"{tag}_reconstruction.png")
        draw_reconstruction(
            details["centers"][0], details["neighborhoods"][0], details["mask"][0],
            details["pred"][0], details["masked_idx"][0], p, title=f"Point-MAE reconstruction, {tag}",
        )  # fmt: skip
        written.append(p)
    if "locations" in details:
        rgb = batch["rgb"][0].detach().cpu().numpy().transpose(1, 2, 0)
        p = os.path.join(out_dir, f"{tag}_local_alignment.png")
        draw_local_alignment(
            rgb, details["reference_points"][0], details["valid"][0], details["locations"][0],
            details["weights"][0], p, title=f"local alignment samples, {tag}",
        )  # fmt: skip
        written.append(p)
    return written


@HOOKS.register_module()
class CLARVisualizationHook(Hook):
    """Draws the reconstruction and local-alignment pictures for fixed training frames.

    Every ``interval`` epochs and after training, into ``<work_dir>/vis/``; also sent to the
    visualizer's backends (TensorBoard) as images.

    Args:
        interval: epochs between drawings.
        indices: dataset indices drawn (the first one is pictured; all go through the model).
    """

    priority = "LOW"

    def __init__(self, interval: int = 10, indices: tuple[int, ...] = (0,)) -> None:
        self.interval = interval
        self.indices = tuple(indices)

    def _draw(self, runner: Any, tag: str) -> None:
        dataset = runner.train_dataloader.dataset
        batch = default_collate([dataset[i % len(dataset)] for i in self.indices])
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        device = next(model.parameters()).device
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        out_dir = os.path.join(runner.work_dir, "vis")
        for path in draw_clar_batch(model, batch, out_dir, tag):
            try:
                import imageio.v3 as iio

                runner.visualizer.add_image(
                    os.path.basename(path)[: -len(".png")].split("_", 1)[1],
                    iio.imread(path)[..., :3],
                    step=runner.epoch,
                )
            except Exception as exc:  # a missing image backend must not stop training
                runner.logger.warning(f"CLARVisualizationHook: could not log {path}: {exc}")
        runner.logger.info(f"CLAR pictures written to {out_dir} ({tag})")

    def after_train_epoch(self, runner: Any) -> None:
        if runner.rank == 0 and self.every_n_epochs(runner, self.interval):
            self._draw(runner, f"epoch{runner.epoch + 1:03d}")  # 1-based, as the log

    def after_train(self, runner: Any) -> None:
        if runner.rank == 0:
            self._draw(runner, "final")
