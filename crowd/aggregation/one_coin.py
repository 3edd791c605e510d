"""Constrained Dawid-Skene models: one-coin DS and homogeneous DS (HDS).

Both keep Dawid-Skene's EM (same E-step, see :mod:`.dawid_skene`) and constrain the
confusion matrices in the M-step; each M-step is the exact maximiser of the expected
complete log-likelihood under the constraint, so the log-likelihood never decreases.

* :class:`OneCoinDawidSkene` — one accuracy ``a_j`` per worker, errors uniform over the
  K - 1 other labels: ``pi_j[k, k] = a_j``, ``pi_j[k, l] = (1 - a_j)/(K - 1)``.
  M-step: ``a_j = sum_i T_{i, y_ij} / n_j`` (the expected share of right answers;
  the "one-coin" model of e.g. Zhang et al. 2014; crowd-kit's OneCoinDawidSkene).
* :class:`HomogeneousDawidSkene` — MMLC's HDS (Han et al., AAAI 2025, baseline of Table 1):
  one accuracy per worker and per true class, ``pi_j[k, k] = d_jk``, off-diagonals
  ``(1 - d_jk)/(K - 1)``. M-step: ``d_jk = sum_i T_ik 1{y_ij = k} / sum_i T_ik``.
  MMLC's setting (init diagonal 0.7, E-step first, stop when the relative change of the
  log-likelihood is below 1e-4, at most 20 iterations) is the preset
  ``crowd.experiments.settings.mmlc.AGGREGATORS["HDS"]``; the defaults here are the neutral ones
  of :class:`~.dawid_skene.DawidSkene` (naive-soft init, 100 iterations, tol 1e-6 per answer).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowd.aggregation.dawid_skene import ConfusionEM

__all__ = ["OneCoinDawidSkene", "HomogeneousDawidSkene"]


class OneCoinDawidSkene(ConfusionEM):
    """One-coin Dawid-Skene: one accuracy per worker, errors spread uniformly.

    Fitted: ``accuracies_`` (n_workers,) plus everything :class:`~.dawid_skene.DawidSkene` sets.
    ``smoothing`` adds pseudo-counts to right and wrong answers alike (Beta prior).
    """

    def _confusions_from_counts(self, xb: Any, counts: Any) -> Any:
        right = xb.diagonal(counts).sum(-1)
        total = counts.sum(-1).sum(-1)
        K = xb.K
        right = right + self.smoothing
        total = total + self.smoothing * K
        # a worker without answers (total = 0) gets the uninformative accuracy 1/K
        accuracy = right / (total + (total <= 0) * 1.0) * (total > 0) + (total <= 0) * (1.0 / K)
        return xb.from_diagonal(accuracy[:, None] * xb.asarray(np.ones((1, K))))

    def _fit(self, data: Any) -> None:
        super()._fit(data)
        self.accuracies_ = self.confusions_[:, 0, 0].copy()


class HomogeneousDawidSkene(ConfusionEM):
    """MMLC's HDS: per worker and per true class one accuracy, errors uniform (see module docstring).

    Rows of a class the worker never got weight on keep the initial diagonal (MMLC's code)
    with ``init="diagonal"``, else they are uniform.
    """

    def _confusions_from_counts(self, xb: Any, counts: Any) -> Any:
        K = xb.K
        right = xb.diagonal(counts) + self.smoothing
        total = counts.sum(-1) + self.smoothing * K
        fallback = self.init_diagonal if self.init == "diagonal" else 1.0 / K
        safe_total = total + (total <= 0) * 1.0  # rows without mass: filled below
        diag = right / safe_total
        diag = diag * (total > 0) + fallback * (total <= 0)
        return xb.from_diagonal(diag)
