"""The WAUM paper's figures: 2-d tasks coloured by label or score (Figs. 4-6, 13-14), forest plots of
accuracy over seeds (Figs. 8, 11), rows of the lowest-scored images (Figs. 7, 10, 16)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from crowd.reporting.statistics import confidence_intervals

__all__ = ["plot_points", "plot_forest", "plot_image_rows"]

PRUNING_COLOURS = {"none": "C0", "AUMC": "C1", "WAUM": "C2", "WAUM(psi1)": "C3", "WAUM(psi5)": "C4"}
METRIC_LABELS = {"accuracy": "test accuracy (%)", "one_minus_ece": "1 - ECE", "top2_accuracy": "top-2 accuracy (%)"}


def plot_points(ax, x: np.ndarray, values: np.ndarray, pruned: np.ndarray | None = None, title: str | None = None,
                soft: bool = False, cmap: str | None = None, size: float = 8.0, vmin: float | None = None,
                vmax: float | None = None):
    """Scatter of 2-d tasks coloured by a hard label (or a continuous value with ``soft=True``);
    ``pruned`` tasks are drawn as red crosses on top. Returns the scatter artist."""
    import matplotlib.pyplot as plt

    values = np.asarray(values)
    if soft:
        art = ax.scatter(x[:, 0], x[:, 1], c=values, s=size, cmap=cmap or "viridis", vmin=vmin, vmax=vmax)
    else:
        colours = plt.get_cmap(cmap or "tab10")(values.astype(int) % 10)
        art = ax.scatter(x[:, 0], x[:, 1], c=colours, s=size)
    if pruned is not None and np.any(pruned):
        ax.scatter(x[pruned, 0], x[pruned, 1], marker="x", c="red", s=size * 3, linewidths=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return art


def plot_forest(table: pd.DataFrame, metric: str, ax, paper: pd.DataFrame | None = None,
                prunings: Sequence[str] = ("none", "AUMC", "WAUM"), title: str = "") -> None:
    """Forest plot: one row per strategy, one marker per pruning (mean +- 95% CI over seeds, no bar
    for a single run); the paper's mean +- 1.96 std / sqrt(3) as hollow markers when ``paper`` (a
    paper table, rows named ``"<strategy>"`` / ``"<strategy> + <pruning>"``) is given."""
    ci = confidence_intervals(table, metric)
    strategies = list(dict.fromkeys(ci["strategy"]))
    offsets = np.linspace(-0.25, 0.25, len(prunings))
    for off, pruning in zip(offsets, prunings):
        part = ci[ci["pruning"] == pruning].set_index("strategy").reindex(strategies)
        y = np.arange(len(strategies)) + off
        colour = PRUNING_COLOURS.get(pruning, "k")
        shown = "no pruning" if pruning == "none" else pruning
        ax.errorbar(part["mean"], y, xerr=part["half_width"].fillna(0), fmt="o", color=colour,
                    label=f"ours, {shown}", capsize=2, ms=4)
        if paper is not None:
            rows = paper[paper["metric"] == metric].set_index("method")
            names = [s if pruning == "none" else f"{s} + {pruning}" for s in strategies]
            vals = rows["value"].reindex(names).astype(float).to_numpy()
            err = 1.96 * rows["std"].reindex(names).astype(float).fillna(0).to_numpy() / np.sqrt(3)
            ax.errorbar(vals, y + 0.06, xerr=err, fmt="o", mfc="none", color=colour, alpha=0.5, capsize=2, ms=4,
                        label=f"paper, {shown}")
    ax.set_yticks(np.arange(len(strategies)), strategies)
    ax.invert_yaxis()
    ax.set_xlabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)


def plot_image_rows(rows: dict[str, np.ndarray], image_of: Callable[[int], np.ndarray], scores: np.ndarray | None = None,
                    size: float = 1.3):
    """A grid: one row of images per entry of ``rows`` (name -> task codes), the score under each image."""
    import matplotlib.pyplot as plt

    n_cols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(size * n_cols, size * 1.15 * len(rows)), squeeze=False)
    for r, (name, tasks) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c >= len(tasks):
                continue
            ax.imshow(image_of(int(tasks[c])))
            if scores is not None:
                ax.set_xlabel(f"{scores[tasks[c]]:.2f}", fontsize=7, labelpad=1)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.2)
    return fig
