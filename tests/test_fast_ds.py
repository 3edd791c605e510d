"""FastDawidSkene: recovery on simulated crowds, the hard E-step, the marginal-based stopping rule."""

import numpy as np
import pytest

from crowd.aggregation.fast_ds import FastDawidSkene
from crowd.aggregation.majority_vote import MajorityVote
from crowd.data import CrowdData
from crowd.simulation.confusion import simulate_crowd


@pytest.fixture(scope="module")
def spammy():
    # 40% spammers (rank-one confusions), 5 answers per task
    return simulate_crowd(3000, 40, 4, 5, spammer_share=0.4, seed=21)


def test_beats_majority_vote_with_spammers(spammy):
    mv = MajorityVote(seed=0).fit(spammy).accuracy()
    fds = FastDawidSkene(seed=0).fit(spammy)
    assert fds.converged_
    assert fds.accuracy() > mv + 0.03


def test_recovers_worker_confusions_and_priors(spammy):
    fds = FastDawidSkene(seed=0).fit(spammy)
    true_conf = spammy.meta["confusions"]
    n = spammy.answers_per_worker()
    # workers with many answers: diagonal within a few points of the truth on average
    err = np.abs(np.diagonal(fds.confusions_, axis1=1, axis2=2) - np.diagonal(true_conf, axis1=1, axis2=2))
    assert err[n > 300].mean() < 0.06
    truth_share = np.bincount(spammy.gold, minlength=4) / spammy.n_tasks
    np.testing.assert_allclose(fds.priors_, truth_share, atol=0.03)
    np.testing.assert_allclose(fds.confusions_.sum(axis=2)[fds.confusions_.sum(axis=2) > 0], 1.0)


def test_hard_e_step_labels_are_argmax_of_reported_posterior(spammy):
    fds = FastDawidSkene(seed=1).fit(spammy)
    np.testing.assert_allclose(fds.probas_.sum(axis=1), 1.0)
    best = fds.probas_.max(axis=1)
    assert np.all(fds.probas_[np.arange(spammy.n_tasks), fds.labels_] >= best - 1e-9)


def test_m_step_counts_against_hard_assignments():
    # two workers, three tasks; assignments fixed by hand
    data = CrowdData([0, 0, 1, 1, 2], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0], 3, 2, 2)
    priors, conf = FastDawidSkene.m_step(data, np.array([0, 1, 0]))
    np.testing.assert_allclose(priors, [2 / 3, 1 / 3])
    np.testing.assert_allclose(conf[0], [[1.0, 0.0], [0.0, 1.0]])  # worker 0 said 0, 0 on class-0 tasks, 1 on class 1
    np.testing.assert_allclose(conf[1], [[0.0, 1.0], [0.0, 1.0]])  # worker 1 always said 1
    # the E-step in log space equals the product form of Dawid & Skene
    log_post = FastDawidSkene.log_posterior(data, priors, conf)
    with np.errstate(divide="ignore"):
        direct = np.log([[priors[c] * np.prod([conf[w, c, l] for t, w, l in zip(data.task, data.worker, data.label) if t == i])
                          for c in range(2)] for i in range(3)])
    np.testing.assert_allclose(log_post, direct)


def test_stops_on_class_marginals_and_respects_n_iter(spammy):
    fds = FastDawidSkene(tol=1e-4, seed=0).fit(spammy)
    changes = fds.marginals_change_
    assert len(changes) == fds.n_iter_ and np.isnan(changes[0])
    assert changes[-1] < 1e-4 and np.all(changes[1:-1] >= 1e-4)
    # with an unreachable tolerance it runs exactly n_iter iterations
    capped = FastDawidSkene(tol=0.0, n_iter=7, seed=0).fit(spammy)
    assert capped.n_iter_ == 7 and not capped.converged_
    one = FastDawidSkene(n_iter=1, seed=0).fit(spammy)
    assert one.n_iter_ == 1 and not one.converged_


def test_seeded_determinism_and_validation(spammy):
    a = FastDawidSkene(seed=5).fit(spammy).labels_
    b = FastDawidSkene(seed=5).fit(spammy).labels_
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_iter"):
        FastDawidSkene(n_iter=0)
    with pytest.raises(ValueError, match="tol"):
        FastDawidSkene(tol=-1.0)


def test_smoothing_keeps_every_class_possible():
    data = simulate_crowd(300, 10, 3, 3, seed=2)
    plain = FastDawidSkene(seed=0).fit(data)
    smooth = FastDawidSkene(smoothing=0.5, seed=0).fit(data)
    assert np.isfinite(np.log(smooth.confusions_)).all()
    assert (plain.confusions_ == 0).any()
    assert abs(smooth.accuracy() - plain.accuracy()) < 0.1
