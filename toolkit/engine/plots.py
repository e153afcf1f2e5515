"""Plots people would rather look at than read: success-rate curves, result bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from toolkit.utils.io import atomic_write


def plot_sr_curves(histories: Mapping[str, Sequence[dict]], path: str, title: str = "") -> None:
    """One line per run: mean success rate (and per task, dashed, when several) vs epoch.

    ``histories[name]`` is the list of records of :class:`RolloutEvalHook`
    (``{"epoch", "sr": {task: sr}, "sr_mean"}``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for name, hist in histories.items():
        hist = sorted(hist, key=lambda h: h["epoch"])
        if not hist:
            continue
        epochs = [h["epoch"] for h in hist]
        (line,) = ax.plot(epochs, [100 * h["sr_mean"] for h in hist], marker="o", label=name)
        tasks = list(hist[0]["sr"])
        if len(tasks) > 1:
            for t in tasks:
                ax.plot(
                    epochs,
                    [100 * h["sr"].get(t, float("nan")) for h in hist],
                    ls="--",
                    lw=0.8,
                    color=line.get_color(),
                    alpha=0.5,
                )
    units = {h.get("unit", "epoch") for hist in histories.values() for h in hist}
    ax.set_xlabel("training step" if units == {"iter"} else "epoch")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def plot_training_curves(
    scalars_json: str, keys: Sequence[str], path: str, title: str = "", log_y: bool = True
) -> None:
    """One panel per logged key against the iteration, from mmengine's ``vis_data/scalars.json``.

    Keys missing from a record are skipped; ``log_y`` uses a log scale (losses spanning decades).
    """
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(scalars_json) as f:
        records = [json.loads(line) for line in f if line.strip()]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), dpi=120, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        pts = [(r["step"], r[key]) for r in records if key in r and "step" in r]
        if pts:
            ax.plot(*zip(*pts, strict=True), lw=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
