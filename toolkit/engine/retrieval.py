"""Cross-modal retrieval evaluation (CLAMP Sec. IV): Recall@K in every direction and the
pairwise matching-probability matrices (Fig. 7 / Fig. 8 style)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from toolkit.utils.io import atomic_write

__all__ = ["plot_matching_matrices", "recall_at_k", "retrieval_recalls"]


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
    for the first ``max_items`` pairs; a good encoder lights up the diagonal.

    ``scales[pair] = (t, b)`` (pair as ``"image_text"``); missing pairs use t = 10, b = -10.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(itertools.combinations(embeddings, 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.6), dpi=120, squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        x = F.normalize(embeddings[a][:max_items].float(), dim=-1)
        y = F.normalize(embeddings[b][:max_items].float(), dim=-1)
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
