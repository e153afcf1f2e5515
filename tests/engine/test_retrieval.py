"""Retrieval metrics against brute-force references."""

from __future__ import annotations

import torch

from toolkit.engine.retrieval import plot_matching_matrices, recall_at_k, retrieval_recalls


def _brute_recall(q, g, k):
    hits = 0
    for i in range(len(q)):
        sims = [torch.cosine_similarity(q[i], g[j], dim=0).item() for j in range(len(g))]
        order = sorted(range(len(g)), key=lambda j: -sims[j])[:k]
        hits += i in order
    return hits / len(q)


def test_recall_matches_brute_force_and_extremes():
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(30, 8, generator=g), torch.randn(30, 8, generator=g)
    for k in (1, 5, 10):
        assert abs(recall_at_k(q, r, k) - _brute_recall(q, r, k)) < 1e-6
    assert recall_at_k(q, q * 3.0, 1) == 1.0  # scale-invariant, perfect pairs
    assert recall_at_k(q, q, 30) == 1.0
    shuffled = q[torch.roll(torch.arange(30), 1)]
    assert recall_at_k(q, shuffled, 1) == 0.0


def test_six_directions_and_plot(tmp_path):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(16, 6, generator=g)
    emb = {
        "image": base + 0.01 * torch.randn(16, 6, generator=g),
        "text": base + 0.01 * torch.randn(16, 6, generator=g),
        "action": torch.randn(16, 6, generator=g),
    }
    rec = retrieval_recalls(emb, k=1)
    assert set(rec) == {
        "image->text", "text->image", "image->action", "action->image", "text->action",
        "action->text",
    }  # fmt: skip
    assert rec["image->text"] == 1.0 and rec["text->image"] == 1.0
    assert rec["image->action"] < 0.5
    path = tmp_path / "m.png"
    plot_matching_matrices(emb, str(path), labels=[f"s{i}" for i in range(16)])
    assert path.stat().st_size > 5_000
