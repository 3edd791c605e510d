"""Experiments of Mena & Nanculef (CIARP 2019): Table 2 (accuracy as T grows, through the one runner),
Table 3 (accuracy, iterations, I-JS and G-JS per method), Table 4 (CMM's groups) and Figure 3 (time and
memory as T grows). Settings: :mod:`crowd.experiments.settings.cmm`; crowds: :mod:`crowd.simulation.cmm_crowds`.

Confusion estimates used by I-JS and G-JS (REPLICATION_NOTES.md, CMM; the authors' scripts):

- softMV / hardMV: one global matrix for everyone, row-normalised ``sum_i t_i^T r_i`` with ``t_i`` the soft
  (hard) MV label; every annotator's estimate is that matrix;
- DL-DS: Dawid-Skene's per-annotator confusions, global = their mean;
- DL-EM: the per-annotator confusions, global = their mean;
- CMM: annotator ``a``'s matrix ``sum_g p(g | a) beta_g`` (section 3.4), global ``sum_g alpha_g beta_g``;
- Ideal: none.
The true matrices: the annotator's group matrix (simulations) or its confusion against the truth
(LabelMe: row-normalised counts, Laplace +1... not added: a class an annotator never saw gets a uniform row),
the global one ``row-normalised sum_i onehot(z_i)^T r_i``.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from crowd import metrics
from crowd.data import CrowdData
from crowd.experiments import runner
from crowd.experiments.settings.cmm import CMMPreset

__all__ = ["make_learner", "runner_methods", "table2", "fit_and_measure", "estimated_confusions",
           "true_confusions", "table3", "group_table", "select_n_groups", "scaling", "to_global_setting"]


def make_learner(name: str, preset: CMMPreset, seed: int = 0, n_groups: int | None = None, progress: bool = False) -> Any:
    """The unfitted learner of one method of the paper's tables, with the preset's settings."""
    from crowd.learning.cmm import CrowdMixture
    from crowd.learning.crowd_nets import DLDS, HardMV, Ideal, SoftMV
    from crowd.learning.raykar import RaykarEM

    net = {**preset.learner_kwargs(), "seed": seed, "progress": progress}
    fixed = {"max_epochs": preset.max_epochs, "tol": preset.tol, **net}
    em = {"n_restarts": preset.n_restarts, "max_iter": preset.max_iter, "tol": preset.tol, **net}
    if name == "softMV":
        return SoftMV(**fixed)
    if name == "hardMV":
        return HardMV(**fixed)
    if name == "DL-DS":
        return DLDS(ds_tol=preset.tol, ds_max_iter=50, **fixed)
    if name == "Ideal":
        return Ideal(**fixed)
    if name == "DL-EM":
        return RaykarEM(**em)
    if name == "CMM":
        return CrowdMixture(n_groups or preset.n_groups, **em)
    raise ValueError(f"unknown method {name!r}; the paper's are softMV, hardMV, DL-DS, DL-EM, CMM, Ideal")


def runner_methods(preset: CMMPreset, methods: Sequence[str] | None = None) -> list[runner.Method]:
    """The paper's methods as end-to-end strategies of :mod:`crowd.experiments.runner`."""
    out = []
    for name in methods or preset.methods:
        def make(setup: runner.ExperimentSetup, seed: int, _name: str = name) -> Any:
            return make_learner(_name, preset, seed)
        out.append(runner.Method(runner.EndToEnd(name, make)))
    return out


def _setup_for(crowd: CrowdData, dataset: str) -> runner.ExperimentSetup:
    test = crowd.splits["test"]
    return runner.ExperimentSetup(dataset=dataset, make_model=lambda: None, train_kwargs={"epochs": 1},
                                  test=(test.features, test.labels), progress=False, percent=True)


def table2(scenario: Any, preset: CMMPreset, t_grid: Sequence[int] | None = None, methods: Sequence[str] | None = None,
           seeds: Sequence[int] | None = None, dataset: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Table 2: every method x T x run through the one runner. Run ``r`` draws a new crowd (seed ``r``) from
    the scenario and trains with seed ``r``. Returns the runner's tidy table plus ``T``, ``n_workers``,
    ``D_t`` (labels per annotator) and ``seconds`` (wall time of the run's methods at that T)."""
    from tqdm.auto import tqdm

    dataset = dataset or scenario.name
    seeds = list(range(preset.n_runs)) if seeds is None else list(seeds)
    names = list(methods or preset.methods)
    tables = []
    grid = list(t_grid or preset.t_grid)
    for T in tqdm(grid, desc=f"{dataset} T", disable=not progress):
        for name in names:
            start = time.perf_counter()
            res = runner.run(lambda s, _T=T: scenario.crowd(_T, seed=s), runner_methods(preset, [name]),
                             lambda c: _setup_for(c, dataset), seeds=seeds, progress=False)
            tab = res.table.assign(T=float(T) if name != "Ideal" else np.nan,
                                   seconds=(time.perf_counter() - start) / len(seeds))
            tables.append(tab)
        if "Ideal" in names:  # Ideal ignores the annotators: one T is enough
            names = [n for n in names if n != "Ideal"]
    table = pd.concat(tables, ignore_index=True)
    table["D_t"] = np.where(table["T"].notna(), scenario.n_tasks * scenario.answers_per_task / table["T"], np.nan)
    return table


def summarize_table2(table: pd.DataFrame, note: str = "") -> pd.DataFrame:
    """Mean and std over runs per (dataset, method, T), in the reproduced-table format plus ``T``."""
    rows = []
    for (ds, method, T), g in table.groupby(["dataset", "method", "T"], dropna=False, sort=False):
        acc = g["accuracy"]
        rows.append({"dataset": ds, "method": method, "metric": "accuracy", "T": T, "value": acc.mean(),
                     "std": acc.std(ddof=1) if len(acc) > 1 else np.nan, "n_runs": len(acc),
                     "seconds_per_run": g["seconds"].mean(), "note": note})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------- confusions and JS
def true_confusions(crowd: CrowdData) -> tuple[np.ndarray, np.ndarray]:
    """(per-annotator true confusions (W, K, K), true global confusion (K, K)).

    Simulated group crowds: the annotator's group matrix; real crowds with gold labels: the annotator's
    row-normalised confusion against the truth (a class the annotator never saw gets a uniform row)."""
    if crowd.gold is None or (crowd.gold < 0).any():
        raise ValueError("true confusions need the gold label of every training task")
    K, W = crowd.n_classes, crowd.n_workers
    glob = metrics.global_confusion(crowd.gold, crowd.task, crowd.label, K)
    if "worker_group" in crowd.meta:
        return crowd.meta["group_confusions"][crowd.meta["worker_group"]], glob
    counts = np.bincount((crowd.worker * K + crowd.gold[crowd.task]) * K + crowd.label,
                         minlength=W * K * K).reshape(W, K, K).astype(np.float64)
    empty = counts.sum(axis=2) == 0
    counts[empty] = 1.0
    return counts / counts.sum(axis=2, keepdims=True), glob


def estimated_confusions(name: str, learner: Any, crowd: CrowdData) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(per-annotator estimates (W, K, K) or None, global estimate (K, K) or None) of a fitted method."""
    K, W = crowd.n_classes, crowd.n_workers
    if name in ("softMV", "hardMV"):
        votes = crowd.vote_counts().astype(np.float64)
        t = votes / votes.sum(axis=1, keepdims=True)
        if name == "hardMV":
            t = np.eye(K)[np.asarray(learner.targets_)]
        glob = metrics.global_confusion(t, crowd.task, crowd.label)
        return np.broadcast_to(glob, (W, K, K)), glob
    if name == "DL-DS":
        conf = np.asarray(learner.aggregator_.confusions_, dtype=np.float64)
        return conf, conf.mean(axis=0)
    if name == "DL-EM":
        return learner.confusions_, learner.global_confusion_
    if name == "CMM":
        return learner.annotator_confusions(crowd), learner.global_confusion_
    return None, None


def fit_and_measure(crowd: CrowdData, name: str, preset: CMMPreset, seed: int = 0, n_groups: int | None = None,
                    trace_memory: bool = False, progress: bool = False) -> tuple[dict[str, Any], Any]:
    """Fit one method on ``crowd`` (inputs = its features, test = its ``test`` split) and measure it:
    ``iterations`` (EM iterations of the kept restart, or epochs), ``train_accuracy``, ``test_accuracy`` (%),
    ``I-JS``, ``G-JS``, ``seconds`` and, with ``trace_memory``, ``peak_mb`` (numpy / Python heap)."""
    learner = make_learner(name, preset, seed, n_groups, progress)
    if trace_memory:
        tracemalloc.start()
    start = time.perf_counter()
    learner.fit(crowd)
    seconds = time.perf_counter() - start
    peak = None
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    test = crowd.splits["test"]
    out: dict[str, Any] = {"method": name, "seed": seed, "seconds": seconds,
                           "iterations": getattr(learner, "n_iter_", getattr(learner, "n_epochs_", np.nan))}
    if peak is not None:
        out["peak_mb"] = peak
    if crowd.gold is not None and (crowd.gold >= 0).all():
        out["train_accuracy"] = 100 * metrics.accuracy(learner.train_probas_, crowd.gold)
    out["test_accuracy"] = 100 * metrics.accuracy(learner.predict_proba(test.features), test.labels)
    est_a, est_g = estimated_confusions(name, learner, crowd)
    if est_g is not None and crowd.gold is not None and (crowd.gold >= 0).all():
        true_a, true_g = true_confusions(crowd)
        out["I-JS"] = metrics.individual_js(np.asarray(est_a), true_a)
        out["G-JS"] = metrics.global_js(est_g, true_g)
    if name == "CMM":
        out["loglik"] = float(learner.loglik_history_[-1])
        out["n_groups"] = int(learner.alphas_.shape[0])
    return out, learner


def to_global_setting(crowd: CrowdData) -> CrowdData:
    """The paper's Global setting: each annotation its own annotator (T = number of answers, D_t = 1)."""
    return CrowdData(crowd.task, np.arange(crowd.n_answers), crowd.label, crowd.n_tasks, crowd.n_answers,
                     crowd.n_classes, task_ids=crowd.task_ids, class_names=crowd.class_names, gold=crowd.gold,
                     features=crowd.features, splits=crowd.splits, meta={**crowd.meta, "setting": "global"},
                     name=f"{crowd.name}_global")


def select_n_groups(crowd: CrowdData, preset: CMMPreset, seed: int = 0) -> tuple[int, pd.DataFrame]:
    """The paper's choice of M on real data: the M of ``preset.n_groups_grid`` with the highest log-likelihood."""
    grid = preset.n_groups_grid or (preset.n_groups,)
    rows = []
    for m in grid:
        out, _ = fit_and_measure(crowd, "CMM", preset, seed, n_groups=m)
        rows.append({"n_groups": m, "loglik": out["loglik"], "test_accuracy": out["test_accuracy"]})
    table = pd.DataFrame(rows)
    return int(table.loc[table["loglik"].idxmax(), "n_groups"]), table


def table3(crowd: CrowdData, preset: CMMPreset, seeds: Sequence[int] | None = None, n_groups: int | None = None,
           settings: Sequence[str] = ("individual", "global"), progress: bool = True,
           keep: Callable[[str, str, int, Any], None] | None = None) -> pd.DataFrame:
    """Table 3: every method x setting x run on a real crowd. ``keep(setting, method, seed, learner)`` is
    called after every fit (e.g. to keep CMM for Table 4). Returns one row per fit."""
    from tqdm.auto import tqdm

    seeds = list(range(preset.n_runs)) if seeds is None else list(seeds)
    rows = []
    jobs = [(s, m, r) for s in settings for m in preset.methods for r in seeds]
    for setting, name, seed in tqdm(jobs, desc="Table 3", disable=not progress):
        data = crowd if setting == "individual" else to_global_setting(crowd)
        out, learner = fit_and_measure(data, name, preset, seed, n_groups)
        rows.append({"setting": setting, "T": data.n_workers, **out})
        if keep is not None:
            keep(setting, name, seed, learner)
    return pd.DataFrame(rows)


def summarize_table3(table: pd.DataFrame, dataset: str = "labelme", note: str = "") -> pd.DataFrame:
    """Mean and std over runs per (method, setting, metric), in the reproduced-table format plus ``setting``."""
    metric_cols = [c for c in ("iterations", "train_accuracy", "test_accuracy", "I-JS", "G-JS") if c in table.columns]
    long = table.melt(id_vars=["setting", "method", "seed"], value_vars=metric_cols, var_name="metric",
                      value_name="v").dropna(subset=["v"])
    out = (long.groupby(["method", "setting", "metric"], sort=False)["v"]
           .agg(value="mean", std="std", n_runs="count").reset_index())
    return out.assign(dataset=dataset, note=note)[["dataset", "method", "metric", "setting", "value", "std", "n_runs", "note"]]


def group_table(cmm: Any, dataset: str = "labelme") -> pd.DataFrame:
    """Table 4 in the reproduced-table format: alpha, I_sim and H of each CMM group, groups by decreasing alpha."""
    order = np.argsort(-cmm.alphas_)
    t = metrics.group_matrix_table(cmm.alphas_[order], cmm.betas_[order])
    rows = [{"dataset": dataset, "method": f"CMM group {int(r.group)}", "metric": k, "value": float(getattr(r, k))}
            for r in t.itertuples() for k in ("alpha", "I_sim", "H")]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------- scaling
def scaling(scenario: Any, preset: CMMPreset, t_grid: Sequence[int] | None = None, methods: Sequence[str] | None = None,
            seeds: Sequence[int] | None = None, progress: bool = True) -> pd.DataFrame:
    """Figure 3: wall time and peak memory (tracemalloc: numpy arrays and Python objects; the network's
    torch tensors, the same for every T, are not counted) of each method as T grows. ``DS`` and ``GLAD`` are
    the package's truth-inference EMs (:class:`~crowd.aggregation.FastDawidSkene`, :class:`~crowd.aggregation.GLAD`)
    without a network; CMM and DL-EM run ``preset.max_iter`` EM iterations (``tol=None``) so that the time per
    iteration is comparable across T."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from crowd.aggregation import GLAD, FastDawidSkene

    seeds = list(range(preset.n_runs)) if seeds is None else list(seeds)
    fixed_iter = replace(preset, tol=None) if preset.tol is not None else preset
    rows = []
    jobs = [(T, m, s) for T in (t_grid or preset.t_grid) for m in (methods or preset.methods) for s in seeds]
    for T, name, seed in tqdm(jobs, desc="scaling", disable=not progress):
        crowd = scenario.crowd(T, seed=seed)
        if name in ("DS", "GLAD"):
            agg = (FastDawidSkene(n_iter=preset.max_iter, tol=None) if name == "DS"
                   else GLAD(n_iter=preset.max_iter, tol=None))
            tracemalloc.start()
            start = time.perf_counter()
            agg.fit(crowd)
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            acc = 100 * metrics.accuracy(np.asarray(agg.probas_), crowd.gold)
            out = {"method": name, "seed": seed, "seconds": seconds, "peak_mb": peak, "train_accuracy": acc,
                   "iterations": preset.max_iter}
        else:
            out, _ = fit_and_measure(crowd, name, fixed_iter, seed, trace_memory=True)
        rows.append({"T_drawn": T, "n_workers": crowd.n_workers, "n_answers": crowd.n_answers, **out})
    table = pd.DataFrame(rows)
    table["seconds_per_iteration"] = table["seconds"] / (table["iterations"] * np.where(
        table["method"].isin(["CMM", "DL-EM"]), preset.n_restarts, 1))
    return table
