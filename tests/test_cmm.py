"""CMM (Mena & Nanculef 2019): what the data identify is recovered, EM is monotone, seeds reproduce, bad input fails.

The CMM likelihood depends on (alpha, beta) only through the global confusion G = sum_m alpha_m beta_m
(eq. 4), so the tests check the recovery of f and G from the counts, and of each annotator's group
p(g | a) when identities are known (section 3.4); the split of G into groups is not identified
(test_group_split_is_not_identified_by_the_likelihood), which the docstring of crowd.learning.cmm states.
"""

import itertools

import numpy as np
import pytest
import torch

from crowd.data import CrowdData
from crowd.learning.cmm import CrowdMixture, cmm_log_likelihood

torch.set_num_threads(1)
K = 3
EXPERT = np.full((K, K), 0.05) + np.eye(K) * 0.85
ADVERSARY = np.roll(EXPERT, 1, axis=1)  # answers (z + 1) mod K 85% of the time


def js_rows(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (log base 2) averaged over the rows of two confusion matrices."""
    p, q = np.clip(p, 1e-7, 1), np.clip(q, 1e-7, 1)
    m = (p + q) / 2
    kl = lambda a, b: (a * np.log2(a / b)).sum(axis=-1)
    return float(np.mean(0.5 * kl(p, m) + 0.5 * kl(q, m)))


def two_group_crowd(n_tasks=1200, n_workers=60, per_task=5, seed=0):
    """Three well separated Gaussian classes; each annotator is an expert (p = 0.7) or an adversary;
    each (task, annotator) pair is labelled with probability per_task / n_workers (no task left empty)."""
    rng = np.random.default_rng(seed)
    z = rng.integers(K, size=n_tasks)
    X = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])[z] + rng.normal(scale=0.4, size=(n_tasks, 2))
    groups = np.stack([EXPERT, ADVERSARY])
    g = rng.choice(2, size=n_workers, p=[0.7, 0.3])
    mask = rng.random((n_tasks, n_workers)) < per_task / n_workers
    empty = np.flatnonzero(~mask.any(axis=1))
    mask[empty, rng.integers(n_workers, size=len(empty))] = True
    t, w = np.nonzero(mask)
    cdf = groups[g[w], z[t]].cumsum(axis=1)
    lab = (rng.random(len(t))[:, None] > cdf).sum(axis=1)
    data = CrowdData(t, w, lab, n_tasks, n_workers, K, gold=z, features=X.astype(np.float32))
    return data, groups, g


@pytest.fixture(scope="module")
def fitted():
    data, groups, g = two_group_crowd(900)
    model = CrowdMixture(2, n_restarts=2, standardize=True, seed=0, device="cpu").fit(data)
    return data, groups, g, model


def test_truth_and_global_confusion_are_recovered(fitted):
    data, groups, g, model = fitted
    assert (model.train_probas_.argmax(axis=1) == data.gold).mean() > 0.98
    # the normalised M-step targets t_i average the annotations' posteriors (not a joint task posterior)
    assert (model.posteriors_.argmax(axis=1) == data.gold).mean() > 0.9
    # the empirical global confusion of the crowd: row-normalised sum_i onehot(z_i)^T r_i
    r = data.vote_counts()
    true_global = np.eye(K)[data.gold].T @ r
    true_global = true_global / true_global.sum(axis=1, keepdims=True)
    # what the likelihood identifies is p(y | x) = f(x) G: a soft f trades off against a sharper G
    # (one epoch per M-step leaves f soft), so compare the implied label distribution per true class
    implied = np.eye(K)[data.gold].T @ (model.train_probas_ @ model.global_confusion_)
    implied /= implied.sum(axis=1, keepdims=True)
    assert js_rows(implied, true_global) < 0.01
    assert np.allclose(model.global_confusion_, np.einsum("m,mkj->kj", model.alphas_, model.betas_))


def test_global_confusion_is_recovered_with_the_true_classifier():
    data, _, _ = two_group_crowd(900, seed=4)
    r = data.vote_counts()
    true_global = np.eye(K)[data.gold].T @ r
    true_global = true_global / true_global.sum(axis=1, keepdims=True)
    model = CrowdMixture(2, n_restarts=1, classifier=np.eye(K)[data.gold], seed=0).fit(data)
    assert js_rows(model.global_confusion_, true_global) < 1e-3


def test_annotator_groups_and_p_g_are_recovered_with_identities(fitted):
    data, groups, g, model = fitted
    post = model.annotator_group_probas(data)
    assert post.shape == (data.n_workers, 2) and np.allclose(post.sum(axis=1), 1)
    # groups are found up to a relabelling
    best = max(itertools.permutations(range(2)), key=lambda perm: np.mean(post.argmax(1) == np.array(perm)[g]))
    assert np.mean(post.argmax(axis=1) == np.array(best)[g]) >= 0.95  # measured 1.0
    share = np.bincount(g[data.worker], minlength=2) / data.n_answers  # p(g) per annotation
    assert np.abs(model.alphas_[list(best)] - share).max() < 0.08  # measured 0.03
    # the expert group's matrix is close to the truth (its errors partly go to the other group)
    assert js_rows(model.betas_[best[0]], EXPERT) < 0.05
    conf = model.annotator_confusions(data)
    assert conf.shape == (data.n_workers, K, K) and np.allclose(conf.sum(axis=2), 1)
    i_js = np.mean([js_rows(conf[a], groups[g[a]]) for a in range(data.n_workers)])
    assert i_js < 0.15


def test_group_split_is_not_identified_by_the_likelihood(fitted):
    data, _, _, model = fitted
    r = data.vote_counts()
    ll = cmm_log_likelihood(r, model.train_probas_, model.alphas_, model.betas_)
    assert ll == pytest.approx(model.loglik_history_[-1], rel=1e-9)
    one_group = cmm_log_likelihood(r, model.train_probas_, np.ones(1), model.global_confusion_[None])
    assert one_group == pytest.approx(ll, rel=1e-12)


@pytest.mark.parametrize("prior_count", [0.0, 1.0])
@pytest.mark.parametrize("classifier", ["class_prior", "truth"])
def test_exact_em_is_monotone(prior_count, classifier):
    """With the network replaced by an exact M-step (class priors) or a fixed classifier, EM never
    decreases the log-likelihood (prior_count 0) or the log-posterior (Laplace prior)."""
    data, _, _ = two_group_crowd(600, 40, seed=1)
    clf = np.eye(K)[data.gold] * 0.9 + 0.1 / K if classifier == "truth" else classifier
    model = CrowdMixture(3, n_restarts=1, max_iter=40, tol=None, prior_count=prior_count,
                         classifier=clf, seed=0).fit(data)
    curve = np.array(model.objective_history_ if prior_count else model.loglik_history_)
    assert len(curve) == 40
    assert np.all(np.diff(curve) >= -1e-8 * np.abs(curve[:-1]))
    assert curve[-1] > curve[0]


def test_net_em_log_likelihood_rises(fitted):
    """One epoch per M-step is a generalised EM step only on average (mini-batch Adam), so the
    per-iteration curve may dip; what must hold: it ends far above where it started."""
    _, _, _, model = fitted
    ll = np.array(model.loglik_history_)
    assert ll[-1] > ll[0] + 0.1 * abs(ll[0])
    assert model.n_iter_ == len(ll) <= 50 and len(model.restarts_) == 2
    assert model.restarts_["loglik"].max() == pytest.approx(ll[-1])


def test_same_seed_same_fit_on_cpu_and_counts_equal_answers():
    data, _, _ = two_group_crowd(300, 20, seed=2)
    kwargs = dict(n_restarts=1, max_iter=5, standardize=True, device="cpu")
    a = CrowdMixture(2, seed=3, **kwargs).fit(data)
    b = CrowdMixture(2, seed=3, **kwargs).fit(data.vote_counts(), inputs=data.features)  # Global representation
    assert np.array_equal(a.betas_, b.betas_) and np.array_equal(a.alphas_, b.alphas_)
    assert np.array_equal(a.predict_proba(data.features), b.predict_proba(data.features))
    c = CrowdMixture(2, seed=4, **kwargs).fit(data)
    assert not np.array_equal(a.betas_, c.betas_)


def test_bad_input_is_refused_with_a_clear_error():
    data, _, _ = two_group_crowd(100, 10, seed=3)
    r = data.vote_counts()
    with pytest.raises(ValueError, match="no annotation"):
        CrowdMixture(2, n_restarts=1).fit(np.vstack([r, np.zeros((1, K))]), inputs=np.zeros((101, 2)))
    with pytest.raises(ValueError, match=">= 0"):
        CrowdMixture(2, n_restarts=1).fit(-r, inputs=data.features)
    with pytest.raises(ValueError, match="whole numbers"):
        CrowdMixture(2, n_restarts=1).fit(r / 2, inputs=data.features)
    with pytest.raises(ValueError, match="rows for 100 tasks"):
        CrowdMixture(2, n_restarts=1).fit(data, inputs=np.zeros((99, 2)))
    with pytest.raises(ValueError, match="no inputs"):
        CrowdMixture(2, n_restarts=1).fit(r)
    with pytest.raises(ValueError, match="worker identities"):
        CrowdMixture(2, n_restarts=1, init="annotators").fit(r, inputs=data.features)
    with pytest.raises(ValueError, match="n_groups"):
        CrowdMixture(0)
    with pytest.raises(ValueError, match="fixed classifier"):
        CrowdMixture(2, n_restarts=1, classifier=np.ones((5, K)) / K).fit(data)
    with pytest.raises(RuntimeError, match="not fitted"):
        CrowdMixture(2).predict_proba(data.features)
    model = CrowdMixture(2, n_restarts=1, max_iter=2, classifier="class_prior").fit(data)
    with pytest.raises(ValueError, match="fitted on 100"):
        model.annotator_group_probas(data.subset_tasks(np.arange(50)))
