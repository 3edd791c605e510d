"""Simulated crowds whose workers are scikit-learn classifiers (Lefort et al. TMLR 2024, section 4.1
and appendix D.1), the crowds of their Tables 1, 3 and 4.

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

The experiments on these crowds run through the one runner (:mod:`crowd.experiments.runner`)
with the settings of :mod:`crowd.experiments.settings.waum` (``SIMULATION``, ``table1_methods``...);
their figures: :mod:`crowd.reporting.waum_plots`.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from crowd.data import CrowdData, Split

__all__ = [
    "three_circles_points", "three_circles", "two_moons", "many_workers", "crowd_from_workers",
    "paper_workers", "random_workers",
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
        # workers stopped after a few iterations (SVC max_iter=1, appendix D.1.3's max_iter grid) do not
        # converge, on purpose: only that warning is silenced
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
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
