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
    ax.set_xlabel("epoch")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
