"""MMLC and MMLC-owf: recovery of the oracle on a simulated crowd, the centres, the estimator API, seeds."""

import numpy as np
import pytest
import torch

from crowd.aggregation import MajorityVote
from crowd.data import CrowdData
from crowd.learning.mmlc import MMLC, MMLCNet
from crowd.learning.oracle_worker import (CENTRES, OracleWorker, fit_truth_vector, kde_mode, label_shares,
                                          oracle_vector, weighted_median)

torch.set_num_threads(1)
K = 4
SMALL = dict(n_experts=4, expert_hidden=(16,), expert_dim=8, output_hidden=(16,), epochs=60, batch_size=64,
             lr=5e-3, seed=3, device="cpu", progress=False)


def oracle_crowd(n_tasks: int = 400, n_workers: int = 20, per_task: int = 3, seed: int = 0) -> CrowdData:
    """Four Gaussian classes in 6-d (the oracle's labels); each worker is a noisy copy of the oracle:
    with probability eps_j (0.25 to 0.55) he answers a uniformly random wrong class. Each task gets
    ``per_task`` answers from distinct random workers, so majority voting stays weak."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(K, size=n_tasks)
    centres = rng.normal(scale=3.0, size=(K, 6))
    X = (centres[truth] + rng.normal(size=(n_tasks, 6))).astype(np.float32)
    eps = rng.uniform(0.25, 0.55, size=n_workers)
    task = np.repeat(np.arange(n_tasks), per_task)
    worker = np.concatenate([rng.choice(n_workers, per_task, replace=False) for _ in range(n_tasks)])
    wrong = rng.random(len(task)) < eps[worker]
    shift = rng.integers(1, K, size=len(task))
    label = np.where(wrong, (truth[task] + shift) % K, truth[task])
    return CrowdData(task, worker, label, n_tasks, n_workers, K, gold=truth, features=X)


@pytest.fixture(scope="module")
def crowd():
    return oracle_crowd()


@pytest.fixture(scope="module")
def fitted(crowd):
    return MMLC(**SMALL).fit(crowd)


def test_kde_oracle_worker_recovers_the_oracle_and_beats_mv(crowd, fitted):
    mv = MajorityVote(tie_break="random", seed=0).fit(crowd).accuracy()
    owf = OracleWorker("kde", bandwidth=0.05).fit(fitted)
    assert mv < 0.85  # the crowd is hard for a feature-blind vote
    assert owf.accuracy() >= 0.9
    assert owf.accuracy() >= mv + 0.1
    # every centre gives an oracle close to the truth here; the truth-fitted vector bounds them
    truth = OracleWorker("truth").fit(fitted).accuracy()
    for method in CENTRES:
        acc = OracleWorker(method, bandwidth=0.05).fit(fitted).accuracy()
        assert acc >= 0.85, method
        assert acc <= truth + 0.02, method


def test_model_reproduces_its_workers(crowd, fitted):
    # a worker's predicted answers are right more often than his actual ones: his noise is random,
    # so the model mostly learns the oracle behind him
    pred = fitted.predict_answers(crowd.task, crowd.worker).argmax(1)
    worker_acc = np.mean(crowd.label == crowd.gold[crowd.task])
    assert np.mean(pred == crowd.gold[crowd.task]) >= worker_acc + 0.15
    assert fitted.history_.loss.iloc[-1] < fitted.history_.loss.iloc[0]


def test_estimator_api_and_shapes(crowd, fitted):
    assert fitted.fit(crowd) is fitted
    V = fitted.worker_embeddings()
    assert V.shape == (crowd.n_workers, 4)
    np.testing.assert_allclose(V.sum(1), 1.0, atol=1e-5)  # softmax gate
    X = crowd.features[:7]
    assert fitted.predict_proba(X).shape == (7, crowd.n_workers, K)
    assert fitted.predict_proba(X, worker=2).shape == (7, K)
    p = fitted.predict_proba(X, worker=V[2])
    np.testing.assert_allclose(p, fitted.predict_proba(X, worker=2), atol=1e-5)  # a code = its vector
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert fitted.predict(X, worker=V.mean(0)).shape == (7,)
    assert fitted.expert_outputs(X).shape == (7, 4, 8)
    for name in ("net_", "history_", "data_", "n_workers_", "n_classes_", "device_", "fit_seconds_"):
        assert hasattr(fitted, name)
    with pytest.raises(ValueError, match="length E"):
        fitted.predict_proba(X, worker=np.ones(3))
    with pytest.raises(ValueError, match="features"):
        fitted.predict_proba(np.ones((2, 5), np.float32), worker=0)
    with pytest.raises(ValueError, match="code"):
        fitted.predict_proba(X, worker=99)
    with pytest.raises(RuntimeError, match="not fitted"):
        MMLC().worker_embeddings()


def test_bad_inputs_are_refused(crowd):
    no_features = CrowdData(crowd.task, crowd.worker, crowd.label, crowd.n_tasks, crowd.n_workers, K)
    with pytest.raises(ValueError, match="features"):
        MMLC(**SMALL).fit(no_features)
    with pytest.raises(ValueError, match="rows"):
        MMLC(**SMALL).fit(crowd, inputs=crowd.features[:10])
    bad = crowd.features.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MMLC(**SMALL).fit(crowd, inputs=bad)
    with pytest.raises(ValueError, match="gate_activation"):
        MMLCNet(3, 2, 2, gate_activation="tanh")


def test_same_seed_same_model_on_cpu(crowd):
    params = {**SMALL, "epochs": 3}
    a = MMLC(**params).fit(crowd)
    b = MMLC(**params).fit(crowd)
    c = MMLC(**{**params, "seed": 4}).fit(crowd)
    np.testing.assert_array_equal(a.worker_embeddings(), b.worker_embeddings())
    np.testing.assert_array_equal(a.history_.loss.to_numpy(), b.history_.loss.to_numpy())
    assert not np.allclose(a.worker_embeddings(), c.worker_embeddings())


def test_experts_are_independent_dense_stacks():
    # the batched experts compute E separate MLPs: expert e only depends on its own weights
    net = MMLCNet(5, 3, 2, n_experts=3, expert_hidden=(4,), expert_dim=2, seed=0)
    x = torch.randn(6, 5)
    u = net.experts(x)
    W1 = net.expert_first.detach().reshape(5, 3, 4)
    b1 = net.expert_first_bias.detach().reshape(3, 4)
    for e in range(3):
        h = torch.relu(x @ W1[:, e] + b1[e])
        ref = torch.relu(h @ net.expert_weights[0][e].detach() + net.expert_biases[0][e].detach())
        torch.testing.assert_close(u[:, e], ref)


# ------------------------------------------------------------------ centres
def test_centres_on_known_points():
    V = np.array([[0.2, 0.8], [0.3, 0.7], [0.31, 0.69], [0.9, 0.1]])
    np.testing.assert_allclose(oracle_vector(V, "mean"), V.mean(0) / V.mean(0).sum())
    med = np.median(V, 0)
    np.testing.assert_allclose(oracle_vector(V, "median"), med / med.sum())
    # the densest region (0.3, 0.7) wins over the outlier with a small bandwidth
    kde = oracle_vector(V, "kde", bandwidth=0.05, grid_size=1001)
    assert abs(kde[0] - 0.3) < 0.03
    # weights: the outlier with most of the labels pulls the weighted centres
    w = np.array([0.05, 0.05, 0.05, 0.85])
    assert oracle_vector(V, "mean-w", weights=w)[0] > 0.7
    assert oracle_vector(V, "median-w", weights=w)[0] == pytest.approx(0.9)
    assert oracle_vector(V, "kde-w", weights=w, bandwidth=0.05, grid_size=1001)[0] == pytest.approx(0.9, abs=0.01)
    for m in CENTRES:
        assert oracle_vector(V, m, weights=w, bandwidth=0.05).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weights"):
        oracle_vector(V, "kde-w")
    with pytest.raises(ValueError, match="unknown centre"):
        oracle_vector(V, "mode")


def test_kde_mode_matches_direct_density_and_grid_rule():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    grid = np.linspace(x.min(), x.max(), 30)  # default grid: as many points as values (authors' code)
    dens = np.exp(-0.5 * ((grid[:, None] - x[None, :]) / 0.5) ** 2).sum(1)
    assert kde_mode(x, 0.5) == pytest.approx(grid[np.argmax(dens)])
    assert weighted_median(np.array([3.0, 1.0, 2.0]), np.ones(3)) == 2.0


def test_label_shares(crowd):
    s = label_shares(crowd)
    assert s.sum() == pytest.approx(1.0)
    assert s[3] == pytest.approx(np.mean(crowd.worker == 3))


def test_truth_vector_is_an_upper_bound_of_the_centres(crowd, fitted):
    v = fit_truth_vector(fitted, crowd.gold, steps=200)
    assert v.shape == (4,) and v.sum() == pytest.approx(1.0) and (v > 0).all()
    assert all(p.requires_grad for p in fitted.net_.parameters())  # the model is left trainable
