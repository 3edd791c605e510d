"""DL-EM: Raykar et al. (2010), "Learning from crowds" (JMLR 11), with a network as the classifier
(Albarqouni et al. 2016; the baseline "DL-EM" of Mena & Nanculef 2019).

Model: the truth of task i is ``z_i ~ f(x_i; theta)``; annotator ``a`` answers ``l`` with probability
``beta_a[z_i, l]`` (one K x K confusion per annotator, rows = true class), independently given ``z_i``.

EM on the flat answers (the sparse kernels of :mod:`crowd.aggregation._em`):

* E-step, in log space: ``log q_ik = log f_k(x_i) + sum_{answers (i, a, l)} log beta_a[k, l] - log Z_i``;
  the log-likelihood of the answers given the inputs is ``sum_i log Z_i``;
* M-step: the network is trained ONE epoch (Adam, persistent) on the soft targets ``q_i``;
  ``beta_a[k, l] ∝ sum_{answers (i, a, l)} q_ik + 1`` (the authors' Laplace prior, ``prior_count``).

Cost per iteration O(n_answers * K) plus ``n_workers * K^2`` for the confusions and one epoch of
the network: no tasks x annotators array is ever formed. The authors' implementation
(FMena14/MixtureofGroups ``RaykarMC``) held the answers as a dense one-hot (N, T, K) array and
ran out of 16 GB at T = 6000 (Table 2); this one runs at T = 100,000 in seconds of EM time.

Initialisation (the authors'): ``q`` = soft majority vote; EM starts with the M-step. Stopping:
relative change of the log-likelihood AND mean relative change of the confusions both <= 0.03,
or 50 iterations; 20 restarts, the best final log-likelihood kept (see
:class:`~crowd.learning.crowd_nets.EMNetLearner`).

With ``classifier="class_prior"`` (``p(z | x) = rho``, ``rho`` = mean of ``q``) the algorithm is
exactly Dawid & Skene (1979) with ``smoothing = prior_count`` (tests/test_raykar.py checks it
against :class:`crowd.aggregation.DawidSkene`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowd.aggregation._em import AnswerIndex, normalise_log_rows, soft_counts_numpy
from crowd.data import as_crowd_data
from crowd.learning.crowd_nets import TINY, EMNetLearner, _as_input_array

__all__ = ["RaykarEM", "DLEM"]


class RaykarEM(EMNetLearner):
    """DL-EM (Raykar et al. 2010 with a network): per-annotator confusions, EM (module docstring).

    Parameters: those of :class:`~crowd.learning.crowd_nets.EMNetLearner` (``model``, ``n_restarts``
    = 20, ``max_iter`` = 50, ``tol`` = 0.03, ``prior_count`` = 1, ``classifier`` = "net" |
    "class_prior" | fixed (n_tasks, K) probabilities, ``lr``, ``batch_size``, ``standardize``,
    ``seed``, ``device``...).

    ``fit(data, inputs=None, valid=None)``: ``data`` = answers with annotator identities (CrowdData,
    crowd-kit DataFrame, answers.json); ``inputs`` default to ``data.features``.

    Fitted attributes: ``confusions_`` (n_workers, K, K), ``global_confusion_`` (their mean, the
    notes' G-JS estimate), ``posteriors_`` (n_tasks, K), ``train_probas_``, ``loglik_history_``,
    ``objective_history_`` (log-likelihood + Dirichlet log-prior), ``n_iter_``, ``history_``,
    ``restarts_``, ``model_``, ``device_``.
    """

    def fit(self, data: Any, inputs: Any = None, valid: Any = None) -> "RaykarEM":
        crowd = as_crowd_data(data)
        crowd.require_all_tasks_answered()
        X = None
        if isinstance(self.classifier, str) and self.classifier == "net":
            X = crowd.features if inputs is None else inputs
            if X is None:
                raise ValueError("no inputs: pass inputs= (one row per task) or give a CrowdData with features")
            X = _as_input_array(X)
            if len(X) != crowd.n_tasks:
                raise ValueError(f"inputs has {len(X)} rows for {crowd.n_tasks} tasks")
            X = self._standardise_fit(X)
        else:
            self.input_mean_ = self.input_std_ = None
        votes = crowd.vote_counts().astype(np.float64)
        prep = {"index": AnswerIndex.from_data(crowd), "mv": votes / votes.sum(axis=1, keepdims=True),
                "n_workers": crowd.n_workers, "K": crowd.n_classes}
        self.n_tasks_ = crowd.n_tasks
        self._run_em(prep, crowd.n_tasks, crowd.n_classes, X, valid)
        return self

    def _init_state(self, prep: dict, rng: np.random.Generator) -> dict:
        return {"prep": prep, "q": prep["mv"].copy()}

    def _m_step(self, state: dict) -> tuple[np.ndarray, None]:
        counts = soft_counts_numpy(state["prep"]["index"], state["q"]) + self.prior_count  # (W, K, K)
        totals = counts.sum(axis=2, keepdims=True)
        K = counts.shape[-1]
        state["betas"] = np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), 1.0 / K)
        return state["q"], None

    def _e_step(self, state: dict, probas: np.ndarray) -> tuple[float, float]:
        index = state["prep"]["index"]
        W, K = index.n_workers, index.n_classes
        log_beta = np.log(np.maximum(state["betas"], TINY))
        table = np.ascontiguousarray(log_beta.transpose(0, 2, 1)).reshape(W * K, K)  # row (a, l) -> log beta_a[:, l]
        log_q = index.by_task @ table
        log_q += np.log(np.maximum(probas, TINY))
        state["q"], log_z = normalise_log_rows(log_q)
        return float(log_z.sum()), self.prior_count * float(log_beta.sum())

    def _params(self, state: dict) -> np.ndarray:
        return state["betas"]

    def _store(self, state: dict) -> None:
        self.confusions_ = state["betas"]
        self.global_confusion_ = self.confusions_.mean(axis=0)
        self.posteriors_ = state["q"]

    def annotator_confusions(self, data: Any = None, inputs: Any = None) -> np.ndarray:
        """The fitted per-annotator confusions (n_workers, K, K) (same API as CMM's)."""
        self._check_fitted()
        return self.confusions_


DLEM = RaykarEM
