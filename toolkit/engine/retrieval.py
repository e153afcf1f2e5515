"""Cross-modal retrieval evaluation (CLAMP Sec. IV): Recall@K in every direction and the
pairwise matching-probability matrices (Fig. 7 / Fig. 8 style)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from torch import Tensor

from toolkit.registry import HOOKS, METRICS
from toolkit.utils.io import atomic_write

__all__ = [
    "RetrievalMetric",
    "RetrievalPlotHook",
    "plot_matching_matrices",
    "recall_at_k",
    "retrieval_recalls",
]


def recall_at_k(query: Tensor, gallery: Tensor, k: int = 5) -> float:
    """Fraction of queries whose own pair (same row index) is among the ``k`` most similar
    gallery items (cosine similarity).

    Args:
        query: (N, D). gallery: (N, D); row i of each is one pair.

    Returns:
        Recall@k in [0, 1]. Chance level is ``min(k, N) / N``.
    """
    if query.shape[0] != gallery.shape[0] or query.ndim != 2 or gallery.ndim != 2:
        raise ValueError(
            f"recall_at_k: expected (N, D) and (N, D'), got {tuple(query.shape)} and "
            f"{tuple(gallery.shape)}"
        )
    sim = F.normalize(query.float(), dim=-1) @ F.normalize(gallery.float(), dim=-1).T
    k = min(k, sim.shape[1])
    top = sim.topk(k, dim=1).indices
    hits = (top == torch.arange(len(sim), device=sim.device)[:, None]).any(dim=1)
    return float(hits.float().mean())


def retrieval_recalls(embeddings: Mapping[str, Tensor], k: int = 5) -> dict[str, float]:
    """Recall@k for every ordered pair of modalities: ``{"image->text": r, ...}`` (six
    directions for three modalities)."""
    out = {}
    for a, b in itertools.permutations(embeddings, 2):
        out[f"{a}->{b}"] = recall_at_k(embeddings[a], embeddings[b], k)
    return out


def plot_matching_matrices(
    embeddings: Mapping[str, Tensor],
    path: str,
    scales: Mapping[str, tuple[float, float]] | None = None,
    labels: Sequence[str] | None = None,
    max_items: int = 24,
    title: str = "",
) -> None:
    """One panel per modality pair: ``sigmoid(t x_i . y_j + b)`` (SigLIP matching probability)
    for ``max_items`` samples spread evenly over the set (consecutive frames of one episode are
    near duplicates); a good encoder lights up the diagonal.

    ``scales[pair] = (t, b)`` (pair as ``"image_text"``); missing pairs use t = 10, b = -10.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(itertools.combinations(embeddings, 2))
    n_all = len(next(iter(embeddings.values())))
    idx = torch.linspace(0, n_all - 1, min(max_items, n_all)).round().long()
    embeddings = {k: v[idx] for k, v in embeddings.items()}
    if labels is not None:
        labels = [labels[i] for i in idx.tolist()]
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.6), dpi=120, squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        x = F.normalize(embeddings[a].float(), dim=-1)
        y = F.normalize(embeddings[b].float(), dim=-1)
        t, bias = (scales or {}).get(f"{a}_{b}", (10.0, -10.0))
        prob = torch.sigmoid(t * x @ y.T + bias).cpu().numpy()
        im = ax.imshow(prob, vmin=0, vmax=1, cmap="magma")
        ax.set_xlabel(b, fontsize=9)
        ax.set_ylabel(a, fontsize=9)
        ax.set_title(f"{a} vs {b}", fontsize=9)
        if labels is not None:
            n = len(prob)
            ax.set_yticks(range(n), [str(s)[:18] for s in labels[:n]], fontsize=5)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


# ------------------------------------------------------------------ mmengine glue


@METRICS.register_module()
class RetrievalMetric(BaseMetric):
    """Recall@K in every direction between the modalities a model's ``predict`` returns.

    ``predict`` gives one dict per sample of L2-normalized embeddings (``image``, ``text``,
    ``action``; other keys are kept for the plot labels). Metrics: ``R@{k}/<a>-><b>`` and
    ``R@{k}/mean``; chance is ``k / N`` (logged as ``R@{k}/chance``). The last embeddings are
    kept for :class:`RetrievalPlotHook`.
    """

    default_prefix = "retrieval"

    def __init__(self, k: int = 5, modalities: Sequence[str] = ("image", "text", "action"),
                 **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.k, self.modalities = k, tuple(modalities)
        self.last: dict[str, Tensor] = {}
        self.last_labels: list[str] = []

    def process(self, data_batch: object, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            self.results.append({k: v for k, v in s.items()})

    def compute_metrics(self, results: list) -> dict[str, float]:
        mods = [m for m in self.modalities if results and m in results[0]]
        emb = {m: torch.stack([r[m] for r in results]) for m in mods}
        self.last = emb
        self.last_labels = [str(r.get("text_str", "")) for r in results]
        rec = retrieval_recalls(emb, self.k)
        out = {f"R@{self.k}/{d}": v for d, v in rec.items()}
        out[f"R@{self.k}/mean"] = sum(rec.values()) / max(len(rec), 1)
        out[f"R@{self.k}/chance"] = min(self.k, len(results)) / max(len(results), 1)
        return out


@HOOKS.register_module()
class RetrievalPlotHook(Hook):
    """After each validation, plots the matching-probability matrices of the first
    ``max_items`` validation samples into ``<work_dir>/vis/retrieval_epoch<N>.png``, using the
    model's learned SigLIP ``t`` / ``b`` per pair when it has them."""

    priority = "LOW"

    def __init__(self, max_items: int = 24) -> None:
        self.max_items = max_items

    def after_val_epoch(self, runner, metrics=None) -> None:  # noqa: ANN001
        import os

        metric = next(
            (m for m in runner.val_evaluator.metrics if isinstance(m, RetrievalMetric)), None
        )
        if metric is None or not metric.last or runner.rank != 0:
            return
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        scales = {}
        loss_fn = getattr(model, "loss_fn", None)
        for pair in getattr(loss_fn, "pairs", {}):
            pl = loss_fn.pair_loss(pair)
            t = float(pl.logit_scale.detach().exp()) if hasattr(pl, "logit_scale") else 10.0
            b = float(pl.logit_bias.detach()) if hasattr(pl, "logit_bias") else -10.0
            scales[pair] = (t, b)
        path = os.path.join(runner.work_dir, "vis", f"retrieval_epoch{runner.epoch:03d}.png")
        plot_matching_matrices(
            metric.last, path, scales=scales, labels=metric.last_labels,
            max_items=self.max_items, title=f"SigLIP matching probability, epoch {runner.epoch}",
        )  # fmt: skip
