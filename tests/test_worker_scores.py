"""Spammer score (closed form vs numeric minimisation) and trace score."""

import numpy as np
import pytest
from scipy.optimize import minimize

from crowd.aggregation.worker_scores import rank_workers, spammer_score, trace_score
from crowd.simulation.confusion import random_confusions


def _numeric_distance(pi: np.ndarray) -> float:
    """min_v ||pi - 1 v^T||_F^2 by a generic optimiser (no closed form used)."""
    K = pi.shape[0]
    objective = lambda v: float(np.sum((pi - np.outer(np.ones(K), v)) ** 2))  # noqa: E731
    res = minimize(objective, x0=np.full(K, 0.3), method="BFGS", options={"gtol": 1e-10})
    return res.fun


def test_closed_form_matches_numeric_minimisation_on_random_matrices():
    rng = np.random.default_rng(0)
    for K in (2, 3, 5, 8):
        pis = rng.dirichlet(np.ones(K), size=(4, K))
        raw = spammer_score(pis, scaled=False)
        numeric = np.array([_numeric_distance(p) for p in pis])
        np.testing.assert_allclose(raw, numeric, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(spammer_score(pis), raw / (K - 1))


def test_equals_raykar_yu_pairwise_form():
    rng = np.random.default_rng(1)
    K = 6
    pis = rng.dirichlet(np.ones(K), size=(10, K))
    pairwise = np.array([sum(np.sum((p[a] - p[b]) ** 2) for a in range(K) for b in range(a + 1, K)) / (K * (K - 1))
                         for p in pis])
    np.testing.assert_allclose(spammer_score(pis), pairwise)


def test_spammers_score_zero_perfect_and_adversarial_workers_score_one():
    rng = np.random.default_rng(2)
    for K in (2, 4, 10):
        v = rng.dirichlet(np.ones(K))
        assert spammer_score(np.outer(np.ones(K), v)) == pytest.approx(0.0, abs=1e-15)
        assert spammer_score(np.eye(K)) == pytest.approx(1.0)
        assert spammer_score(np.eye(K)[rng.permutation(K)]) == pytest.approx(1.0)
        # every row-stochastic matrix scores in [0, 1]
        scores = spammer_score(rng.dirichlet(np.full(K, 0.3), size=(200, K)))
        assert scores.min() >= 0 and scores.max() <= 1 + 1e-12
        assert trace_score(np.eye(K)) == pytest.approx(1.0)
        assert trace_score(np.full((K, K), 1 / K)) == pytest.approx(1 / K)


def test_scores_separate_simulated_spammers():
    conf = random_confusions(50, 4, diag_low=0.6, diag_high=0.95, spammer_share=0.3, seed=3)
    spam = np.abs(conf - conf[:, :1, :]).max(axis=(1, 2)) < 1e-12
    s = spammer_score(conf)
    np.testing.assert_allclose(s[spam], 0.0, atol=1e-12)
    assert s[~spam].min() > 0.2
    table = rank_workers(conf, worker_ids=[f"w{j}" for j in range(50)], n_answers=np.arange(50))
    assert list(table.columns) == ["worker", "spammer_score", "trace_score", "n_answers", "rank"]
    assert table["rank"].tolist() == list(range(1, 51))
    assert table["spammer_score"].is_monotonic_decreasing
    assert set(table["worker"].tail(spam.sum())) == {f"w{j}" for j in np.flatnonzero(spam)}
    by_trace = rank_workers(conf, by="trace")
    assert by_trace["trace_score"].is_monotonic_decreasing


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="square"):
        spammer_score(np.ones((3, 2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        trace_score(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="unknown ranking key"):
        rank_workers(np.eye(3)[None], by="accuracy")
    with pytest.raises(ValueError, match="worker_ids"):
        rank_workers(np.stack([np.eye(3)] * 2), worker_ids=["a"])
