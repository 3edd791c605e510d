r"""Worker quality scores computed from (estimated) confusion matrices.

``pi_j[l, k] = P(worker j answers k | true class l)``; rows are true classes.

Spammer score (Raykar & Yu, "Ranking annotators for crowdsourced labeling tasks",
NeurIPS 2011; JMLR 2012). A spammer answers independently of the truth, so every row
of his confusion matrix is the same distribution ``v``: ``pi_j = 1 v^T`` has rank one.
The score is the squared Frobenius distance to the closest such matrix,

.. math:: S_j = \frac{1}{K - 1} \min_{v \in \mathbb{R}^K} \| \pi_j - \mathbf{1}_K v^T \|_F^2 .

Closed form: the objective is :math:`\sum_k \sum_l (\pi_j[l, k] - v_k)^2`, a separate least
squares problem in each ``v_k``, minimised by the column mean
:math:`v_k = \frac1K \sum_l \pi_j[l, k]` (which sums to 1, so the constraint
``v`` in the simplex is inactive). Hence

.. math:: S_j = \frac{1}{K-1} \sum_{l, k} (\pi_j[l, k] - \bar\pi_j[k])^2
             = \frac{1}{K(K-1)} \sum_{l < l'} \sum_k (\pi_j[l, k] - \pi_j[l', k])^2 ,

Raykar & Yu's pairwise form. The ``1/(K-1)`` factor puts the score in ``[0, 1]`` for
row-stochastic matrices: 0 for every spammer, 1 for a perfect worker (identity) and for
any permutation (a perfectly adversarial worker is as informative). Salmon's lecture
uses the unscaled distance (``scaled=False``).

Trace score (Salmon's lecture): :math:`\mathrm{trace}(\pi_j)/K`, the worker's accuracy
averaged over the true classes (1 for the identity, 1/K for a uniform spammer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["spammer_score", "trace_score", "rank_workers"]


def _as_confusions(confusions: np.ndarray) -> tuple[np.ndarray, bool]:
    """(n_workers, K, K) float array and whether a single (K, K) matrix was given."""
    conf = np.asarray(confusions, dtype=float)
    single = conf.ndim == 2
    if single:
        conf = conf[None]
    if conf.ndim != 3 or conf.shape[1] != conf.shape[2]:
        raise ValueError(f"confusions must be (K, K) or (n_workers, K, K) with square matrices, got shape {np.shape(confusions)}")
    if conf.shape[1] < 2:
        raise ValueError(f"confusion matrices need at least 2 classes, got K={conf.shape[1]}")
    if not np.all(np.isfinite(conf)):
        raise ValueError("confusions hold NaN or infinite values")
    return conf, single


def spammer_score(confusions: np.ndarray, scaled: bool = True) -> np.ndarray | float:
    """Raykar & Yu's spammer score of each confusion matrix (see the module docstring).

    ``confusions``: (n_workers, K, K) or (K, K). Returns (n_workers,) scores, or a float
    for one matrix. ``scaled=False`` gives the raw ``min_v ||pi - 1 v^T||_F^2``.
    """
    conf, single = _as_confusions(confusions)
    K = conf.shape[1]
    residual = conf - conf.mean(axis=1, keepdims=True)  # pi_j - 1 v^T with v = column means
    score = np.einsum("wlk,wlk->w", residual, residual)
    if scaled:
        score = score / (K - 1)
    return float(score[0]) if single else score


def trace_score(confusions: np.ndarray) -> np.ndarray | float:
    """``trace(pi_j) / K`` for each confusion matrix: (n_workers,) or a float for one matrix."""
    conf, single = _as_confusions(confusions)
    score = np.trace(conf, axis1=1, axis2=2) / conf.shape[1]
    return float(score[0]) if single else score


def rank_workers(confusions: np.ndarray, worker_ids: Sequence | np.ndarray | None = None,
                 by: str = "spammer_score", n_answers: np.ndarray | None = None) -> pd.DataFrame:
    """Table of worker scores sorted from the best worker to the worst.

    Columns: ``worker`` (id), ``spammer_score``, ``trace_score``, ``n_answers`` (when given)
    and ``rank`` (1 = best by ``by``, which is ``"spammer_score"`` or ``"trace_score"``).
    Ties keep the worker-code order.
    """
    conf, _ = _as_confusions(confusions)
    n = conf.shape[0]
    if by not in ("spammer_score", "trace_score", "spammer", "trace"):
        raise ValueError(f"unknown ranking key {by!r}; use 'spammer_score' or 'trace_score'")
    by = by if by.endswith("_score") else f"{by}_score"
    ids = np.arange(n) if worker_ids is None else np.asarray(worker_ids)
    if len(ids) != n:
        raise ValueError(f"worker_ids has {len(ids)} entries for {n} confusion matrices")
    table = pd.DataFrame({"worker": ids, "spammer_score": spammer_score(conf), "trace_score": trace_score(conf)})
    if n_answers is not None:
        n_answers = np.asarray(n_answers)
        if n_answers.shape != (n,):
            raise ValueError(f"n_answers must hold one count per worker ({n}), got shape {n_answers.shape}")
        table["n_answers"] = n_answers
    table = table.sort_values(by, ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, n + 1)
    return table
