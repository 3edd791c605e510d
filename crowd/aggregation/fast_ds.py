"""Fast Dawid-Skene (Sinha, Rao & Balasubramanian 2018, arXiv:1803.02781).

Dawid & Skene's EM with a *hard* E-step ("classification EM"): after computing the
posterior of each task's class, the task is assigned to its most probable class and
the next M-step counts answers against those one-hot assignments.

Model (Dawid & Skene 1979): task ``i`` has class ``z_i ~ rho``; worker ``j`` answers
``l`` with probability ``pi_j[z_i, l]``.

* M-step, with one-hot assignments ``T_il``:
  ``rho_l = (1/n) sum_i T_il`` and
  ``pi_j[l, k] = sum_i T_il 1{y_i^(j) = k} / sum_i T_il 1{j answered i}``.
* E-step: ``log p(z_i = l | answers) = log rho_l + sum_{j in A(i)} log pi_j[l, y_i^(j)] + c_i``;
  C-step: ``T_i = onehot(argmax_l)``, ties broken uniformly at random (seeded).
* Stop when ``sum_l |rho_l^(t) - rho_l^(t-1)| < tol`` (class marginals of two consecutive
  M-steps) or after ``n_iter`` iterations. MMLC (Han et al., AAAI 2025) uses ``tol = 1e-4``,
  100 iterations and a majority-vote start with ties at random: the preset
  ``crowd.experiments.settings.mmlc.AGGREGATORS["FDS"]``. The defaults here are neutral, those
  of the DS family (``n_iter=100``, ``tol=1e-5``, crowd-kit's values); as the marginals move by
  multiples of ``1/n_tasks``, both tolerances stop at the same iteration below 10 000 tasks.

Everything runs on the flat answer arrays: the M-step is one ``np.bincount`` over
(worker, class, label) triples, the E-step one ``np.add.at`` of per-answer log
probabilities, so an iteration costs O(n_answers * K + n_workers * K^2), in log space.

Differences from the authors' code (Sinha et al.'s, reused by MMLC): the E-step is
computed in log space (theirs multiplies probabilities, which underflows to spurious
all-zero ties on tasks with many answers) and sparse over the answers (theirs builds a
dense tasks x workers x classes count array).

No smoothing by default, as in the authors' code: a confusion row a worker never
used is all zero, so ``log pi = -inf`` rules that class out for the tasks he answered.
A task's current class always keeps a finite score (its own answers are counted in
that row), so the hard assignment is always defined. ``smoothing > 0`` adds a pseudo-count
to every cell of the confusion counts.
"""

from __future__ import annotations

import numpy as np

from crowd.data import CrowdData
from crowd.aggregation.base import Aggregator, check_int, check_nonnegative, check_seed, check_tol
from crowd.aggregation.majority_vote import MajorityVote, TieBreak, break_ties, check_tie_break

__all__ = ["FastDawidSkene"]


class FastDawidSkene(Aggregator):
    """Fast Dawid-Skene: DS with a hard (argmax) E-step; see the module docstring.

    Parameters
    ----------
    tol : stop when the L1 change of the class marginals between two M-steps is below it
        (``None`` or 0: run ``n_iter`` iterations).
    n_iter : at most this many (M-step, E-step) iterations.
    init_tie_break : tie rule of the majority vote that initialises the assignments
        ("random" as in the authors' code, or "smallest", ...).
    smoothing : pseudo-count added to each confusion count (0 = the authors' MLE).
    seed : seeds every random tie (initial MV and C-steps).

    Fitted attributes
    -----------------
    labels_ : hard assignments after the last C-step.
    probas_ : posteriors of the last E-step (before the C-step).
    confusions_ : (n_workers, K, K) confusion matrices of the last M-step, rows = true class.
    priors_ : class marginals of the last M-step.
    marginals_change_ : L1 change of the marginals at each iteration (NaN for the first).
    n_iter_, converged_ : iterations run and whether the tolerance was met.
    """

    def __init__(self, n_iter: int = 100, tol: float | None = 1e-5, init_tie_break: TieBreak = "random",
                 smoothing: float = 0.0, seed: int = 0) -> None:
        self.n_iter = check_int("n_iter", n_iter)
        self.tol = check_tol("tol", tol)
        self.init_tie_break = check_tie_break(init_tie_break)
        self.smoothing = check_nonnegative("smoothing", smoothing)
        self.seed = check_seed(seed)

    @staticmethod
    def m_step(data: CrowdData, assigned: np.ndarray, smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Class marginals (K,) and confusions (n_workers, K, K) from hard class assignments."""
        K = data.n_classes
        priors = np.bincount(assigned, minlength=K) / data.n_tasks
        counts = np.bincount((data.worker * K + assigned[data.task]) * K + data.label,
                             minlength=data.n_workers * K * K).reshape(data.n_workers, K, K).astype(float)
        counts += smoothing
        row = counts.sum(axis=2, keepdims=True)
        confusions = np.divide(counts, row, out=np.zeros_like(counts), where=row > 0)
        return priors, confusions

    @staticmethod
    def log_posterior(data: CrowdData, priors: np.ndarray, confusions: np.ndarray) -> np.ndarray:
        """Unnormalised log posterior (n_tasks, K): log rho_l + sum_j log pi_j[l, y_ij]."""
        with np.errstate(divide="ignore"):
            log_conf = np.log(confusions)
            log_prior = np.log(priors)
        loglik = np.zeros((data.n_tasks, data.n_classes))
        np.add.at(loglik, data.task, log_conf[data.worker, :, data.label])
        return loglik + log_prior[None, :]

    def _fit(self, data: CrowdData) -> None:
        rng = np.random.default_rng(self.seed)
        assigned = MajorityVote(self.init_tie_break, seed=rng).fit(data).labels_
        old_priors = None
        changes: list[float] = []
        self.converged_ = False
        tol = self.tol or 0.0
        for it in range(1, self.n_iter + 1):
            priors, confusions = self.m_step(data, assigned, self.smoothing)
            log_post = self.log_posterior(data, priors, confusions)
            assigned, _ = break_ties(log_post, "random", rng)
            change = np.nan if old_priors is None else float(np.abs(priors - old_priors).sum())
            changes.append(change)
            old_priors = priors
            if change < tol:  # NaN compares False: never stops at the first iteration
                self.converged_ = True
                break
        self.n_iter_ = it
        self.marginals_change_ = np.asarray(changes)
        self.priors_, self.confusions_ = priors, confusions
        self.labels_ = assigned
        shifted = log_post - log_post.max(axis=1, keepdims=True)
        post = np.exp(shifted)
        self.probas_ = post / post.sum(axis=1, keepdims=True)
