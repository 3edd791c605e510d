"""Vote-counting aggregators: majority vote, naive soft labels, weighted majority vote.

All three read the per-task vote counts ``n_ik = #{j : y_i^(j) = k}`` (one
``np.bincount`` over the answers, cost linear in the number of answers) and
differ only in how they turn them into labels. Formulas follow Salmon's lecture
"Supervised learning by crowdsourcing" (MV, WMV, NS).

Tie-breaking matters on sparse crowds (LabelMe: 129 of 1000 tasks tied; Music:
188 of 700): MMLC's code (Han et al., AAAI 2025) gives a tie to the *smallest*
label, where it compares labels as *strings* (so on the 13-class Text data
``"10" < "2"``); :func:`string_order` gives that priority order.
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import pandas as pd

from crowd.data import CrowdData
from crowd.aggregation.base import Aggregator, check_seed

__all__ = ["MajorityVote", "NaiveSoft", "WeightedMajorityVote", "break_ties", "check_tie_break", "string_order"]

TieBreak = Union[str, Sequence[int]]


def string_order(n_classes: int) -> list[int]:
    """Class codes sorted as decimal strings: ``[0, 1, 10, 11, 12, 2, ...]`` for 13 classes.

    MMLC's MV keeps labels as strings read from a csv, so "the smallest label" of a
    tie is the smallest in this order.
    """
    return sorted(range(n_classes), key=str)


TIE_BREAKS = ("random", "smallest", "string")


def check_tie_break(tie_break: TieBreak) -> TieBreak:
    """A named rule or a sequence of distinct class codes (checked against the classes at fit time)."""
    if isinstance(tie_break, str):
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {tie_break!r}; use 'random', 'smallest', 'string' "
                             "or a sequence of class codes in priority order")
        return tie_break
    try:
        order = np.asarray(tie_break)
    except Exception as err:  # noqa: BLE001 - anything numpy cannot read is a bad rule
        raise ValueError(f"unknown tie_break {tie_break!r}") from err
    if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer) or len(set(order.tolist())) != len(order):
        raise ValueError(f"a tie_break priority order must be a sequence of distinct class codes, got {tie_break!r}")
    return tie_break


def _priority(tie_break: TieBreak, n_classes: int) -> np.ndarray | None:
    """Rank of each class under a tie-break rule (smaller rank wins), or None for random."""
    if isinstance(tie_break, str):
        if tie_break == "random":
            return None
        if tie_break == "smallest":
            return np.arange(n_classes)
        if tie_break == "string":
            order = np.asarray(string_order(n_classes))
        else:
            raise ValueError(f"unknown tie_break {tie_break!r}; use 'random', 'smallest', 'string' "
                             "or a sequence of class codes in priority order")
    else:
        order = np.asarray(tie_break)
        if order.ndim != 1 or sorted(order.tolist()) != list(range(n_classes)):
            raise ValueError(f"a tie_break priority order must list each of the {n_classes} class codes "
                             f"exactly once, got {order.tolist()}")
    rank = np.empty(n_classes, dtype=np.int64)
    rank[order] = np.arange(n_classes)
    return rank


def break_ties(scores: np.ndarray, tie_break: TieBreak = "random", seed: int | np.random.Generator | None = 0,
               rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise argmax of ``scores`` (n_tasks, K) with an explicit rule for ties.

    ``tie_break``: ``"random"`` (uniform among the tied labels, seeded), ``"smallest"``
    (smallest class code), ``"string"`` (smallest code written as a decimal string, MMLC's
    behaviour) or a sequence of class codes in priority order. Scores within a relative
    ``rtol`` of the row maximum count as tied (weighted sums of floats).

    Returns ``(labels, tied)`` where ``tied`` flags the rows with more than one maximum.
    """
    scores = np.asarray(scores, dtype=float)
    n_tasks, n_classes = scores.shape
    row_max = scores.max(axis=1, keepdims=True)
    is_max = scores >= row_max - rtol * np.maximum(np.abs(row_max), 1.0)
    tied = is_max.sum(axis=1) > 1
    rank = _priority(tie_break, n_classes)
    if rank is None:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        # a uniform random key per (task, class); the largest key among the maxima wins,
        # which is a uniform draw among them
        key = np.where(is_max, rng.random(scores.shape), -1.0)
    else:
        key = np.where(is_max, n_classes - rank[None, :], -1)
    return np.argmax(key, axis=1), tied


class MajorityVote(Aggregator):
    r"""Majority vote (MV): the most answered label of each task.

    .. math:: \hat y_i^{MV} = \arg\max_{k} \sum_{j \in \mathcal{A}(x_i)} 1\{y_i^{(j)} = k\}

    (Salmon's lecture; Sheng, Provost & Ipeirotis 2008). Ties are broken by ``tie_break``:
    ``"random"`` (uniform among the tied labels, seeded by ``seed``), ``"smallest"`` (the
    smallest class code, MMLC's code), ``"string"`` (the
    smallest code compared as a string, which MMLC's code does on 13-class Text) or an
    explicit priority order of class codes.

    The random tie-break draws one key per (task code, class code); codes follow the sorted task
    ids (numbers before strings when the ids mix types), so it does not depend on the row order.

    ``probas_`` is the one-hot encoding of ``labels_`` (MV is a hard label; the vote
    shares are :class:`NaiveSoft`; crowd-kit's ``MajorityVote`` returns the shares and
    takes the first tied label of its pivot table, which is neither the smallest nor
    random). ``tied_`` flags the tasks whose maximum was tied.
    """

    def __init__(self, tie_break: TieBreak = "random", seed: int | np.random.Generator | None = 0) -> None:
        self.tie_break = check_tie_break(tie_break)
        self.seed = check_seed(seed)

    def _fit(self, data: CrowdData) -> None:
        counts = data.vote_counts()
        self.labels_, self.tied_ = break_ties(counts, self.tie_break, self.seed)
        self.probas_ = np.eye(data.n_classes)[self.labels_]


class NaiveSoft(Aggregator):
    r"""Naive soft labels (NS): the empirical distribution of each task's votes.

    .. math:: \hat y_i^{NS} = \mathrm{Norm}(\tilde y_i), \quad
              \tilde y_{ik} = \sum_{j \in \mathcal{A}(x_i)} 1\{y_i^{(j)} = k\}

    (Salmon's lecture; the "NS" soft labels of Lefort et al., TMLR 2024). ``labels_`` is
    the argmax with ties broken as in :class:`MajorityVote` (default: smallest code).
    """

    def __init__(self, tie_break: TieBreak = "smallest", seed: int | None = 0) -> None:
        self.tie_break = check_tie_break(tie_break)
        self.seed = check_seed(seed)

    def _fit(self, data: CrowdData) -> None:
        counts = data.vote_counts().astype(float)
        self.probas_ = counts / counts.sum(axis=1, keepdims=True)
        self.labels_, self.tied_ = break_ties(counts, self.tie_break, self.seed)


def worker_agreement(data: CrowdData, labels: np.ndarray) -> np.ndarray:
    """Share of each worker's answers equal to ``labels[task]`` (NaN for a worker without answers)."""
    agree = np.bincount(data.worker, weights=(data.label == labels[data.task]).astype(float), minlength=data.n_workers)
    n = data.answers_per_worker()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, agree / np.maximum(n, 1), np.nan)


class WeightedMajorityVote(Aggregator):
    r"""Weighted majority vote (WMV): each answer counts with its worker's weight :math:`\alpha_j > 0`.

    .. math:: \hat y_i^{WMV} = \arg\max_{k} \sum_{j \in \mathcal{A}(x_i)} \alpha_j 1\{y_i^{(j)} = k\}

    (Salmon's lecture). ``weights``:

    * ``"mv_accuracy"`` (default): :math:`\alpha_j` = share of worker ``j``'s answers that agree
      with the majority vote (ties broken by ``tie_break``). This is crowd-kit's ``Wawa``
      ("worker agreement with aggregate") and needs no prior knowledge of the workers.
    * ``"log_odds"``: :math:`\alpha_j = \max(0, \log\frac{(K-1) a_j}{1 - a_j})` with the
      Laplace-smoothed agreement :math:`a_j = (\#agree + 1)/(n_j + 2)`: the optimal weight of a
      one-coin worker of accuracy :math:`a_j` (Li & Yu 2014), clipped at 0 so that worse than
      random workers are ignored instead of counted against their votes.
    * an array of ``n_workers`` weights in worker-code order, or a Series indexed by worker id
      (every worker of the data must appear). Weights must be finite and non-negative.

    ``probas_`` are the normalised weighted vote shares (uniform for a task whose voters all
    have weight 0); ``labels_`` their argmax with ties broken by ``tie_break``.
    ``weights_`` holds the weights used, in worker-code order.
    """

    def __init__(self, weights: str | np.ndarray | pd.Series | Sequence[float] = "mv_accuracy",
                 tie_break: TieBreak = "random", seed: int | None = 0) -> None:
        if isinstance(weights, str) and weights not in ("mv_accuracy", "log_odds"):
            raise ValueError(f"unknown weights {weights!r}; use 'mv_accuracy', 'log_odds', an array or a Series")
        self.weights = weights
        self.tie_break = check_tie_break(tie_break)
        self.seed = check_seed(seed)

    def _resolve_weights(self, data: CrowdData) -> np.ndarray:
        w: Any = self.weights
        if w is None:
            w = "mv_accuracy"
        if isinstance(w, str):
            if w not in ("mv_accuracy", "log_odds"):
                raise ValueError(f"unknown weights {w!r}; use 'mv_accuracy', 'log_odds', an array or a Series")
            mv = MajorityVote(self.tie_break, self.seed).fit(data).labels_
            if w == "mv_accuracy":
                return worker_agreement(data, mv)
            agree = np.bincount(data.worker, weights=(data.label == mv[data.task]).astype(float), minlength=data.n_workers)
            acc = (agree + 1.0) / (data.answers_per_worker() + 2.0)
            return np.maximum(0.0, np.log((data.n_classes - 1) * acc / (1.0 - acc)))
        if isinstance(w, pd.Series):
            missing = pd.Index(data.worker_ids).difference(w.index)
            if len(missing):
                raise ValueError(f"weights lack {len(missing)} worker id(s) of the data, e.g. {missing[:5].tolist()}")
            w = w.reindex(data.worker_ids).to_numpy()
        w = np.asarray(w, dtype=float)
        if w.shape != (data.n_workers,):
            raise ValueError(f"weights must hold one value per worker ({data.n_workers}), got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite")
        if (w < 0).any():
            raise ValueError(f"weights must be non-negative, got {np.unique(w[w < 0])[:5].tolist()}")
        return w

    def _fit(self, data: CrowdData) -> None:
        w = self._resolve_weights(data)
        self.weights_ = w
        # NaN weights only for workers without answers, which never enter the bincount
        scores = np.bincount(data.task * data.n_classes + data.label, weights=np.nan_to_num(w)[data.worker],
                             minlength=data.n_tasks * data.n_classes).reshape(data.n_tasks, data.n_classes)
        self.scores_ = scores
        total = scores.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.probas_ = np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1.0 / data.n_classes)
        self.labels_, self.tied_ = break_ties(scores, self.tie_break, self.seed)
