"""Max-MIG: the KL MIG estimator, the authors' initialisation, the sparse aggregator, and a
simulated crowd with features where majority voting fails (a few experts, many biased spammers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crowd.data import CrowdData
from crowd.learning.maxmig import MaxMIG, MaxMIGNet, mig_kl_loss, mv_confusion_init
from crowd.simulation.confusion import simulate_answers

torch.set_num_threads(1)


def expert_spammer_crowd(seed: int = 0, n_tasks: int = 400, K: int = 4, d: int = 8, n_experts: int = 4,
                         n_spammers: int = 16):
    """Experts right 90% of the time; spammers answer their favourite label 80% of the time whatever
    the truth; 5 answers per task; Gaussian class clusters as features."""
    rng = np.random.default_rng(seed)
    conf = np.empty((n_experts + n_spammers, K, K))
    expert = np.full((K, K), 0.1 / (K - 1))
    np.fill_diagonal(expert, 0.9)
    conf[:n_experts] = expert
    for j in range(n_spammers):
        row = np.full(K, 0.2 / (K - 1))
        row[j % K] = 0.8
        conf[n_experts + j] = row[None, :]
    data = simulate_answers(conf, n_tasks, 5, seed=rng)
    means = rng.normal(size=(K, d)) * 1.2
    X = (means[data.gold] + rng.normal(size=(n_tasks, d))).astype(np.float32)
    return data, X


@pytest.fixture(scope="module")
def crowd():
    return expert_spammer_crowd()


@pytest.fixture(scope="module")
def fitted(crowd):
    data, X = crowd
    return MaxMIG("mlp", n_epochs=20, lr=1e-3, seed=3, device="cpu", progress=False).fit(data, X)


def test_beats_majority_vote(crowd, fitted):
    data, X = crowd
    mv = (data.vote_counts().argmax(1) == data.gold).mean()
    assert mv < 0.6  # the spammers outvote the experts
    classifier = (fitted.predict(X) == data.gold).mean()
    forecaster = (fitted.posteriors_.argmax(1) == data.gold).mean()
    assert classifier > mv + 0.25, (classifier, mv)
    assert forecaster > mv + 0.25, (forecaster, mv)


def test_aggregator_learns_who_to_trust(fitted):
    # the experts' confusions end up more diagonal than the spammers'
    diag = np.trace(fitted.confusions_, axis1=1, axis2=2) / fitted.n_classes_
    assert diag[:4].min() > diag[4:].max()


def test_api_and_fitted_attributes(crowd, fitted):
    data, X = crowd
    assert isinstance(fitted.model_, MaxMIGNet)
    proba = fitted.predict_proba(X)
    assert proba.shape == (data.n_tasks, data.n_classes)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert fitted.confusions_.shape == fitted.weights_.shape == (data.n_workers, data.n_classes, data.n_classes)
    np.testing.assert_allclose(fitted.confusions_.sum(2), 1.0, rtol=1e-5)
    np.testing.assert_allclose(fitted.priors_, 0.25)  # the code's fixed uniform prior
    for attr in ("posteriors_", "aggregator_posteriors_"):
        post = getattr(fitted, attr)
        assert post.shape == (data.n_tasks, data.n_classes)
        np.testing.assert_allclose(post.sum(1), 1.0, rtol=1e-5)
    assert list(fitted.history_["epoch"]) == list(range(1, 21))
    assert fitted.device_.type == "cpu" and fitted.n_workers_ == data.n_workers
    np.testing.assert_array_equal(fitted.predict(X), proba.argmax(1))


def test_deterministic_on_cpu_for_a_seed(crowd):
    data, X = crowd
    small = dict(n_epochs=2, lr=1e-3, device="cpu", progress=False)
    a = MaxMIG("mlp", seed=5, **small).fit_predict_proba(data, X)
    b = MaxMIG("mlp", seed=5, **small).fit_predict_proba(data, X)
    c = MaxMIG("mlp", seed=6, **small).fit_predict_proba(data, X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_mig_kl_loss_against_a_loop():
    g_ = torch.Generator().manual_seed(0)
    B, K = 5, 3
    h = torch.softmax(torch.randn(B, K, generator=g_), 1)
    g = torch.softmax(torch.randn(B, K, generator=g_), 1)
    p = torch.tensor([0.2, 0.3, 0.5])
    m = [[float(sum(h[i, k] * g[j, k] / p[k] for k in range(K))) for j in range(B)] for i in range(B)]
    mig = np.mean([1 + np.log(m[i][i]) for i in range(B)]) - np.mean([m[i][j] for i in range(B) for j in range(B) if i != j])
    assert float(mig_kl_loss(h, g, p)) == pytest.approx(-mig, rel=1e-5)
    # perfect agreement on K tasks of K different classes, uniform prior: MIG = 1 + log K
    eye = torch.eye(K)
    assert float(mig_kl_loss(eye, eye, torch.full((K,), 1 / K))) == pytest.approx(-(1 + np.log(K)), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 tasks"):
        mig_kl_loss(h[:1], g[:1], p)


def test_initialisation_equals_the_authors_loop():
    data, _ = expert_spammer_crowd(n_tasks=30)
    K = data.n_classes
    counts = data.vote_counts()
    T = np.zeros((data.n_workers, K, K))
    norm = np.zeros((data.n_workers, K))
    for t, w, l in zip(data.task, data.worker, data.label):  # appendix B.2, answer by answer
        share = counts[t] / counts[t].sum()
        T[w, :, l] += share
        norm[w] += share
    norm[norm == 0] = 1
    expected = np.log(T / norm[:, :, None] + 0.01)
    np.testing.assert_allclose(mv_confusion_init(data), expected, rtol=1e-12)


def test_sparse_aggregator_equals_dense_sum():
    data = CrowdData(task=np.array([0, 0, 1, 2, 2, 2]), worker=np.array([0, 1, 1, 0, 1, 2]),
                     label=np.array([1, 0, 2, 2, 2, 0]), n_tasks=3, n_workers=3, n_classes=3)
    W = torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(1))
    net = MaxMIGNet(torch.nn.Linear(2, 3), W)
    scores = net.aggregator_scores(3, torch.as_tensor(data.task), torch.as_tensor(data.worker),
                                   torch.as_tensor(data.label))
    expected = torch.full((3, 3), -np.log(3.0))
    for t, w, l in zip(data.task, data.worker, data.label):
        expected[t] += W[w, :, l]
    torch.testing.assert_close(scores, expected)


def test_learned_prior_and_aggregator_learning_rate(crowd):
    data, X = crowd
    est = MaxMIG("mlp", learn_prior=True, aggregator_lr=1e-2, n_epochs=2, lr=1e-3, device="cpu",
                 progress=False).fit(data, X)
    assert est.priors_.shape == (data.n_classes,) and not np.allclose(est.priors_, 0.25)
    assert est.priors_.sum() == pytest.approx(1.0, rel=1e-5)


def test_bad_input_gives_clear_errors(crowd):
    data, X = crowd
    est = MaxMIG("mlp", n_epochs=1, device="cpu", progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict(X)
    with pytest.raises(ValueError, match="rows for"):
        est.fit(data, X[:-1])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(data, bad)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        MaxMIG("mlp", batch_size=1, device="cpu", progress=False).fit(data, X)
    with pytest.raises(ValueError, match="init_smoothing"):
        MaxMIG("mlp", init_smoothing=0, device="cpu", progress=False).fit(data, X)
    with pytest.raises(ValueError, match="no features"):
        est.fit(data)
