"""Simulated crowds whose workers are scikit-learn classifiers (Lefort et al. TMLR 2024, section 4.1
and appendix D.1), and the experiment runner of their Tables 1, 3 and 4.

Datasets (each returns a :class:`~crowd.data.CrowdData` with ``features`` and ``gold`` on the
training tasks, ``splits["test"]`` and, in ``meta``, the workers' names and test accuracies):

- :func:`three_circles`: 750 points on three concentric circles (radii 1/3, 2/3, 1, Gaussian noise
  0.1; the paper names sklearn's circles generator, which makes two: the third circle and the
  noise level are ours, chosen so that the best worker reaches the paper's 0.84 test accuracy),
  70/30 train/test split (525 tasks); 3 workers answer every task: LinearSVC, SVC (RBF,
  ``max_iter=1``) and GradientBoosting (5 estimators), each trained on the train split's truth.
- :func:`two_moons`: ``make_moons(500, noise=0.2)``, 30 % test, the same three workers (the SVC
  stopped after one iteration is "mostly wrong", the GBM the best worker).
- :func:`many_workers`: ``make_classification`` with K = 4 classes, 250 training tasks per class,
  150 workers drawn among LinearSVC / SVC / GBM with random hyperparameters (appendix D.1.3);
  every task gets 1 to 5 answers from distinct random workers.

Workers are fitted on the training points with their true labels and answer with their
predictions, so their errors follow the geometry of the data, as in the paper.

:func:`run_strategy` trains the (30, 20, 20) MLP on the labels one strategy produces (MV, NS, DS,
GLAD, WDS, WDS + AUMC, WDS + WAUM, worker-wise WAUM) and evaluates it on the test split;
:func:`run_experiment` repeats that over seeds (on one crowd, as the paper, or on a new crowd
each time) and returns long-format results.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from crowd.data import CrowdData, Split

__all__ = [
    "three_circles_points", "three_circles", "two_moons", "many_workers", "crowd_from_workers",
    "paper_workers", "random_workers", "SimulationSettings", "StrategyResult", "parse_strategy",
    "run_strategy", "run_experiment", "summarise",
]


# ----------------------------------------------------------------------------- data
def three_circles_points(n_samples: int = 750, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points on three concentric circles of radii 1/3, 2/3 and 1 (class k on radius (k+1)/3), plus
    isotropic Gaussian noise of standard deviation ``noise``; classes as balanced as ``n_samples`` allows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 3
    rng.shuffle(y)
    angle = rng.uniform(0.0, 2 * np.pi, n_samples)
    radius = (y + 1) / 3.0
    x = np.c_[radius * np.cos(angle), radius * np.sin(angle)] + rng.normal(0.0, noise, (n_samples, 2))
    return x.astype(np.float32), y.astype(np.int64)


def paper_workers(seed: int = 0) -> list[tuple[str, Any]]:
    """The three workers of three_circles / two_moons: LinearSVC, SVC (RBF, max_iter=1), GBM (5 estimators).
    Other hyperparameters are scikit-learn's defaults."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.svm import SVC, LinearSVC

    return [
        ("LinearSVC", LinearSVC(random_state=seed)),
        ("SVC", SVC(kernel="rbf", max_iter=1, random_state=seed)),
        ("GBM", GradientBoostingClassifier(n_estimators=5, random_state=seed)),
    ]


def random_workers(n_workers: int, seed: int = 0) -> list[tuple[str, Any]]:
    """Workers of appendix D.1.3, kind and hyperparameters drawn uniformly:

    - LinearSVC: C in linspace(1e-3, 3, 20), max_iter in 1..100, loss hinge | squared_hinge;
    - SVC: kernel poly (degree 3) | rbf | sigmoid, max_iter in 1..100;
    - GBM: learning_rate in {0.01, 0.1, 0.5}, n_estimators in {1, 2, 5, 10, 15, 20, 30, 50, 100}
      (the paper also lists a "maximum number of iterations" for the GBM, which scikit-learn's
      GradientBoostingClassifier does not have: the number of estimators plays that role).
    Every worker has its own random_state.
    """
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.svm import SVC, LinearSVC

    rng = np.random.default_rng(seed)
    workers: list[tuple[str, Any]] = []
    for j in range(n_workers):
        kind = rng.integers(0, 3)
        state = int(rng.integers(0, 2**31 - 1))
        if kind == 0:
            c = float(rng.choice(np.linspace(1e-3, 3, 20)))
            loss = str(rng.choice(["hinge", "squared_hinge"]))
            it = int(rng.integers(1, 101))
            workers.append((f"LinearSVC(C={c:.3g}, {loss}, max_iter={it})",
                            LinearSVC(C=c, loss=loss, max_iter=it, dual=True, random_state=state)))
        elif kind == 1:
            kernel = str(rng.choice(["poly", "rbf", "sigmoid"]))
            it = int(rng.integers(1, 101))
            workers.append((f"SVC({kernel}, max_iter={it})", SVC(kernel=kernel, degree=3, max_iter=it, random_state=state)))
        else:
            lr = float(rng.choice([0.01, 0.1, 0.5]))
            n_est = int(rng.choice([1, 2, 5, 10, 15, 20, 30, 50, 100]))
            workers.append((f"GBM(lr={lr}, n_estimators={n_est})",
                            GradientBoostingClassifier(learning_rate=lr, n_estimators=n_est, random_state=state)))
    return workers


def crowd_from_workers(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    workers: Sequence[tuple[str, Any]], n_classes: int, answers_per_task: tuple[int, int] | None = None,
    seed: int = 0, name: str = "simulated",
) -> CrowdData:
    """Fit each worker on (x_train, y_train) and let it answer.

    ``answers_per_task=None``: every worker answers every task. ``(lo, hi)``: task i gets
    |A(x_i)| ~ U{lo..hi} answers from distinct workers drawn uniformly (only the answers given are
    predicted, worker by worker, so the cost is linear in the number of answers).
    """
    rng = np.random.default_rng(seed)
    n_tasks, n_workers = len(x_train), len(workers)
    if answers_per_task is None:
        task = np.repeat(np.arange(n_tasks), n_workers)
        worker = np.tile(np.arange(n_workers), n_tasks)
    else:
        lo, hi = answers_per_task
        if not 1 <= lo <= hi <= n_workers:
            raise ValueError(f"answers_per_task must satisfy 1 <= lo <= hi <= n_workers={n_workers}, got {answers_per_task}")
        counts = rng.integers(lo, hi + 1, n_tasks)
        task = np.repeat(np.arange(n_tasks), counts)
        # distinct workers per task: the first counts[i] entries of a random permutation (argsort of uniforms)
        worker = np.concatenate([np.argsort(rng.random(n_workers))[:c] for c in counts])
    label = np.empty(len(task), dtype=np.int64)
    test_acc = np.empty(n_workers)
    train_acc = np.empty(n_workers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=1 workers do not converge, on purpose
        for j, (_, clf) in enumerate(workers):
            clf.fit(x_train, y_train)
            rows = np.flatnonzero(worker == j)
            if len(rows):
                label[rows] = clf.predict(x_train[task[rows]])
            test_acc[j] = np.mean(clf.predict(x_test) == y_test)
            train_acc[j] = np.mean(clf.predict(x_train) == y_train)
    keep = np.bincount(worker, minlength=n_workers) > 0
    if not keep.all():  # drop workers who answered nothing; re-code the others
        new = np.cumsum(keep) - 1
        worker = new[worker]
    names = [w[0] for w, k in zip(workers, keep) if k]
    return CrowdData(
        task, worker, label, n_tasks, int(keep.sum()), n_classes, gold=y_train, features=x_train,
        splits={"test": Split(labels=y_test, features=x_test)},
        meta={"workers": names, "worker_test_accuracy": test_acc[keep], "worker_train_accuracy": train_acc[keep],
              "seed": seed},
        name=name,
    )


def three_circles(seed: int = 0, n_samples: int = 750, noise: float = 0.1, test_size: float = 0.3) -> CrowdData:
    """three_circles crowd of section 4.1 (525 train tasks, 3 workers answering all of them)."""
    from sklearn.model_selection import train_test_split

    x, y = three_circles_points(n_samples, noise, seed)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed)
    return crowd_from_workers(xtr, ytr, xte, yte, paper_workers(seed), 3, seed=seed, name="three_circles")


def two_moons(seed: int = 0, n_samples: int = 500, noise: float = 0.2, test_size: float = 0.3) -> CrowdData:
    """two_moons crowd of appendix D.1.2 (make_moons, 350 train tasks, the 3 workers of three_circles)."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split

    x, y = make_moons(n_samples, noise=noise, random_state=seed)
    xtr, xte, ytr, yte = train_test_split(x.astype(np.float32), y, test_size=test_size, random_state=seed)
    return crowd_from_workers(xtr, ytr, xte, yte, paper_workers(seed), 2, seed=seed, name="two_moons")


def many_workers(seed: int = 0, n_workers: int = 150, n_classes: int = 4, tasks_per_class: int = 250,
                 answers_per_task: tuple[int, int] = (1, 5), test_size: float = 0.3, class_sep: float = 1.0) -> CrowdData:
    """make_classification_many_workers of appendix D.1.3.

    ``make_classification`` with 2 informative features (none redundant, one cluster per class,
    ``class_sep``; the paper gives no other setting) and n_classes * tasks_per_class training tasks
    (1000), plus a test split of ``test_size`` of all points.
    """
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    n_train = n_classes * tasks_per_class
    n_total = int(round(n_train / (1 - test_size)))
    x, y = make_classification(n_samples=n_total, n_features=2, n_informative=2, n_redundant=0,
                               n_classes=n_classes, n_clusters_per_class=1, class_sep=class_sep, random_state=seed)
    xtr, xte, ytr, yte = train_test_split(x.astype(np.float32), y, train_size=n_train, stratify=y, random_state=seed)
    return crowd_from_workers(xtr, ytr, xte, yte, random_workers(n_workers, seed), n_classes,
                              answers_per_task=answers_per_task, seed=seed, name="many_workers")


# ------------------------------------------------------------------ strategies
@dataclass
class SimulationSettings:
    """Training settings of the simulations (section 4, "Implementation details")."""

    hidden: tuple[int, ...] = (30, 20, 20)
    epochs: int = 150
    milestones: tuple[int, ...] = (50, 100)
    identification_epochs: int = 50  # T of the AUMC / WAUM
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    margin: str = "yang"
    ds_kwargs: dict = field(default_factory=lambda: {"init": "naive_soft", "tol": 1e-6, "n_iter": 100})
    device: Any = None

    def train_kwargs(self, seed: int) -> dict:
        return dict(batch_size=self.batch_size, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                    optimizer="sgd", seed=seed, device=self.device, progress=False)


_STRATEGY = re.compile(r"^(?P<base>[\w +-]+?)(?: \(alpha=(?P<alpha>[0-9.e-]+)\))?$")


def parse_strategy(name: str) -> tuple[str, float | None]:
    """``"WDS + WAUM (alpha=0.1)"`` -> (``"WDS + WAUM"``, 0.1); ``"MV"`` -> (``"MV"``, None)."""
    m = _STRATEGY.match(name.strip())
    base = m.group("base").strip() if m else name
    known = {"MV", "NS", "DS", "GLAD", "WDS", "WDS + AUMC", "WDS + WAUM", "WAUM", "worker-wise WAUM"}
    if not m or base not in known:
        raise ValueError(f"unknown strategy {name!r}; use one of {sorted(known)}, pruning ones with ' (alpha=...)'")
    alpha = m.group("alpha")
    if base in {"WDS + AUMC", "WDS + WAUM", "WAUM", "worker-wise WAUM"} and alpha is None:
        raise ValueError(f"strategy {name!r} needs an alpha, e.g. '{base} (alpha=0.1)'")
    return base, None if alpha is None else float(alpha)


@dataclass
class StrategyResult:
    """One strategy on one crowd: the training targets, the kept tasks, the trained model's test metrics."""

    strategy: str
    targets: np.ndarray  # (n_tasks, K) soft labels (one-hot for MV); rows of pruned tasks are NaN
    keep: np.ndarray  # (n_tasks,) bool
    test_probas: np.ndarray
    train_probas: np.ndarray
    metrics: dict[str, float]
    scores: np.ndarray | None = None  # AUMC / WAUM per task when the strategy prunes
    identification: Any = None


def _aggregate(base: str, data: CrowdData, settings: SimulationSettings, seed: int) -> np.ndarray:
    from crowd.aggregation import MajorityVote, NaiveSoft, WDS
    from crowd.aggregation.dawid_skene import DawidSkene

    if base == "MV":
        labels = MajorityVote(tie_break="random", seed=seed).fit(data).labels_
        return np.eye(data.n_classes)[labels]
    if base == "NS":
        return NaiveSoft().fit(data).probas_
    if base == "DS":
        return np.asarray(DawidSkene(**settings.ds_kwargs).fit(data).probas_)
    if base == "GLAD":
        from crowd.aggregation.glad import GLAD

        return np.asarray(GLAD().fit(data).probas_)
    if base == "WDS":
        return WDS(ds_kwargs=settings.ds_kwargs).fit(data).probas_
    raise ValueError(base)


def _identify(base: str, data: CrowdData, settings: SimulationSettings, seed: int, cache: dict | None):
    """AUMC / WAUM / worker-wise WAUM of the crowd (cached: the scores do not depend on alpha)."""
    from crowd import identification as idf
    from crowd.learning.models import MLP
    from crowd.learning.trainer import seed_everything

    kind = {"WDS + AUMC": "aumc", "WDS + WAUM": "waum", "WAUM": "waum", "worker-wise WAUM": "worker_wise"}[base]
    if cache is not None and kind in cache:
        return cache[kind]
    seed_everything(seed)
    model = MLP(data.features.shape[1], data.n_classes, settings.hidden)
    common = dict(epochs=settings.identification_epochs, margin=settings.margin, **settings.train_kwargs(seed))
    if kind == "aumc":
        from crowd.aggregation import MajorityVote

        mv = MajorityVote(tie_break="random", seed=seed).fit(data).labels_
        ident = idf.AUMC(**common).fit(data, model, mv_labels=mv)
    elif kind == "waum":
        ident = idf.WAUM(ds_kwargs=settings.ds_kwargs, **common).fit(data, model)
    else:
        ident = idf.WorkerWiseWAUM(ds_kwargs=settings.ds_kwargs, **common).fit(data, model)
    if cache is not None:
        cache[kind] = ident
    return ident


def run_strategy(data: CrowdData, strategy: str, settings: SimulationSettings | None = None, seed: int = 0,
                 cache: dict | None = None) -> StrategyResult:
    """Aggregate (and prune), train the MLP on the resulting labels, evaluate on ``splits["test"]``.

    Pruning strategies compute AUMC / WAUM (T = ``identification_epochs``), drop the
    ceil(alpha n) lowest tasks, re-run DS on the kept answers and train on the WDS soft labels.
    """
    from crowd import metrics
    from crowd.aggregation import WDS
    from crowd.learning.models import MLP
    from crowd.learning.trainer import predict_proba, seed_everything, train

    settings = settings or SimulationSettings()
    base, alpha = parse_strategy(strategy)
    scores, ident = None, None
    keep = np.ones(data.n_tasks, dtype=bool)
    targets = np.full((data.n_tasks, data.n_classes), np.nan)
    if alpha is None:
        targets[:] = _aggregate(base, data, settings, seed)
    else:
        ident = _identify(base, data, settings, seed, cache)
        scores = ident.scores_
        keep = ident.prune(alpha)
        kept = data.subset_tasks(np.flatnonzero(keep))
        targets[keep] = WDS(ds_kwargs=settings.ds_kwargs).fit(kept).probas_
    seed_everything(seed)
    model = MLP(data.features.shape[1], data.n_classes, settings.hidden)
    hard = base == "MV"
    y = targets[keep].argmax(1) if hard else targets[keep].astype(np.float32)
    train(model, data.features[keep], y, epochs=settings.epochs, milestones=settings.milestones,
          **settings.train_kwargs(seed))
    test = data.splits["test"]
    test_probas = predict_proba(model, test.features)
    out = metrics.evaluate(test_probas, test.labels)
    out["train_accuracy"] = metrics.accuracy(predict_proba(model, data.features), data.gold)
    out["n_train"] = int(keep.sum())
    return StrategyResult(strategy, targets, keep, test_probas, predict_proba(model, data.features), out, scores, ident)


def run_experiment(make_crowd: Callable[[int], CrowdData], strategies: Sequence[str], n_repetitions: int = 10,
                   seed: int = 0, settings: SimulationSettings | None = None, progress: bool = True,
                   resample_data: bool = False) -> pd.DataFrame:
    """Every strategy, ``n_repetitions`` times.

    ``resample_data=False`` (the paper's protocol: peerannot trains with several seeds on one
    simulated dataset, hence its near-zero standard deviations): one crowd ``make_crowd(seed)``,
    repetition r re-runs the identification and the training with seed ``seed + r``.
    ``resample_data=True``: repetition r also draws a new crowd ``make_crowd(seed + r)`` (points and
    workers), which measures the spread over datasets as well.

    One row per (repetition, strategy) with the test accuracy, ECE, 1 - ECE, train accuracy and
    number of kept tasks; plus, for crowds of at most 10 workers, one row per repetition and worker
    (method ``"worker: <name>"``) with the worker's test accuracy.
    """
    settings = settings or SimulationSettings()
    rows = []
    reps = range(n_repetitions)
    if progress:
        from tqdm.auto import tqdm

        reps = tqdm(reps, desc="repetitions")
    fixed = None if resample_data else make_crowd(seed)
    for r in reps:
        data = make_crowd(seed + r) if resample_data else fixed
        cache: dict = {}
        for name in strategies:
            res = run_strategy(data, name, settings, seed=seed + r, cache=cache)
            rows.append({"repetition": r, "dataset": data.name, "method": name, **res.metrics})
        if len(data.meta["workers"]) <= 10:
            for wname, acc in zip(data.meta["workers"], data.meta["worker_test_accuracy"]):
                rows.append({"repetition": r, "dataset": data.name, "method": f"worker: {wname}", "accuracy": float(acc)})
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "ece"), note: str = "") -> pd.DataFrame:
    """Long format of the paper-values convention: dataset, method, metric, value (mean), std, n_runs, note."""
    long = runs.melt(id_vars=["repetition", "dataset", "method"], value_vars=[m for m in metrics if m in runs],
                     var_name="metric", value_name="v").dropna(subset=["v"])
    out = (long.groupby(["dataset", "method", "metric"], sort=False)["v"]
           .agg(value="mean", std=lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else np.nan, n_runs="count")
           .reset_index())
    out["note"] = note
    return out


# ------------------------------------------------------------------- plotting
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
