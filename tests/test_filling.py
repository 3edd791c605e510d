"""Data filling (MMLC-df, G_MV, G_IRT): density, observed answers kept, thresholds, IRT recovery, seeds."""

import numpy as np
import pytest
import torch

from crowd.data import CrowdData
from crowd.learning.filling import (OneCoinIRT, append_answers, fill, filled_mask, g_irt_fill, g_mv_fill,
                                    missing_pairs, mmlc_fill)
from crowd.learning.mmlc import MMLC

torch.set_num_threads(1)


def sparse_crowd(n_tasks: int = 60, n_workers: int = 12, K: int = 3, seed: int = 0) -> CrowdData:
    """Workers with very different loads (1 to ~40 answers), features in 4-d."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(K, size=n_tasks)
    load = np.linspace(0.02, 0.7, n_workers)
    task, worker = np.nonzero(rng.random((n_tasks, n_workers)) < load[None, :])
    first = np.setdiff1d(np.arange(n_tasks), task)  # every task answered at least once
    task, worker = np.concatenate([task, first]), np.concatenate([worker, np.full(len(first), n_workers - 1)])
    label = np.where(rng.random(len(task)) < 0.7, truth[task], rng.integers(K, size=len(task)))
    X = (np.eye(K)[truth] @ rng.normal(size=(K, 4)) * 3 + rng.normal(size=(n_tasks, 4))).astype(np.float32)
    return CrowdData(task, worker, label, n_tasks, n_workers, K, gold=truth, features=X)


@pytest.fixture(scope="module")
def crowd():
    return sparse_crowd()


@pytest.fixture(scope="module")
def mmlc(crowd):
    return MMLC(n_experts=3, expert_hidden=(8,), expert_dim=4, output_hidden=(8,), epochs=5, batch_size=32,
                seed=0, device="cpu", progress=False).fit(crowd)


def observed_pairs_kept(original: CrowdData, filled: CrowdData) -> None:
    n = original.n_answers
    np.testing.assert_array_equal(filled.task[:n], original.task)
    np.testing.assert_array_equal(filled.worker[:n], original.worker)
    np.testing.assert_array_equal(filled.label[:n], original.label)
    assert filled.meta["n_observed"] == n
    mask = filled_mask(filled)
    assert mask.sum() == filled.n_answers - n and not mask[:n].any()


@pytest.mark.parametrize("method", ["mmlc", "g_mv", "g_irt", "constant"])
def test_threshold_zero_fills_everything_and_keeps_observed(crowd, mmlc, method):
    fillers = {
        "mmlc": lambda d, b: mmlc_fill(d, mmlc, b),
        "g_mv": lambda d, b: g_mv_fill(d, b, seed=1),
        "g_irt": lambda d, b: g_irt_fill(d, b, seed=1),
        "constant": lambda d, b: fill(d, lambda t, w: np.zeros(len(t), np.int64), b),
    }
    filled = fillers[method](crowd, 0)
    assert filled.density() == 1.0
    assert filled.n_answers == crowd.n_tasks * crowd.n_workers
    observed_pairs_kept(crowd, filled)
    # every (task, worker) pair exactly once (CrowdData refuses duplicates; count them anyway)
    keys = np.unique(filled.task * crowd.n_workers + filled.worker)
    assert len(keys) == filled.n_answers
    assert filled.gold is crowd.gold and filled.features is crowd.features


def test_threshold_fills_only_busy_workers(crowd):
    counts = crowd.answers_per_worker()
    b = int(np.median(counts))
    filled = g_mv_fill(crowd, b, seed=0)
    new = filled_mask(filled)
    busy = counts > b
    assert set(np.unique(filled.worker[new])) == set(np.flatnonzero(busy))
    per_worker = np.bincount(filled.worker, minlength=crowd.n_workers)
    assert (per_worker[busy] == crowd.n_tasks).all()
    assert (per_worker[~busy] == counts[~busy]).all()
    assert crowd.density() < filled.density() < 1.0
    # the density rises as the threshold falls
    dens = [g_mv_fill(crowd, t, seed=0).density() for t in (counts.max(), b, 0)]
    assert dens[0] == pytest.approx(crowd.density()) and dens[0] < dens[1] < dens[2] == 1.0


def test_missing_pairs_exact(crowd):
    t, w = missing_pairs(crowd, 0)
    dense = np.zeros((crowd.n_tasks, crowd.n_workers), bool)  # test-only reference on a tiny crowd
    dense[crowd.task, crowd.worker] = True
    ref_w, ref_t = np.nonzero(~dense.T)
    np.testing.assert_array_equal(t, ref_t)
    np.testing.assert_array_equal(w, ref_w)


def test_observed_answer_can_never_be_overwritten(crowd):
    with pytest.raises(ValueError, match="duplicated"):
        append_answers(crowd, crowd.task[:1], crowd.worker[:1], (crowd.label[:1] + 1) % 3, "bad")
    with pytest.raises(ValueError, match="outside"):
        fill(crowd, lambda t, w: np.full(len(t), 7), 0)
    with pytest.raises(ValueError, match="threshold"):
        missing_pairs(crowd, -1)


def test_filling_twice_keeps_the_first_observed_count(crowd):
    once = g_mv_fill(crowd, int(crowd.answers_per_worker().max()) - 1, seed=0)
    twice = g_mv_fill(once, 0, seed=0)
    assert twice.meta["n_observed"] == crowd.n_answers
    observed_pairs_kept(crowd, twice)


def test_mmlc_fill_uses_the_model_prediction(crowd, mmlc):
    filled = mmlc_fill(crowd, mmlc, 0)
    new = filled_mask(filled)
    expected = mmlc.predict_answers(filled.task[new], filled.worker[new]).argmax(1)
    np.testing.assert_array_equal(filled.label[new], expected)
    other = sparse_crowd(n_tasks=30)
    with pytest.raises(ValueError, match="fitted on"):
        mmlc_fill(other, mmlc, 0)


def test_g_mv_draws_from_the_vote_shares():
    # task 0: unanimous class 2; task 1: votes 1, 1, 0, 0 -> half and half
    task = np.array([0, 0, 1, 1, 1, 1])
    worker = np.array([0, 1, 0, 1, 2, 3])
    label = np.array([2, 2, 1, 1, 0, 0])
    base = CrowdData(task, worker, label, 2, 4, 3)
    draws = []
    for seed in range(20):
        f = g_mv_fill(base, 0, seed=seed)
        new = filled_mask(f)
        assert (f.label[new & (f.task == 0)] == 2).all()
        draws.append(f.label[new & (f.task == 1)])  # none here: task 1 is full
    assert all(len(d) == 0 for d in draws)
    # task 0: votes 1 and 0 (workers 0, 1); task 1 answered by all 400 workers, who are then active
    wide = CrowdData(np.r_[0, 0, np.ones(400, int)], np.r_[0, 1, np.arange(400)], np.r_[1, 0, np.full(400, 2)],
                     2, 400, 3)
    f = g_mv_fill(wide, 0, seed=0)
    new = filled_mask(f)
    assert new.sum() == 398
    share = np.mean(f.label[new] == 1)
    assert 0.42 < share < 0.58  # 398 draws from (1/2, 1/2)
    assert not (f.label[new] == 2).any()


def irt_crowd(n_tasks: int = 800, n_workers: int = 30, K: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    ability = rng.uniform(-1.0, 3.0, size=n_workers)
    difficulty = rng.normal(0.0, 0.5, size=n_tasks)
    truth = rng.integers(K, size=n_tasks)
    task, worker = np.nonzero(rng.random((n_tasks, n_workers)) < 0.3)
    right = rng.random(len(task)) < 1 / (1 + np.exp(-(ability[worker] - difficulty[task])))
    wrong = (truth[task] + rng.integers(1, K, size=len(task))) % K
    label = np.where(right, truth[task], wrong)
    return CrowdData(task, worker, label, n_tasks, n_workers, K, gold=truth), ability, difficulty


def test_irt_recovers_simulated_abilities():
    data, ability, difficulty = irt_crowd()
    irt = OneCoinIRT().fit(data)
    assert np.corrcoef(irt.ability_, ability)[0, 1] > 0.95
    assert np.corrcoef(irt.difficulty_, difficulty)[0, 1] > 0.3  # ~7 answers per task: noisy, but there
    assert np.abs(irt.ability_ - ability).mean() < 0.4
    assert irt.accuracy() > 0.95
    assert np.all(np.diff(irt.log_posterior_) > -1e-6 * np.abs(irt.log_posterior_[:-1]))  # EM never goes down


def test_g_irt_fill_matches_the_fitted_model():
    data, ability, _ = irt_crowd(n_tasks=300, n_workers=20)
    irt = OneCoinIRT().fit(data)
    filled = g_irt_fill(data, 0, seed=0, model=irt)
    new = filled_mask(filled)
    t, w, y = filled.task[new], filled.worker[new], filled.label[new]
    right = y == irt.labels_[t]
    expected = irt.answer_correct_proba(t, w)
    # per worker, the share of filled answers equal to the item's MAP class follows sigmoid(a - d)
    for j in range(data.n_workers):
        sel = w == j
        assert abs(right[sel].mean() - expected[sel].mean()) < 4 * np.sqrt(0.25 / sel.sum()) + 0.01
    # wrong answers are spread over the other classes
    assert len(np.unique(y[~right])) == data.n_classes


def test_fillings_are_seeded(crowd):
    a, b, c = (g_irt_fill(crowd, 0, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.label, c.label)
    np.testing.assert_array_equal(g_mv_fill(crowd, 0, seed=5).label, g_mv_fill(crowd, 0, seed=5).label)
