"""Crowd Mixture Model (CMM; Mena & Nanculef, "Revisiting machine learning from crowds: a mixture
model for grouping annotations", CIARP 2019).

Model (paper, eq. 3): an annotation ``y`` of a pattern ``x`` comes from one of ``M`` groups,

    p(y = j | x) = sum_m sum_k alpha_m  f_k(x; theta)  beta^(m)[k, j],

with ``alpha_m = p(g = m)``, ``beta^(m)`` the group's confusion matrix (rows: true class) and
``f(x; theta) ~ p(z | x)`` a network. The data are the per-task label counts ``r_ij`` (the
*Global* representation: no annotator identity), ``ell = sum_ij r_ij log p(y = j | x_i)`` (eq. 4).

EM (section 3.3), written on the observed (task, label) pairs ``r_ij > 0`` only, so a fit costs
O(n_pairs * M * K) per iteration plus one epoch of the network, whatever the number of annotators:

* E-step, in log space: ``log q_ij(m, k) = log alpha_m + log f_k(x_i) + log beta^(m)[k, j] - log N_ij``;
* M-step: the network is trained ONE epoch (Adam, persistent across iterations) on the targets
  ``t_i = sum_j r_ij q_ij(., k)`` (eq. 7: normalised targets, each task weighted by ``T_i``);
  ``alpha_m ∝ sum_ij r_ij q_ij(m, .) + a`` and ``beta^(m)[k, j] ∝ sum_i r_ij q_ij(m, k) + a``
  (eq. 6 with the authors' Laplace prior ``a = prior_count = 1``).

What the paper leaves out, read from the authors' code (FMena14/MixtureofGroups, ``GroupMixtureOpt``):

* initialisation: soft MV ``v_i = r_i / T_i``; every annotation (task i, label j) is described by
  ``-log(eps) * v_i`` with entry ``j`` zeroed (their ``-v_i log(onehot_eps(j))``), projected by
  PCA(3), standardised and clustered by MiniBatchKMeans(M); ``q_ij(m, k) = 1{cluster(i, j) = m} v_ik``;
  EM then starts with the M-step.
* stopping: relative change of ``ell`` AND mean relative change of ``beta`` both <= 0.03, or 50
  iterations; 20 restarts (15 on CIFAR), the best log-likelihood kept.

Our choices, stated: the K-means points are the observed annotations (a pair weighted by its
count ``r_ij``; ``init_points="all_pairs"`` clusters all N x K pairs with weight 1, as the
authors' code); each restart reseeds K-means (theirs used ``random_state=0`` in every restart).

Identifiability (a property of the model, measured in tests/test_cmm.py): ``ell`` depends on
``alpha`` and ``beta`` only through the global confusion ``G = sum_m alpha_m beta^(m)`` (eq. 4), so
the data determine ``f`` and ``G`` but not how ``G`` splits into groups; once ``G`` fits, EM is
stationary at every split. The groups are therefore those of the initialisation: the authors'
annotation-level K-means clusters annotations by the majority class of their task and by
agreement with it, not by annotator behaviour. With annotator identities (Individual setting),
``init="annotators"`` clusters the annotators by their confusion against the majority vote and
starts each (task, label) pair from the groups of the annotators who gave it (our addition;
``init="annotations"``, the default, is the paper's).

Section 3.4 (group assignment), available when annotator identities are known (*Individual*):
``p(g = m | a) ∝ alpha_m prod_{(i, j) answered by a} sum_z f_z(x_i) beta^(m)[z, j]`` and the
annotator's confusion ``beta_a = sum_m p(g = m | a) beta^(m)``; the global confusion is
``sum_m alpha_m beta^(m)``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from crowd.data import CrowdData, as_crowd_data
from crowd.learning.crowd_nets import TINY, EMNetLearner

__all__ = ["CrowdMixture", "CMM", "cmm_kmeans_init", "annotator_kmeans_init", "cmm_log_likelihood"]


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, TINY))


def _as_counts(data: Any) -> tuple[np.ndarray, CrowdData | None]:
    """(N, K) integer label counts from a count array or from answers (CrowdData / DataFrame / json)."""
    if isinstance(data, np.ndarray) or (isinstance(data, (list, tuple)) and np.ndim(data) == 2):
        r = np.asarray(data)
        if r.ndim != 2 or r.shape[1] < 2:
            raise ValueError(f"label counts must be an (n_tasks, n_classes >= 2) array, got shape {r.shape}")
        if not np.issubdtype(r.dtype, np.number) or not np.all(np.isfinite(r)):
            raise TypeError("label counts must be finite numbers")
        if (r < 0).any():
            raise ValueError("label counts must be >= 0")
        if not np.all(r == np.round(r)):
            raise ValueError("label counts must be whole numbers (r_ij = number of annotations of class j for task i)")
        empty = np.flatnonzero(r.sum(axis=1) == 0)
        if empty.size:
            raise ValueError(f"{empty.size} task(s) have no annotation, e.g. rows {empty[:5].tolist()}; drop them")
        return r.astype(np.float64), None
    crowd = as_crowd_data(data)
    crowd.require_all_tasks_answered()
    return crowd.vote_counts().astype(np.float64), crowd


def cmm_log_likelihood(counts: Any, probas: Any, alphas: Any, betas: Any) -> float:
    """``ell = sum_ij r_ij log sum_{m,k} alpha_m f_k(x_i) beta^(m)[k, j]`` (eq. 4 without the multinomial constant).

    ``counts`` (N, K), ``probas`` = f(x_i) (N, K), ``alphas`` (M,), ``betas`` (M, K, K). Depends on
    (alphas, betas) only through ``G = sum_m alpha_m beta^(m)``."""
    counts, probas = np.asarray(counts, dtype=np.float64), np.asarray(probas, dtype=np.float64)
    G = np.einsum("m,mkj->kj", np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64))
    task, label = np.nonzero(counts)
    p_y = np.einsum("pk,pk->p", probas[task], G[:, label].T)
    return float(np.dot(counts[task, label], _log(p_y)))


def cmm_kmeans_init(counts: np.ndarray, pair_task: np.ndarray, pair_label: np.ndarray, pair_count: np.ndarray,
                    n_groups: int, seed: int, points: Literal["annotations", "all_pairs"] = "annotations") -> np.ndarray:
    """Initial group of each observed (task, label) pair by K-means on annotation features (see module docstring).

    Returns int codes (n_pairs,) in ``[0, n_groups)``.
    """
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    N, K = counts.shape
    eps = float(np.finfo(np.float32).eps)
    mv = np.clip(counts / counts.sum(axis=1, keepdims=True), eps, 1.0)
    if points == "annotations":
        task, label, weight = pair_task, pair_label, pair_count
    elif points == "all_pairs":
        task, label, weight = np.repeat(np.arange(N), K), np.tile(np.arange(K), N), np.ones(N * K)
    else:
        raise ValueError(f"init_points must be 'annotations' or 'all_pairs', got {points!r}")
    feats = -np.log(eps) * mv[task]
    feats[np.arange(len(task)), label] = 0.0
    if len(np.unique(feats, axis=0)) < n_groups:
        raise ValueError(f"only {len(np.unique(feats, axis=0))} distinct annotation profiles for {n_groups} groups; "
                         "use fewer groups")
    proj = PCA(n_components=min(3, K, len(feats)), random_state=seed).fit_transform(feats)
    proj = StandardScaler().fit_transform(proj)
    km = MiniBatchKMeans(n_clusters=n_groups, random_state=seed, init="k-means++", batch_size=128, n_init=3)
    km.fit(proj, sample_weight=weight)
    if points == "annotations":
        return km.labels_.astype(np.int64)
    return km.predict(proj[pair_task * K + pair_label]).astype(np.int64)


def annotator_kmeans_init(crowd: CrowdData, n_groups: int, seed: int) -> np.ndarray:
    """Initial group of each worker: K-means on the flattened confusion of the worker against the
    hard majority vote (Laplace-smoothed, rows normalised, standardised), as the authors'
    ``clusterize_annotators(cluster_type='flatten')`` of their later individual model. Returns (n_workers,) codes."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.preprocessing import StandardScaler

    K, W = crowd.n_classes, crowd.n_workers
    if W < n_groups:
        raise ValueError(f"{W} worker(s) for {n_groups} groups; use fewer groups")
    mv = crowd.vote_counts().argmax(axis=1)
    conf = np.bincount((crowd.worker * K + mv[crowd.task]) * K + crowd.label, minlength=W * K * K).reshape(W, K, K) + 1.0
    conf /= conf.sum(axis=2, keepdims=True)
    feats = StandardScaler().fit_transform(conf.reshape(W, K * K))
    km = MiniBatchKMeans(n_clusters=n_groups, random_state=seed, init="k-means++", batch_size=128, n_init=3)
    return km.fit(feats).labels_.astype(np.int64)


class CrowdMixture(EMNetLearner):
    """CMM: EM over M annotation groups with a network ``p(z | x)`` (see the module docstring).

    Parameters
    ----------
    n_groups : M (3 for Setup 1 and LabelMe, 4 for CIFAR-10).
    model, lr, batch_size, weight_decay, standardize, weight_init, seed, device, progress :
        the network and its training (:class:`~crowd.learning.crowd_nets.NetCrowdLearner`).
    n_restarts : EM runs from fresh networks, the best final log-likelihood kept (paper: 20; CIFAR 15).
    max_iter, tol : the stopping rule (50, 0.03); ``tol=None`` runs ``max_iter`` iterations.
    prior_count : Laplace pseudo-count added to the alpha and beta counts (1, the authors').
    classifier : ``"net"``, ``"class_prior"`` (``p(z | x) = rho``, exact M-step: an exact EM) or an
        (n_tasks, K) array of fixed ``p(z | x_i)`` (never trained); the last two isolate the crowd part (tests).
    init : ``"annotations"`` (the paper's annotation-level K-means) or ``"annotators"`` (needs worker
        identities: K-means over the annotators' confusions against the majority vote).
    init_points : ``"annotations"`` or ``"all_pairs"`` (the K-means points of ``init="annotations"``).

    ``fit(data, inputs=None, valid=None)``: ``data`` = answers (CrowdData, crowd-kit DataFrame,
    answers.json) or an (n_tasks, K) array of label counts r (Global representation); ``inputs``
    default to ``data.features``; ``valid = (inputs, labels)`` records the accuracy per iteration.

    Fitted attributes: ``alphas_`` (M,), ``betas_`` (M, K, K), ``global_confusion_`` (K, K),
    ``posteriors_`` (n_tasks, K, the normalised targets ``t_i``), ``train_probas_`` (f(x_i) on the
    training inputs), ``loglik_history_`` (ell after each E-step, up to the multinomial constant),
    ``objective_history_`` (ell + the Dirichlet log-prior: what EM increases when ``prior_count > 0``),
    ``n_iter_``, ``history_``, ``restarts_``, ``model_``, ``device_``.
    """

    def __init__(self, n_groups: int = 3, model: Any = None, *, init: Literal["annotations", "annotators"] = "annotations",
                 init_points: Literal["annotations", "all_pairs"] = "annotations", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if int(n_groups) < 1:
            raise ValueError(f"n_groups must be >= 1, got {n_groups}")
        if init not in ("annotations", "annotators"):
            raise ValueError(f"init must be 'annotations' or 'annotators', got {init!r}")
        self.init = init
        if init_points not in ("annotations", "all_pairs"):
            raise ValueError(f"init_points must be 'annotations' or 'all_pairs', got {init_points!r}")
        self.n_groups = int(n_groups)
        self.init_points = init_points

    # ------------------------------------------------------------------------ fit
    def fit(self, data: Any, inputs: Any = None, valid: Any = None) -> "CrowdMixture":
        counts, crowd = _as_counts(data)
        N, K = counts.shape
        if self.init == "annotators" and crowd is None:
            raise ValueError("init='annotators' needs answers with worker identities, not label counts")
        X = None
        if isinstance(self.classifier, str) and self.classifier == "net":
            X = crowd.features if (inputs is None and crowd is not None) else inputs
            if X is None:
                raise ValueError("no inputs: pass inputs= (one row per task) or give a CrowdData with features")
            from crowd.learning.crowd_nets import _as_input_array

            X = _as_input_array(X)
            if len(X) != N:
                raise ValueError(f"inputs has {len(X)} rows for {N} tasks")
            X = self._standardise_fit(X)
        else:
            self.input_mean_ = self.input_std_ = None
        pair_task, pair_label = np.nonzero(counts)
        pair_count = counts[pair_task, pair_label]
        n_pairs = len(pair_task)
        prep = {
            "counts": counts, "task": pair_task, "label": pair_label, "count": pair_count,
            # (N x P) and (K x P) one-hot maps: sums over the pairs of a task / of a label
            "by_task": sp.csr_matrix((np.ones(n_pairs), (pair_task, np.arange(n_pairs))), shape=(N, n_pairs)),
            "by_label": sp.csr_matrix((np.ones(n_pairs), (pair_label, np.arange(n_pairs))), shape=(K, n_pairs)),
        }
        if self.init == "annotators":
            # (P x n_answers) map from each answer to its (task, label) pair
            pair_of = np.full(N * K, -1, dtype=np.int64)
            pair_of[pair_task * K + pair_label] = np.arange(n_pairs)
            prep["crowd"] = crowd
            prep["answer_pair"] = pair_of[crowd.task * K + crowd.label]
        self.n_tasks_ = N
        self._run_em(prep, N, K, X, valid)
        return self

    def _init_state(self, prep: dict, rng: np.random.Generator) -> dict:
        counts = prep["counts"]
        seed = int(rng.integers(2**31 - 1))
        P, M = len(prep["task"]), self.n_groups
        share = np.zeros((P, M))  # initial p(g | pair)
        if self.init == "annotators":
            worker_group = annotator_kmeans_init(prep["crowd"], M, seed)
            share = np.bincount(prep["answer_pair"] * M + worker_group[prep["crowd"].worker],
                                minlength=P * M).reshape(P, M).astype(np.float64)
            share /= share.sum(axis=1, keepdims=True)
        else:
            groups = cmm_kmeans_init(counts, prep["task"], prep["label"], prep["count"], M, seed=seed,
                                     points=self.init_points)
            share[np.arange(P), groups] = 1.0
        mv = counts / counts.sum(axis=1, keepdims=True)
        q = share[:, :, None] * mv[prep["task"]][:, None, :]
        return {"prep": prep, "q": q}

    def _m_step(self, state: dict) -> tuple[np.ndarray, np.ndarray]:
        prep, q = state["prep"], state["q"]
        P, M, K = q.shape
        w = q * prep["count"][:, None, None]  # r_ij q_ij(m, k)
        targets = np.asarray(prep["by_task"] @ w.sum(axis=1))  # t_i = sum_j r_ij q_ij(., k), (N, K)
        alpha = w.sum(axis=(0, 2)) + self.prior_count
        state["alphas"] = alpha / alpha.sum()
        beta = np.asarray(prep["by_label"] @ w.reshape(P, M * K)).reshape(K, M, K).transpose(1, 2, 0)  # [m, k, j]
        beta = beta + self.prior_count
        totals = beta.sum(axis=2, keepdims=True)
        state["betas"] = np.where(totals > 0, beta / np.where(totals > 0, totals, 1.0), 1.0 / K)
        mass = targets.sum(axis=1)
        return targets / mass[:, None], mass

    def _e_step(self, state: dict, probas: np.ndarray) -> tuple[float, float]:
        prep = state["prep"]
        log_alpha, log_beta = _log(state["alphas"]), _log(state["betas"])
        log_q = (_log(probas)[prep["task"]][:, None, :] + log_alpha[None, :, None]
                 + log_beta.transpose(2, 0, 1)[prep["label"]])  # (P, M, K)
        flat = log_q.reshape(len(log_q), -1)
        top = flat.max(axis=1)
        np.exp(flat - top[:, None], out=flat)
        total = flat.sum(axis=1)
        flat /= total[:, None]
        state["q"] = flat.reshape(log_q.shape)
        loglik = float(np.dot(prep["count"], top + np.log(total)))
        log_prior = self.prior_count * (float(log_alpha.sum()) + float(log_beta.sum()))
        return loglik, log_prior

    def _params(self, state: dict) -> np.ndarray:
        return state["betas"]

    def _store(self, state: dict) -> None:
        prep, q = state["prep"], state["q"]
        self.alphas_ = state["alphas"]
        self.betas_ = state["betas"]
        self.global_confusion_ = np.einsum("m,mkj->kj", self.alphas_, self.betas_)
        t = np.asarray(prep["by_task"] @ (q * prep["count"][:, None, None]).sum(axis=1))
        self.posteriors_ = t / t.sum(axis=1, keepdims=True)
        self.pair_groups_ = q.sum(axis=2)  # p(g | x_i, y = j) of each observed (task, label) pair
        self.pairs_ = (prep["task"], prep["label"])

    # -------------------------------------------------------- section 3.4: groups of annotators
    def _task_probas(self, data: CrowdData, inputs: Any) -> np.ndarray:
        self._check_fitted()
        if inputs is not None:
            return self.predict_proba(inputs)
        if data.n_tasks != self.n_tasks_:
            raise ValueError(f"the answers cover {data.n_tasks} tasks, the model was fitted on {self.n_tasks_}; "
                             "pass inputs= for other tasks")
        return self.train_probas_

    def annotation_log_likelihoods(self, data: Any, inputs: Any = None) -> np.ndarray:
        """``log p_m(y | x_i) = log sum_z f_z(x_i) beta^(m)[z, y]`` of every answer, (n_answers, M)."""
        data = as_crowd_data(data)
        if data.n_classes != self.n_classes_:
            raise ValueError(f"the answers have {data.n_classes} classes, the model {self.n_classes_}")
        probas = self._task_probas(data, inputs)
        per_task = np.einsum("nk,mkj->njm", probas, self.betas_)  # (N, K_answered, M)
        return _log(per_task[data.task, data.label])

    def annotator_group_probas(self, data: Any, inputs: Any = None) -> np.ndarray:
        """``p(g | a)`` for every worker of ``data`` (n_workers, M): ``∝ alpha_m prod_answers p_m(y | x_i)``.

        ``data`` are answers with annotator identities on the training tasks (or on the tasks of
        ``inputs``). Cost O(n_answers * M * K); a worker without answers gets ``alpha``."""
        data = as_crowd_data(data)
        log_ann = self.annotation_log_likelihoods(data, inputs)
        M = self.n_groups
        log_post = np.empty((data.n_workers, M))
        for m in range(M):
            log_post[:, m] = np.bincount(data.worker, weights=log_ann[:, m], minlength=data.n_workers)
        log_post += _log(self.alphas_)[None, :]
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        return post / post.sum(axis=1, keepdims=True)

    def annotator_confusions(self, data: Any, inputs: Any = None) -> np.ndarray:
        """Each worker's confusion ``sum_m p(g = m | a) beta^(m)``, (n_workers, K, K)."""
        return np.einsum("wm,mkj->wkj", self.annotator_group_probas(data, inputs), self.betas_)

    def annotation_group_probas(self, data: Any, inputs: Any = None) -> np.ndarray:
        """``p(g | x_i, y)`` of every answer of ``data`` (n_answers, M) (section 3.4, first formula)."""
        log_ann = self.annotation_log_likelihoods(data, inputs) + _log(self.alphas_)[None, :]
        log_ann -= log_ann.max(axis=1, keepdims=True)
        post = np.exp(log_ann)
        return post / post.sum(axis=1, keepdims=True)


CMM = CrowdMixture
