"""WDS: weighted Dawid-Skene soft labels (Lefort et al., TMLR 2024, the WAUM paper).

Each vote for label ``l`` counts with the voter's estimated probability of answering
``l`` correctly, the diagonal entry ``pi_j[l, l]`` of his Dawid-Skene confusion matrix:

    s_il = sum_{j in A(x_i), y_i^(j) = l} pi_j[l, l],     WDS_i = s_i / sum_l s_il.

One ``np.bincount`` over the answers. With every diagonal equal this is the naive soft
label (vote shares). A task whose voters all have ``pi_j[l, l] = 0`` for the label they
gave has no trusted vote: its soft label is uniform (peerannot divides by zero there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowd.data import CrowdData
from crowd.aggregation.base import Aggregator, check_seed
from crowd.aggregation.majority_vote import TieBreak, break_ties, check_tie_break

__all__ = ["WDS"]


class WDS(Aggregator):
    """Weighted DS soft labels; see the module docstring.

    Parameters
    ----------
    confusions : (n_workers, K, K) confusion matrices (rows = true class) in the data's
        worker-code order; when None, :class:`~crowd.aggregation.dawid_skene.DawidSkene`
        is fitted first with ``ds_kwargs``.
    ds_kwargs : arguments of ``DawidSkene`` (its defaults when None; the WAUM paper's are
        ``crowd.experiments.settings.waum.DS_SETTINGS``, equal to those defaults except 50
        iterations on CIFAR-10H).
    tie_break, seed : how ``labels_`` breaks ties of the weighted scores.

    Fitted attributes: ``probas_`` (soft labels), ``labels_``, ``confusions_``, ``scores_``
    (unnormalised weighted votes) and ``ds_`` (the fitted DawidSkene, or None).
    """

    def __init__(self, confusions: np.ndarray | None = None, ds_kwargs: dict[str, Any] | None = None,
                 tie_break: TieBreak = "smallest", seed: int = 0) -> None:
        if ds_kwargs is not None and not isinstance(ds_kwargs, dict):
            raise ValueError(f"ds_kwargs must be a dict of DawidSkene arguments or None, got {ds_kwargs!r}")
        self.confusions = confusions
        self.ds_kwargs = ds_kwargs
        self.tie_break = check_tie_break(tie_break)
        self.seed = check_seed(seed)

    def _fit(self, data: CrowdData) -> None:
        if self.confusions is None:
            from crowd.aggregation.dawid_skene import DawidSkene  # fitted here only when no confusions are given

            self.ds_ = DawidSkene(**(self.ds_kwargs or {})).fit(data)
            confusions = self.ds_.confusions_
        else:
            self.ds_ = None
            confusions = np.asarray(self.confusions, dtype=float)
        K = data.n_classes
        if confusions.shape != (data.n_workers, K, K):
            raise ValueError(f"confusions must have shape (n_workers, K, K) = {(data.n_workers, K, K)}, "
                             f"got {confusions.shape}")
        if not np.all(np.isfinite(confusions)) or (confusions < 0).any():
            raise ValueError("confusions must be finite and non-negative")
        self.confusions_ = confusions
        diag = np.diagonal(confusions, axis1=1, axis2=2)  # (n_workers, K): pi_j[l, l]
        scores = np.bincount(data.task * K + data.label, weights=diag[data.worker, data.label],
                             minlength=data.n_tasks * K).reshape(data.n_tasks, K)
        self.scores_ = scores
        total = scores.sum(axis=1, keepdims=True)
        self.probas_ = np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1.0 / K)
        self.labels_, self.tied_ = break_ties(scores, self.tie_break, self.seed)
