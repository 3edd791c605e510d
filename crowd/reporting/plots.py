"""Plots shared by the notebooks: dataset statistics (WAUM paper Figs. 15, 17, 18) and confusion matrices."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from crowd.data import CrowdData


def naive_soft_entropy(vote_counts: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each task's normalised vote counts: H(NS(y_i)) = -sum_k p_ik log p_ik."""
    counts = np.asarray(vote_counts, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    if (totals == 0).any():
        raise ValueError("a task has no vote: its naive soft label is undefined")
    p = counts / totals
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


def dataset_statistics(ds: CrowdData, vote_counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Answers per task, tasks per worker and naive-soft entropy per task.

    ``vote_counts`` (tasks x classes) overrides the per-task statistics when the counts of
    more tasks than the per-annotator answers cover are known (CIFAR-10H offline).
    """
    counts = ds.vote_counts() if vote_counts is None else np.asarray(vote_counts)
    return {"answers_per_task": counts.sum(axis=1), "tasks_per_worker": ds.answers_per_worker(),
            "entropy": naive_soft_entropy(counts)}


def plot_dataset_statistics(stats: dict[str, np.ndarray], name: str, axes: Sequence[plt.Axes] | None = None,
                            notes: dict[str, str] | None = None) -> plt.Figure:
    """Three histograms: feedback effort per task, load per worker, naive-soft entropy (WAUM Figs. 15, 17, 18)."""
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    else:
        fig = axes[0].figure
    notes = notes or {}
    apt = stats["answers_per_task"]
    axes[0].hist(apt, bins=np.arange(apt.min(), apt.max() + 2) - 0.5 if apt.max() - apt.min() < 60 else 40, color="C0")
    axes[0].set(xlabel="answers per task", ylabel="tasks", title=f"{name}: feedback effort per task{notes.get('answers_per_task', '')}")
    axes[1].hist(stats["tasks_per_worker"], bins=40, color="C1", log=True)
    axes[1].set(xlabel="tasks per worker", ylabel="workers (log)", title=f"{name}: load per worker{notes.get('tasks_per_worker', '')}")
    axes[2].hist(stats["entropy"], bins=30, color="C2")
    axes[2].set(xlabel="entropy of the naive soft label (nats)", ylabel="tasks", title=f"{name}: NS entropy{notes.get('entropy', '')}")
    fig.tight_layout()
    return fig


def rows_with_data(data: CrowdData, labels: np.ndarray) -> np.ndarray:
    """Which rows of each worker's confusion matrix rest on data: ``out[j, l]`` is True when worker ``j``
    answered at least one task whose (estimated or gold) label ``labels[task]`` is ``l``.

    The other rows are filler: Dawid-Skene's M-step has no answer to count there, so whatever it stores
    (a prior, a uniform or marginal row) says nothing about the worker. Cost O(n_answers).
    """
    labels = np.asarray(labels)
    if labels.shape != (data.n_tasks,):
        raise ValueError(f"labels must hold one class per task ({data.n_tasks}), got shape {labels.shape}")
    seen = np.zeros((data.n_workers, data.n_classes), dtype=bool)
    seen[data.worker, labels[data.task]] = True
    return seen


def average_confusion(confusions: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average confusion matrix over workers, each row averaged over the workers with data in that row.

    Returns ``(average, n_workers)``: ``average[l]`` is the mean of ``confusions[j, l]`` over the workers ``j``
    with ``observed[j, l]`` (NaN when none), ``n_workers[l]`` how many they are. Filler rows
    (see :func:`rows_with_data`) would otherwise pull the average toward DS's default.
    """
    confusions, observed = np.asarray(confusions, dtype=float), np.asarray(observed, dtype=bool)
    if observed.shape != confusions.shape[:2]:
        raise ValueError(f"observed has shape {observed.shape}, expected {confusions.shape[:2]} (workers, classes)")
    n_workers = observed.sum(axis=0)
    total = np.einsum("jlk,jl->lk", confusions, observed)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_workers[:, None] > 0, total / n_workers[:, None], np.nan), n_workers


def plot_confusion(matrix: np.ndarray, ax: plt.Axes, title: str = "", class_names: Sequence[str] | None = None,
                   annotate: bool = True, observed_rows: np.ndarray | None = None) -> None:
    """One confusion matrix, rows = true class, columns = answered class, values in [0, 1].

    Rows that are NaN, or False in ``observed_rows``, have no data: they are drawn grey and marked "no data".
    """
    matrix = np.array(matrix, dtype=float)
    k = matrix.shape[0]
    if observed_rows is not None:
        matrix[~np.asarray(observed_rows, dtype=bool)] = np.nan
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    ax.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1, cmap=cmap)
    ticks = class_names if class_names is not None and k <= 10 else range(k)
    ax.set_xticks(range(k), ticks, rotation=90, fontsize=7)
    ax.set_yticks(range(k), ticks, fontsize=7)
    ax.set(xlabel="answered", ylabel="true", title=title)
    empty = np.isnan(matrix).all(axis=1)
    for r in np.flatnonzero(empty):
        ax.text((k - 1) / 2, r, "no data", ha="center", va="center", fontsize=6, color="0.3")
    if annotate and k <= 10:
        for (r, c), v in np.ndenumerate(matrix):
            if not empty[r] and np.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
