"""Data filling: give the missing (item, worker) answers of a sparse crowd, then aggregate as usual.

MMLC-df (Han et al., AAAI 2025, eq. 10)::

    D' = D  U  {(x_i, w_j, argmax f_{w_j}(x_i)) : I_ij = 0, worker j has more than b labels}

``b`` (``threshold``) sets how much is filled: every worker with more than ``b`` labels gets an answer
on every item he did not label; ``b = 0`` fills the whole matrix (density 1, unless some worker code has
no answer at all: such a worker has no trained gate and is never filled). Density = answers / (items x
workers). The filling baselines of the paper's Table 2 use the same interface:

* G_MV (Sheng 2011; authors' ``generateMethod/G_MV.py``, ``generate_replenish``): the missing answer on
  item i is drawn from the item's vote shares, P(label = k) = n_ik / n_i.
* G_IRT (Baker & Kim 2017; authors' ``generateMethod/G_IRT.py``): a one-coin item response model,
  P(worker j answers item i correctly) = sigmoid(a_j - d_i), wrong answers uniform over the K - 1 other
  classes, fitted by EM (the true class is the latent variable; abilities a and difficulties d by
  maximum a posteriori with N(1, 1) and N(0, 1) priors, L-BFGS); the missing answer is the item's
  most probable class with probability sigmoid(a_j - d_i), else one of the K - 1 others uniformly.

The result is a new :class:`~crowd.data.CrowdData`: the observed answers first, unchanged and in their
order, then the filled ones (``meta["n_observed"]`` counts the former, :func:`filled_mask` tells them
apart). An observed answer is never overwritten. Cost: linear in the number of answers produced.

What differs from the authors' code: their G_IRT mixes two models, sigmoid(a_j * exp(b_i)) in the E-step
and sigmoid(a_j - exp(b_i)) in the M-step; here one model serves both steps (difficulty d_i unconstrained,
its prior centred at 0). Their EM initialises the posteriors from the gold labels (then overwrites them
with an E-step before any use); here from the vote shares: the gold labels are never read.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from crowd.aggregation.base import Aggregator
from crowd.data import CrowdData, as_crowd_data

__all__ = ["missing_pairs", "append_answers", "filled_mask", "fill", "mmlc_fill", "g_mv_fill", "g_irt_fill",
           "OneCoinIRT"]


def missing_pairs(data: CrowdData, threshold: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(task, worker) codes of every unanswered pair of the workers with more than ``threshold`` answers,
    sorted by worker then task."""
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    counts = np.bincount(data.worker, minlength=data.n_workers)
    workers = np.flatnonzero(counts > threshold)
    if workers.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # candidates: the eligible workers' rows of the matrix (the size of the output); drop the observed keys
    observed = np.sort(data.worker * np.int64(data.n_tasks) + data.task)
    keys = (workers[:, None] * np.int64(data.n_tasks) + np.arange(data.n_tasks)[None, :]).ravel()
    pos = np.minimum(np.searchsorted(observed, keys), len(observed) - 1)
    keys = keys[observed[pos] != keys]
    return (keys % data.n_tasks).astype(np.int64), (keys // data.n_tasks).astype(np.int64)


def append_answers(data: CrowdData, task: np.ndarray, worker: np.ndarray, label: np.ndarray,
                   method: str, **info: Any) -> CrowdData:
    """A new CrowdData with the given answers after the observed ones (an error if a pair is observed)."""
    task, worker, label = (np.asarray(a, dtype=np.int64) for a in (task, worker, label))
    if not (task.shape == worker.shape == label.shape) or task.ndim != 1:
        raise ValueError("task, worker and label must be 1-d arrays of the same length")
    n_obs = data.meta.get("n_observed", data.n_answers) if data.meta.get("filling") else data.n_answers
    meta = dict(data.meta)
    meta["n_observed"] = int(n_obs)
    meta["filling"] = {"method": method, "n_filled": int(len(task)), **info}
    # CrowdData refuses duplicated (task, worker) pairs: an observed answer can never be replaced
    return CrowdData(np.concatenate([data.task, task]), np.concatenate([data.worker, worker]),
                     np.concatenate([data.label, label]), data.n_tasks, data.n_workers, data.n_classes,
                     data.task_ids, data.worker_ids, data.class_names, data.gold, data.features, data.splits,
                     meta, data.name)


def filled_mask(data: CrowdData) -> np.ndarray:
    """True for the answers added by filling, False for the observed ones."""
    mask = np.zeros(data.n_answers, dtype=bool)
    if data.meta.get("filling"):
        mask[int(data.meta["n_observed"]):] = True
    return mask


def fill(data: Any, generate: Callable[[np.ndarray, np.ndarray], np.ndarray], threshold: int = 0,
         method: str = "custom", **info: Any) -> CrowdData:
    """Fill with ``generate(task, worker) -> labels`` (codes) on the missing pairs at ``threshold``."""
    data = as_crowd_data(data)
    task, worker = missing_pairs(data, threshold)
    label = np.asarray(generate(task, worker), dtype=np.int64) if len(task) else np.empty(0, np.int64)
    if label.shape != task.shape:
        raise ValueError(f"the generator returned {label.shape} labels for {task.shape} pairs")
    if len(label) and (label.min() < 0 or label.max() >= data.n_classes):
        raise ValueError(f"the generator returned labels outside [0, {data.n_classes})")
    return append_answers(data, task, worker, label, method, threshold=int(threshold), **info)


def mmlc_fill(data: Any, model: Any, threshold: int = 0) -> CrowdData:
    """MMLC-df: the fitted MMLC model's most probable answer of each worker on each item he skipped.
    ``model`` must have been fitted on ``data`` (same tasks and workers)."""
    data = as_crowd_data(data)
    model._check_fitted()
    if model.n_workers_ != data.n_workers or len(model.features_) != data.n_tasks:
        raise ValueError(f"the model was fitted on {len(model.features_)} tasks and {model.n_workers_} workers, "
                         f"the data has {data.n_tasks} and {data.n_workers}")
    return fill(data, lambda t, w: model.predict_answers(t, w).argmax(axis=1), threshold, "MMLC-df")


def g_mv_fill(data: Any, threshold: int = 0, seed: int = 0) -> CrowdData:
    """G_MV: missing answers drawn from the item's vote shares."""
    data = as_crowd_data(data)
    data.require_all_tasks_answered()
    rng = np.random.default_rng(seed)
    counts = data.vote_counts().astype(np.float64)
    cum = np.cumsum(counts / counts.sum(axis=1, keepdims=True), axis=1)

    def generate(task: np.ndarray, worker: np.ndarray) -> np.ndarray:
        u = rng.random(len(task))
        rows = cum[task]
        return np.minimum((u[:, None] >= rows).sum(axis=1), data.n_classes - 1)

    return fill(data, generate, threshold, "G_MV", seed=int(seed))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


class OneCoinIRT(Aggregator):
    """One-coin IRT (Rasch) crowd model, fitted by EM: P(correct) = sigmoid(ability_j - difficulty_i).

    Fitted attributes: ``ability_`` (n_workers,), ``difficulty_`` (n_tasks,), ``probas_`` (posterior of
    the true class), ``labels_``, ``n_iter_``, ``log_posterior_`` (history of the EM objective).
    """

    def __init__(self, max_iter: int = 50, tol: float = 1e-5, ability_prior: tuple[float, float] = (1.0, 1.0),
                 difficulty_prior: tuple[float, float] = (0.0, 1.0), m_step_iter: int = 25):
        self.max_iter = max_iter
        self.tol = tol
        self.ability_prior = ability_prior
        self.difficulty_prior = difficulty_prior
        self.m_step_iter = m_step_iter

    def _e_step(self, data: CrowdData, a: np.ndarray, d: np.ndarray) -> np.ndarray:
        K = data.n_classes
        s = a[data.worker] - d[data.task]
        log_right, log_wrong = _log_sigmoid(s), _log_sigmoid(-s) - np.log(K - 1)
        base = np.bincount(data.task, log_wrong, minlength=data.n_tasks)
        extra = np.bincount(data.task * K + data.label, log_right - log_wrong, minlength=data.n_tasks * K)
        logp = base[:, None] + extra.reshape(data.n_tasks, K)  # uniform class prior, as the authors
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        return p / p.sum(axis=1, keepdims=True)

    def _fit(self, data: CrowdData) -> None:
        from scipy.optimize import minimize

        if data.n_classes < 2:
            raise ValueError("OneCoinIRT needs at least 2 classes")
        W, T = data.n_workers, data.n_tasks
        (ma, sa), (md, sd) = self.ability_prior, self.difficulty_prior
        counts = data.vote_counts().astype(np.float64)
        post = counts / counts.sum(axis=1, keepdims=True)
        a, d = np.full(W, float(ma)), np.full(T, float(md))
        history: list[float] = []

        def objective(theta: np.ndarray, c: np.ndarray) -> tuple[float, np.ndarray]:
            a_, d_ = theta[:W], theta[W:]
            s = a_[data.worker] - d_[data.task]
            value = -(c * _log_sigmoid(s) + (1 - c) * _log_sigmoid(-s)).sum()
            value += 0.5 * (((a_ - ma) / sa) ** 2).sum() + 0.5 * (((d_ - md) / sd) ** 2).sum()
            g = -(c - 1.0 / (1.0 + np.exp(-s)))  # d value / d s
            grad_a = np.bincount(data.worker, g, minlength=W) + (a_ - ma) / sa**2
            grad_d = -np.bincount(data.task, g, minlength=T) + (d_ - md) / sd**2
            return float(value), np.concatenate([grad_a, grad_d])

        self.n_iter_ = 0
        for it in range(int(self.max_iter)):
            c = post[data.task, data.label]  # posterior probability that each answer is right
            res = minimize(objective, np.concatenate([a, d]), args=(c,), jac=True, method="L-BFGS-B",
                           options={"maxiter": int(self.m_step_iter)})
            a, d = res.x[:W], res.x[W:]
            post = self._e_step(data, a, d)
            history.append(-float(res.fun))
            self.n_iter_ = it + 1
            if it > 0 and abs(history[-1] - history[-2]) <= self.tol * abs(history[-2]):
                break
        self.ability_, self.difficulty_ = a, d
        self.probas_ = post
        self.log_posterior_ = np.array(history)

    def answer_correct_proba(self, task: np.ndarray, worker: np.ndarray) -> np.ndarray:
        """sigmoid(ability_j - difficulty_i) for the given pairs."""
        return 1.0 / (1.0 + np.exp(-(self.ability_[worker] - self.difficulty_[task])))


def g_irt_fill(data: Any, threshold: int = 0, seed: int = 0, model: OneCoinIRT | None = None) -> CrowdData:
    """G_IRT: fit :class:`OneCoinIRT` (or use the fitted ``model``), then draw each missing answer: the
    item's most probable class with probability sigmoid(a_j - d_i), else another class uniformly."""
    data = as_crowd_data(data)
    if model is None:
        model = OneCoinIRT().fit(data)
    elif not hasattr(model, "ability_"):
        raise ValueError("model must be a fitted OneCoinIRT")
    K = data.n_classes
    rng = np.random.default_rng(seed)

    def generate(task: np.ndarray, worker: np.ndarray) -> np.ndarray:
        top = model.labels_[task]
        right = rng.random(len(task)) < model.answer_correct_proba(task, worker)
        other = rng.integers(0, K - 1, size=len(task))
        other = other + (other >= top)  # uniform over the K - 1 classes other than top
        return np.where(right, top, other)

    return fill(data, generate, threshold, "G_IRT", seed=int(seed))
