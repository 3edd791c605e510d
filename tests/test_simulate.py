"""The crowd simulator: exact structure, seeded determinism, and answers that follow the confusions."""

import numpy as np
import pytest

from crowd.simulation.confusion import oracle_posterior, random_confusions, simulate_answers, simulate_crowd


def test_confusions_are_stochastic_with_requested_diagonal_and_spammers():
    conf = random_confusions(40, 4, diag_low=0.6, diag_high=0.9, spammer_share=0.25, seed=3)
    assert conf.shape == (40, 4, 4)
    np.testing.assert_allclose(conf.sum(axis=2), 1.0)
    rank_one = np.abs(conf - conf[:, :1, :]).max(axis=(1, 2)) < 1e-12
    assert rank_one.sum() == 10  # round(0.25 * 40) spammers, every row identical
    diag = np.diagonal(conf[~rank_one], axis1=1, axis2=2)
    assert diag.min() >= 0.6 and diag.max() <= 0.9


def test_answers_per_task_exact_and_no_duplicate_pairs():
    data = simulate_crowd(500, 30, 3, 7, seed=1)
    assert data.n_answers == 500 * 7
    assert np.all(data.answers_per_task() == 7)
    key = data.task * data.n_workers + data.worker
    assert len(np.unique(key)) == data.n_answers
    ranged = simulate_crowd(2000, 30, 3, (2, 5), seed=2)
    apt = ranged.answers_per_task()
    assert apt.min() == 2 and apt.max() == 5
    assert set(np.unique(apt)) == {2, 3, 4, 5}


def test_dense_crowd_everyone_answers_everything():
    data = simulate_crowd(100, 3, 3, 3, seed=0)
    assert data.n_answers == 300
    assert np.all(data.answers_per_worker() == 100)


def test_same_seed_same_crowd_other_seed_other_crowd():
    a = simulate_crowd(300, 20, 4, (1, 4), spammer_share=0.2, seed=7)
    b = simulate_crowd(300, 20, 4, (1, 4), spammer_share=0.2, seed=7)
    c = simulate_crowd(300, 20, 4, (1, 4), spammer_share=0.2, seed=8)
    for name in ("task", "worker", "label", "gold"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.meta["confusions"], b.meta["confusions"])
    assert not np.array_equal(a.label, c.label) or not np.array_equal(a.gold, c.gold)


def test_empirical_confusion_of_a_heavy_worker_matches_its_matrix():
    conf = random_confusions(5, 3, seed=4)
    # 5 workers answer all 40000 tasks: 40000 answers each
    data = simulate_answers(conf, 40_000, 5, priors=np.array([0.5, 0.3, 0.2]), seed=5)
    j = 2
    mine = data.worker == j
    counts = np.zeros((3, 3))
    np.add.at(counts, (data.gold[data.task[mine]], data.label[mine]), 1)
    empirical = counts / counts.sum(axis=1, keepdims=True)
    # binomial standard error <= sqrt(0.25 / 8000) ~ 0.0056 per cell (smallest class has ~8000 tasks)
    np.testing.assert_allclose(empirical, conf[j], atol=0.025)
    np.testing.assert_allclose(np.bincount(data.gold) / 40_000, [0.5, 0.3, 0.2], atol=0.01)


def test_oracle_posterior_is_normalised_and_beats_chance():
    data = simulate_crowd(2000, 50, 4, 5, spammer_share=0.2, seed=0)
    post = oracle_posterior(data)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    acc = np.mean(post.argmax(1) == data.gold)
    vote = data.vote_counts()
    mv_acc = np.mean(vote.argmax(1) == data.gold)
    assert acc > 0.8 and acc >= mv_acc - 0.005  # the Bayes rule is at least as good as majority vote


def test_bad_inputs_are_named():
    conf = random_confusions(3, 3, seed=0)
    with pytest.raises(ValueError, match="answers per task"):
        simulate_answers(conf, 10, 4, seed=0)
    with pytest.raises(ValueError, match="probability distribution"):
        simulate_answers(conf * 2, 10, 2, seed=0)
    with pytest.raises(ValueError, match="priors"):
        simulate_answers(conf, 10, 2, priors=np.array([0.5, 0.5]), seed=0)
