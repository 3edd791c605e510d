"""Dawid-Skene (1979): one confusion matrix per worker, fitted by EM.

Model (Dawid & Skene, *Applied Statistics* 28(1), 1979): task ``i`` has a true class
``z_i ~ Categorical(rho)``; worker ``j`` answers ``l`` with probability ``pi_j[z_i, l]``,
independently of the other workers given ``z_i``.

EM on the flat answers (cost O(n_answers * K) per iteration, see :mod:`._em`):

* E-step, in log space: ``log T_ik = log rho_k + sum_{answers (i, j, l)} log pi_j[k, l] - log Z_i``;
  the observed-data log-likelihood of the current parameters is ``sum_i log Z_i``.
* M-step: ``pi_j[k, l] ∝ sum_i T_ik 1{y_ij = l} (+ smoothing)``, rows normalised;
  ``rho_k = mean_i T_ik``.

Initialisations:

* ``"naive_soft"`` (normalised vote counts; crowd-kit's and peerannot's default, the WAUM
  setting) and ``"mv"`` (one-hot majority vote, ties to the smallest label): the M-step
  comes first.
* ``"diagonal"``: every worker starts with ``init_diagonal`` on the diagonal and
  ``(1 - d)/(K - 1)`` off it, uniform priors, E-step first (MMLC's setting: d = 0.7,
  exactly 10 iterations, ``tol=None``).

A row of ``pi_j`` with no mass (worker ``j`` got no weight on class ``k``) is set to the
uniform distribution over the labels worker ``j`` gave, or to the initial diagonal row with
``init="diagonal"`` (what the MMLC code does); zeros are floored at the smallest float
before the log, so no NaN appears.

Stopping: after the E-step of iteration ``t``, stop when
``|ll_t - ll_{t-1}| / n_answers < tol`` (``stopping="per_answer"``, the default: the
mean log-likelihood per answer, scale-free), ``|ll_t - ll_{t-1}| / |ll_{t-1}| < tol``
(``stopping="relative"``, MMLC's HDS rule) or ``ll_t - ll_{t-1} < tol``
(``stopping="absolute"``, crowd-kit's rule on its own loss). ``tol=None`` or ``0`` runs
exactly ``n_iter`` iterations.

Defaults are neutral, not a paper's: crowd-kit's ``n_iter=100`` and initialisation (normalised
vote counts), ``tol=1e-6`` per answer. The papers' settings are named presets:
:mod:`crowd.experiments.settings.mmlc` (MMLC) and :mod:`crowd.experiments.settings.waum` (WAUM).

Device: ``device="auto"`` (default) runs numpy on the CPU and torch on CUDA
(:func:`crowd.device.aggregator_device`); ``"torch-cpu"`` forces torch on the CPU.

One-class data (K = 1) needs no EM: every task gets that class with probability 1. peerannot's own criterion uses ``log(sum_i Z_i)`` (a bug: it is not the
log-likelihood); ours is the true marginal log-likelihood, which EM never decreases.

One iteration = one E-step then one M-step; ``probas_`` are the posteriors of the last
E-step, ``confusions_`` and ``priors_`` the parameters of the last M-step (crowd-kit's order).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from crowd.data import CrowdData
from crowd.aggregation._em import make_backend
from crowd.aggregation.base import Aggregator, check_choice, check_int, check_nonnegative, check_tol

__all__ = ["DawidSkene", "ConfusionEM"]

Init = Literal["naive_soft", "mv", "diagonal"]


def _initial_posteriors(data: CrowdData, init: str) -> np.ndarray:
    votes = data.vote_counts().astype(np.float64)
    if init == "naive_soft":
        return votes / votes.sum(axis=1, keepdims=True)
    if init == "mv":
        hard = np.zeros_like(votes)
        hard[np.arange(data.n_tasks), votes.argmax(axis=1)] = 1.0  # argmax: ties go to the smallest label
        return hard
    raise ValueError(f"unknown init {init!r}; use 'naive_soft', 'mv' or 'diagonal'")


class ConfusionEM(Aggregator):
    """EM for the Dawid-Skene family; subclasses choose how the M-step constrains ``pi_j``.

    Subclasses override :meth:`_confusions_from_counts` (soft counts (W, K, K) -> confusions).
    """

    def __init__(
        self,
        n_iter: int = 100,
        tol: float | None = 1e-6,
        init: Init = "naive_soft",
        init_diagonal: float = 0.7,
        smoothing: float = 0.0,
        count_floor: float = 0.0,
        stopping: Literal["per_answer", "relative", "absolute"] = "per_answer",
        device: Any = "auto",
        dtype: Any = None,
        progress: bool = False,
    ) -> None:
        self.n_iter = check_int("n_iter", n_iter)
        self.tol = check_tol("tol", tol)
        self.init = check_choice("init", init, ("naive_soft", "mv", "diagonal"))
        if isinstance(init_diagonal, bool) or not isinstance(init_diagonal, (int, float, np.number)) \
                or not 0.0 < init_diagonal < 1.0:
            raise ValueError(f"init_diagonal must be in (0, 1), got {init_diagonal!r}")
        self.init_diagonal = float(init_diagonal)
        self.smoothing = check_nonnegative("smoothing", smoothing)
        self.count_floor = check_nonnegative("count_floor", count_floor)
        self.stopping = check_choice("stopping", stopping, ("per_answer", "relative", "absolute"))
        self.device = device
        self.dtype = dtype
        self.progress = progress

    # the M-step's constraint on the confusion matrices
    def _confusions_from_counts(self, xb: Any, counts: Any) -> Any:
        raise NotImplementedError

    def _empty_row(self, xb: Any, seen: np.ndarray) -> Any:
        """Replacement for rows without mass, broadcastable to (W, K, K)."""
        K = xb.K
        if self.init == "diagonal":  # MMLC: back to the initial row
            row = np.full(K, (1.0 - self.init_diagonal) / (K - 1))
            return xb.asarray(np.where(np.eye(K, dtype=bool), self.init_diagonal, row[None, :]))
        # uniform over the labels the worker gave: the row says nothing about the truth, and a
        # label never given keeps probability 0 as in every other row of the ML estimate
        given = seen.sum(axis=1, keepdims=True)
        rows = np.where(given > 0, seen / np.maximum(given, 1), 1.0 / K)  # a worker with no answer: uniform
        return xb.asarray(rows[:, None, :])

    def _converged(self, ll: float, previous: float, n_answers: int) -> bool:
        if not self.tol:
            return False
        if self.stopping == "absolute":  # crowd-kit: the (signed) gain is below tol
            return ll - previous < self.tol
        change = abs(ll - previous)
        scale = n_answers if self.stopping == "per_answer" else max(abs(previous), np.finfo(float).tiny)
        return change / scale < self.tol

    def _fit_one_class(self, data: CrowdData) -> None:
        """K = 1: the only class, with probability 1 (no EM; the (1 - d)/(K - 1) rows do not exist)."""
        self.probas_ = np.ones((data.n_tasks, 1))
        self.confusions_ = np.ones((data.n_workers, 1, 1))
        self.priors_ = np.ones(1)
        self.loglik_history_ = [0.0]
        self.n_iter_ = 0
        self.backend_ = "none"

    def _fit(self, data: CrowdData) -> None:
        if data.n_classes == 1:
            self._fit_one_class(data)
            return
        xb = make_backend(data, self.device, self.dtype)
        K = data.n_classes
        seen = np.bincount(data.worker * K + data.label, minlength=data.n_workers * K).reshape(data.n_workers, K) > 0
        self._fallback_rows = self._empty_row(xb, seen)
        seen_mask = xb.asarray(seen[:, None, :].astype(np.float64)) if self.count_floor else None

        def m_step(posteriors: Any) -> tuple[Any, Any]:
            counts = xb.soft_counts(posteriors)
            if seen_mask is not None:  # crowd-kit's clip(lower=1e-10) on the (worker, given label) cells
                counts = counts + seen_mask * (self.count_floor - counts).clip(0)
            return self._confusions_from_counts(xb, counts), xb.mean_rows(posteriors)

        if self.init == "diagonal":
            diag = np.full((data.n_workers, K), self.init_diagonal)
            confusions = xb.from_diagonal(xb.asarray(diag))
            priors = xb.asarray(np.full(K, 1.0 / K))
        else:
            confusions, priors = m_step(xb.asarray(_initial_posteriors(data, self.init)))

        history: list[float] = []
        iterator = range(self.n_iter)
        if self.progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc=type(self).__name__)
        for _ in iterator:
            posteriors, ll = xb.e_step(xb.log(confusions), xb.log(priors))
            history.append(ll)
            confusions, priors = m_step(posteriors)
            if len(history) > 1 and self._converged(ll, history[-2], data.n_answers):
                break

        self.probas_ = xb.to_numpy(posteriors)
        self.confusions_ = xb.to_numpy(confusions)
        self.priors_ = xb.to_numpy(priors)
        self.loglik_history_ = history
        self.n_iter_ = len(history)
        self.backend_ = xb.name
        del self._fallback_rows


class DawidSkene(ConfusionEM):
    """Dawid & Skene (1979): a full K x K confusion matrix per worker (see the module docstring).

    Parameters
    ----------
    n_iter : maximum number of EM iterations (E-step + M-step).
    tol : stopping threshold on the log-likelihood change (see ``stopping``); None or 0 runs n_iter.
    init : "naive_soft" (crowd-kit's) | "mv" (M-step first) or "diagonal" (E-step first, MMLC).
    init_diagonal : diagonal of the initial confusions for init="diagonal".
    stopping : "per_answer" | "relative" | "absolute" (see the module docstring).
    smoothing : pseudo-count added to every cell of the soft counts before normalising
        (a Dirichlet(1 + smoothing) MAP estimate; 0 = maximum likelihood).
    count_floor : soft counts of the labels a worker gave are raised to at least this value
        before normalising (crowd-kit uses 1e-10); 0 = exact maximum likelihood.
    device : "auto" (numpy on the CPU, torch on CUDA), "cpu", "cuda", "torch-cpu" (torch on the CPU)
        or a torch.device (see :mod:`crowd.device`).
    dtype : torch dtype (float64 by default, so CPU torch matches numpy to 1e-10).

    Fitted attributes: ``probas_`` (n_tasks, K), ``labels_``, ``confusions_`` (n_workers, K, K),
    rows = true class; ``priors_`` (K,); ``loglik_history_`` (observed-data log-likelihood of
    the parameters entering each E-step, non-decreasing); ``n_iter_``.
    """

    def _confusions_from_counts(self, xb: Any, counts: Any) -> Any:
        if self.smoothing:
            counts = counts + self.smoothing
        return xb.normalise_rows(counts, self._fallback_rows)
