"""GLAD: recovery on data drawn from its own model, monotone EM, numpy == torch, robustness, crowd-kit."""

import numpy as np
import pytest
from scipy.special import expit

from crowd.aggregation.glad import GLAD
from crowd.data import CrowdData
from crowd.simulation.confusion import draw_distinct_workers


def simulate_glad(n_tasks, n_workers, K, per_task, alphas, log_betas, seed):
    """Answers drawn from GLAD's model: right w.p. sigma(alpha_j beta_i), else uniform over the others."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, n_tasks)
    task, worker = draw_distinct_workers(np.full(n_tasks, per_task), n_workers, rng)
    right = rng.random(len(task)) < expit(alphas[worker] * np.exp(log_betas[task]))
    wrong = (truth[task] + rng.integers(1, K, len(task))) % K
    label = np.where(right, truth[task], wrong)
    return CrowdData(task, worker, label, n_tasks, n_workers, K, gold=truth)


@pytest.fixture(scope="module")
def glad_crowd():
    rng = np.random.default_rng(0)
    alphas = rng.normal(1.0, 1.0, 40)
    log_betas = rng.normal(0.5, 0.5, 4000)
    return simulate_glad(4000, 40, 4, 6, alphas, log_betas, seed=1), alphas, log_betas


def test_recovers_abilities_and_beats_majority_vote(glad_crowd):
    data, alphas, _ = glad_crowd
    model = GLAD(n_iter=200, tol=1e-8).fit(data)
    # ~600 answers per worker: abilities recovered up to the prior's shrinkage
    assert np.corrcoef(model.alphas_, alphas)[0, 1] > 0.95
    assert np.abs(model.alphas_ - alphas).mean() < 0.3
    assert np.all(model.betas_ > 0)
    mv = np.mean(data.vote_counts().argmax(1) == data.gold)
    assert model.accuracy() > mv + 0.01


def test_map_objective_never_decreases(glad_crowd):
    data = glad_crowd[0]
    model = GLAD(n_iter=40, tol=None).fit(data)
    ll = np.array(model.loglik_history_)
    assert len(ll) == 40
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:]))


def test_torch_cpu_matches_numpy(glad_crowd):
    pytest.importorskip("torch")
    data = glad_crowd[0].subset_tasks(np.arange(1500))
    a = GLAD(n_iter=15, tol=None).fit(data)
    b = GLAD(n_iter=15, tol=None, device="torch-cpu").fit(data)
    np.testing.assert_allclose(b.probas_, a.probas_, atol=1e-5)
    np.testing.assert_allclose(b.alphas_, a.alphas_, atol=1e-5)
    np.testing.assert_allclose(b.betas_, a.betas_, rtol=1e-5)


def test_hundreds_of_answers_per_task_do_not_underflow():
    rng = np.random.default_rng(2)
    data = simulate_glad(30, 800, 5, 800, rng.normal(0.5, 0.3, 800), np.zeros(30), seed=3)
    for device in ("cpu", "torch-cpu"):
        model = GLAD(n_iter=10, tol=None, device=device).fit(data)
        assert np.all(np.isfinite(model.probas_))
        np.testing.assert_allclose(model.probas_.sum(1), 1.0)
        assert model.accuracy() == 1.0


def test_adversarial_worker_gets_negative_ability():
    rng = np.random.default_rng(4)
    alphas = np.r_[np.full(9, 2.0), -2.0]  # the last worker is mostly wrong on purpose
    data = simulate_glad(3000, 10, 3, 10, alphas, np.zeros(3000), seed=5)
    model = GLAD(n_iter=100).fit(data)
    assert model.alphas_[-1] < 0 < model.alphas_[:-1].min()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="variance"):
        GLAD(alpha_prior=(1.0, 0.0))
    data = CrowdData([0, 1], [0, 0], [0, 1], 2, 1, 2)
    with pytest.raises(ValueError, match="priors"):
        GLAD(priors=np.array([0.2, 0.2, 0.6])).fit(data)


def test_agrees_with_crowdkit_glad_on_labelme():
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    from crowd.data import datasets
    from crowd.data.registry import DataFileError

    try:
        data = datasets.load("labelme", features=None).subset_tasks(np.arange(400))  # crowd-kit's GLAD is slow
    except DataFileError as err:
        pytest.skip(f"LabelMe not available: {err}")
    # crowd-kit: alpha = b = 1 at start, N(1, 1) priors, uniform fixed class priors, E-step first,
    # M-step by scipy CG (<= 25 steps). Ours: same model and start, Fisher scoring M-step.
    ck = crowdkit.GLAD(n_iter=3, tol=-np.inf).fit(data.answers)
    ck_probas = ck.probas_.reindex(index=data.task_ids, columns=data.classes, fill_value=0.0).to_numpy()
    ours = GLAD(n_iter=3, tol=None, m_step_iter=25).fit(data)
    assert np.mean(ours.labels_ == ck_probas.argmax(1)) >= 0.995
    assert np.abs(ours.probas_ - ck_probas).max() < 0.02
    ck_alphas = ck.alphas_.reindex(data.worker_ids).to_numpy()
    assert np.corrcoef(ours.alphas_, ck_alphas)[0, 1] > 0.999
