"""Statistics over the runner's tidy results (:func:`crowd.experiments.runner.run`): confidence
intervals, paired pruning differences, what the pruning removes, lowest-scored tasks."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["confidence_intervals", "paired_differences", "pruned_tasks_summary", "worst_tasks"]


def _require(table: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the results table lacks column(s) {missing}; it has {list(table.columns)}")


def confidence_intervals(table: pd.DataFrame, metric: str, z: float = 1.96) -> pd.DataFrame:
    """Mean and Gaussian 95% half-width z * std / sqrt(n) per (strategy, pruning), as in the WAUM
    paper's forest plots (Figs. 8 and 11). One run has no spread: its std and half-width are NaN."""
    _require(table, ["strategy", "pruning", metric])
    g = table.groupby(["strategy", "pruning"], sort=False)[metric]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["half_width"] = z * out["std"] / np.sqrt(out["n"])
    return out


def paired_differences(table: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Per strategy and pruning: mean and std over seeds of (pruned - unpruned) for the same seed.

    The same seed gives the same initialisation and shuffling, so the paired difference isolates the
    effect of pruning from the seed-to-seed spread.
    """
    _require(table, ["dataset", "strategy", "pruning", "seed", metric])
    wide = table.pivot_table(index=["dataset", "strategy", "seed"], columns="pruning", values=metric, sort=False)
    if "none" not in wide.columns:
        raise ValueError("paired differences need the unpruned runs (pruning 'none')")
    diffs = wide.drop(columns="none").sub(wide["none"], axis=0)
    long = diffs.stack().rename("difference").reset_index()
    out = long.groupby(["dataset", "strategy", "pruning"], sort=False)["difference"].agg(["mean", "std", "count"])
    return out.reset_index().rename(columns={"count": "n_runs"})


def pruned_tasks_summary(data: Any, identification: Any, prunings: Sequence[Any]) -> pd.DataFrame:
    """What each pruning removes: number of tasks, accuracy of the majority vote (ties to the
    smallest label) on them vs on all tasks (needs gold labels), answers per task.

    ``identification``: a :class:`crowd.experiments.runner.Identification`; ``prunings``:
    :class:`crowd.experiments.runner.Pruning` objects (their alpha, else the setup's).
    """
    if data.gold is None:
        raise ValueError("pruned_tasks_summary needs gold labels")
    mv = np.argmax(data.vote_counts(), axis=1)
    known = data.gold >= 0
    apt = data.answers_per_task()
    rows = []
    for pruning in prunings:
        pruned = ~identification.keep_mask(pruning)
        sel = pruned & known
        rows.append({"pruning": pruning.name, "n_pruned": int(pruned.sum()),
                     "mv_accuracy_pruned": float(np.mean(mv[sel] == data.gold[sel])) if sel.any() else np.nan,
                     "mv_accuracy_all": float(np.mean(mv[known] == data.gold[known])),
                     "answers_per_task_pruned": float(apt[pruned].mean()) if pruned.any() else np.nan,
                     "answers_per_task_all": float(apt.mean())})
    return pd.DataFrame(rows)


def worst_tasks(scores: np.ndarray, groups: np.ndarray, n: int = 10) -> dict[int, np.ndarray]:
    """For each group (e.g. class), the ``n`` task codes of lowest score, lowest first (ties in task order)."""
    scores, groups = np.asarray(scores), np.asarray(groups)
    out = {}
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out[int(g)] = idx[np.argsort(scores[idx], kind="stable")[:n]]
    return out
