"""Simulated crowds: workers with confusion matrices answering tasks of known truth.

The generative model is Dawid & Skene's (1979): task ``i`` has a true class
``z_i ~ Categorical(rho)``; worker ``j`` answering it gives label ``l`` with
probability ``pi_j[z_i, l]`` (rows of ``pi_j`` are true classes). Each task is
answered by distinct workers (no repeated (task, worker) pair).

Everything is vectorised over answers (10M answers generate in seconds) and
seeded through a ``numpy.random.Generator`` built from ``seed``.

Worker kinds (the vocabulary of the WAUM paper and Salmon's lecture):

* *hammers*-like good workers: diagonal ``pi_j[k, k] ~ U(diag_low, diag_high)``
  per class, the remaining mass ``1 - pi_j[k, k]`` spread over the other labels by
  a flat Dirichlet draw;
* *spammers*: rank-one matrices ``pi_j = 1 v^T`` (every row identical, so the
  answer says nothing about the truth). Half answer uniformly at random
  (``v`` uniform), half favour one label (``v`` puts ``favourite_mass`` on it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from crowd.data import CrowdData

__all__ = ["random_confusions", "simulate_answers", "simulate_crowd", "oracle_posterior", "draw_distinct_workers"]

# Answers labelled per chunk when drawing labels: bounds the (chunk, K) temporary.
_LABEL_CHUNK = 1 << 20


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_confusions(
    n_workers: int,
    n_classes: int,
    *,
    diag_low: float = 0.5,
    diag_high: float = 0.95,
    spammer_share: float = 0.0,
    favourite_mass: float = 0.8,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Random confusion matrices, shape (n_workers, K, K), rows = true class, rows sum to 1.

    A share ``spammer_share`` of the workers (rounded, placed at random) are rank-one
    spammers; the others have their diagonal in ``[diag_low, diag_high]``.
    """
    if n_workers <= 0 or n_classes < 2:
        raise ValueError(f"need n_workers >= 1 and n_classes >= 2, got {n_workers} and {n_classes}")
    if not 0.0 <= diag_low <= diag_high <= 1.0:
        raise ValueError(f"need 0 <= diag_low <= diag_high <= 1, got {diag_low}, {diag_high}")
    if not 0.0 <= spammer_share <= 1.0:
        raise ValueError(f"spammer_share must be in [0, 1], got {spammer_share}")
    rng = _rng(seed)
    K = n_classes
    diag = rng.uniform(diag_low, diag_high, size=(n_workers, K))
    # off-diagonal mass: flat Dirichlet over the K-1 wrong labels of each row
    off = rng.dirichlet(np.ones(K - 1), size=(n_workers, K)) * (1.0 - diag)[..., None]
    conf = np.empty((n_workers, K, K))
    eye = np.eye(K, dtype=bool)
    conf[:, eye] = diag
    conf[:, ~eye] = off.reshape(n_workers, K * (K - 1))

    n_spam = int(round(spammer_share * n_workers))
    if n_spam:
        spam = rng.choice(n_workers, size=n_spam, replace=False)
        rows = np.full((n_spam, K), 1.0 / K)
        favours = rng.random(n_spam) < 0.5
        if favours.any():
            fav_label = rng.integers(0, K, size=int(favours.sum()))
            fav_rows = np.full((len(fav_label), K), (1.0 - favourite_mass) / (K - 1))
            fav_rows[np.arange(len(fav_label)), fav_label] = favourite_mass
            rows[favours] = fav_rows
        conf[spam] = rows[:, None, :]
    return conf


def draw_distinct_workers(
    counts: np.ndarray,
    n_workers: int,
    rng: np.random.Generator,
    worker_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For task ``i`` draw ``counts[i]`` distinct workers; returns (task, worker), sorted by task.

    Sparse crowds (counts much smaller than n_workers): draw with replacement and redraw
    the repeated pairs until none is left (a few vectorised rounds). Dense crowds (some
    task needs more than half the workers): rank random keys per task, which costs
    n_tasks x n_workers <= 2 x n_answers, so it stays linear in the answers.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_tasks = len(counts)
    if counts.size and (counts.min() < 1 or counts.max() > n_workers):
        raise ValueError(f"answers per task must be in [1, n_workers={n_workers}], got range "
                         f"[{counts.min()}, {counts.max()}]")
    p = None
    if worker_weights is not None:
        p = np.asarray(worker_weights, dtype=float)
        if p.shape != (n_workers,) or (p < 0).any() or p.sum() <= 0:
            raise ValueError("worker_weights must be n_workers non-negative numbers with a positive sum")
        p = p / p.sum()
        if np.count_nonzero(p) < counts.max():
            raise ValueError("fewer workers with positive weight than answers needed per task")
    task = np.repeat(np.arange(n_tasks, dtype=np.int64), counts)

    if p is None and 2 * counts.max() > n_workers:
        # dense case: the counts[i] workers with the smallest random keys of task i
        order = np.argsort(rng.random((n_tasks, n_workers)), axis=1)
        take = np.arange(n_workers)[None, :] < counts[:, None]
        key = np.sort(task * n_workers + order[take])
        return key // n_workers, key % n_workers

    def draw(size: int) -> np.ndarray:
        return rng.choice(n_workers, size=size, p=p) if p is not None else rng.integers(0, n_workers, size=size)

    worker = draw(len(task))
    # answers are grouped by task, so sorting the key task*W + worker sorts workers within each task;
    # after the first round only the answers of tasks that had a repeat are checked again
    check = np.arange(len(task))
    for _ in range(10_000):
        key = task[check] * n_workers + worker[check]
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        repeated = check[order[1:][sorted_key[1:] == sorted_key[:-1]]]
        if repeated.size == 0:
            break
        worker[repeated] = draw(repeated.size)
        bad_tasks = np.zeros(n_tasks, dtype=bool)
        bad_tasks[task[repeated]] = True
        check = np.flatnonzero(bad_tasks[task])
    else:  # pragma: no cover - only with pathological weights
        raise RuntimeError("could not draw distinct workers per task; spread worker_weights more evenly")
    # canonical order: by task, then worker
    key = np.sort(task * n_workers + worker)
    return key // n_workers, key % n_workers


def simulate_answers(
    confusions: np.ndarray,
    n_tasks: int,
    answers_per_task: int | tuple[int, int] | Sequence[int],
    *,
    priors: np.ndarray | None = None,
    worker_weights: np.ndarray | None = None,
    seed: int | np.random.Generator | None = 0,
    name: str = "simulated",
) -> CrowdData:
    """Draw true labels and answers from confusion matrices (Dawid-Skene model).

    Parameters
    ----------
    confusions : (n_workers, K, K), rows = true class, each row a distribution.
    answers_per_task : an int (every task), a ``(low, high)`` pair (uniform integer in
        ``[low, high]`` per task, inclusive) or a sequence of n_tasks counts.
    priors : class distribution of the truth (uniform if None).
    worker_weights : relative activity of the workers (uniform if None).

    Returns a :class:`CrowdData` with ``gold`` = the true labels and ``meta`` holding
    ``confusions``, ``priors`` and ``seed``.
    """
    conf = np.asarray(confusions, dtype=float)
    if conf.ndim != 3 or conf.shape[1] != conf.shape[2]:
        raise ValueError(f"confusions must have shape (n_workers, K, K), got {conf.shape}")
    if (conf < 0).any() or not np.allclose(conf.sum(axis=2), 1.0, atol=1e-8):
        raise ValueError("every row of every confusion matrix must be a probability distribution")
    n_workers, K, _ = conf.shape
    if n_tasks <= 0:
        raise ValueError(f"n_tasks must be positive, got {n_tasks}")
    rng = _rng(seed)
    if priors is None:
        priors = np.full(K, 1.0 / K)
    priors = np.asarray(priors, dtype=float)
    if priors.shape != (K,) or (priors < 0).any() or not np.isclose(priors.sum(), 1.0):
        raise ValueError(f"priors must be a distribution over the {K} classes")

    if np.ndim(answers_per_task) == 0:
        counts = np.full(n_tasks, int(answers_per_task), dtype=np.int64)
    elif len(answers_per_task) == 2 and n_tasks != 2:
        low, high = (int(v) for v in answers_per_task)
        if low > high:
            raise ValueError(f"answers_per_task range ({low}, {high}) is empty")
        counts = rng.integers(low, high + 1, size=n_tasks)
    else:
        counts = np.asarray(answers_per_task, dtype=np.int64)
        if counts.shape != (n_tasks,):
            raise ValueError(f"answers_per_task must be an int, a (low, high) pair or {n_tasks} counts")

    truth = rng.choice(K, size=n_tasks, p=priors).astype(np.int64)
    task, worker = draw_distinct_workers(counts, n_workers, rng, worker_weights)

    # label ~ row pi_worker[truth]: inverse-CDF on the cumulated rows, in chunks
    cdf = np.cumsum(conf, axis=2)
    cdf[..., -1] = 1.0  # guard against rounding below 1
    label = np.empty(len(task), dtype=np.int64)
    for start in range(0, len(task), _LABEL_CHUNK):
        sl = slice(start, start + _LABEL_CHUNK)
        rows = cdf[worker[sl], truth[task[sl]]]
        u = rng.random(len(rows))
        label[sl] = (u[:, None] >= rows).sum(axis=1)
    np.minimum(label, K - 1, out=label)

    meta = {"confusions": conf, "priors": priors, "seed": seed if not isinstance(seed, np.random.Generator) else None,
            "source": "crowd.simulation.confusion (Dawid-Skene generative model)"}
    return CrowdData(task, worker, label, n_tasks, n_workers, K, gold=truth, meta=meta, name=name)


def simulate_crowd(
    n_tasks: int,
    n_workers: int,
    n_classes: int,
    answers_per_task: int | tuple[int, int] | Sequence[int],
    *,
    spammer_share: float = 0.0,
    diag_low: float = 0.5,
    diag_high: float = 0.95,
    priors: np.ndarray | None = None,
    worker_weights: np.ndarray | None = None,
    seed: int | None = 0,
    name: str = "simulated",
) -> CrowdData:
    """Random confusion matrices (see :func:`random_confusions`) then answers (:func:`simulate_answers`).

    One generator seeded by ``seed`` drives both steps, so the crowd is a function of the arguments.
    """
    rng = np.random.default_rng(seed)
    conf = random_confusions(n_workers, n_classes, diag_low=diag_low, diag_high=diag_high,
                             spammer_share=spammer_share, seed=rng)
    data = simulate_answers(conf, n_tasks, answers_per_task, priors=priors, worker_weights=worker_weights,
                            seed=rng, name=name)
    data.meta["seed"] = seed
    data.meta["spammer_share"] = spammer_share
    return data


def oracle_posterior(data: CrowdData, confusions: np.ndarray | None = None,
                     priors: np.ndarray | None = None) -> np.ndarray:
    """Bayes posterior p(z_i = k | answers) under the TRUE model, shape (n_tasks, K).

    ``T_ik ∝ rho_k prod_{answers (i, j, l)} pi_j[k, l]`` (Dawid & Skene 1979), in log space.
    Defaults to ``data.meta["confusions"]`` and ``data.meta["priors"]`` of a simulated crowd.
    Its argmax is the best accuracy any aggregator of these answers can expect.
    """
    from crowd.aggregation._em import e_step_numpy, AnswerIndex

    conf = data.meta["confusions"] if confusions is None else np.asarray(confusions, dtype=float)
    rho = data.meta["priors"] if priors is None else np.asarray(priors, dtype=float)
    index = AnswerIndex.from_data(data)
    post, _ = e_step_numpy(index, _safe_log(conf), _safe_log(rho))
    return post


def _safe_log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(x, np.finfo(np.float64).tiny))
