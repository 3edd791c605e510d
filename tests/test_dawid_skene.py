"""Dawid-Skene: parameter recovery, EM monotonicity, invariances, numpy == torch, robustness,
agreement with crowd-kit, and MMLC Table 1's DS rows on the real data."""

import numpy as np
import pandas as pd
import pytest

from crowd.aggregation.dawid_skene import DawidSkene
from crowd.data import CrowdData
from crowd.simulation.confusion import oracle_posterior, random_confusions, simulate_answers, simulate_crowd


@pytest.fixture(scope="module")
def heavy_crowd():
    # 20 workers x ~3000 answers each: enough to estimate 4x4 matrices to a few points
    conf = random_confusions(20, 4, diag_low=0.55, diag_high=0.9, spammer_share=0.15, seed=11)
    return simulate_answers(conf, 12_000, 5, priors=np.array([0.4, 0.3, 0.2, 0.1]), seed=12)


def test_recovers_confusions_priors_and_reaches_oracle_accuracy(heavy_crowd):
    data = heavy_crowd
    ds = DawidSkene(n_iter=200, tol=1e-9).fit(data)
    true_conf = data.meta["confusions"]
    # each worker has ~3000 answers, >= ~300 per true class: cell standard error <= ~0.03
    assert np.abs(ds.confusions_ - true_conf).max() < 0.08
    assert np.abs(ds.confusions_ - true_conf).mean() < 0.015
    np.testing.assert_allclose(ds.priors_, [0.4, 0.3, 0.2, 0.1], atol=0.015)
    oracle_acc = np.mean(oracle_posterior(data).argmax(1) == data.gold)
    assert ds.accuracy() >= oracle_acc - 0.005
    assert ds.accuracy() > np.mean(data.vote_counts().argmax(1) == data.gold) + 0.01


@pytest.mark.parametrize("init", ["naive_soft", "mv", "diagonal"])
def test_log_likelihood_never_decreases(init):
    data = simulate_crowd(3000, 60, 5, (1, 6), spammer_share=0.3, seed=3)
    ds = DawidSkene(n_iter=60, tol=None, init=init).fit(data)
    ll = np.array(ds.loglik_history_)
    assert len(ll) == 60 and ds.n_iter_ == 60
    assert np.all(np.diff(ll) >= -1e-7 * np.abs(ll[1:]))
    assert np.all(np.isfinite(ds.probas_))
    np.testing.assert_allclose(ds.probas_.sum(1), 1.0)


def test_stops_on_tolerance():
    data = simulate_crowd(2000, 40, 3, 4, seed=4)
    ds = DawidSkene(n_iter=500, tol=1e-6).fit(data)
    assert ds.n_iter_ < 500
    ll = ds.loglik_history_
    assert abs(ll[-1] - ll[-2]) / data.n_answers < 1e-6
    assert abs(ll[-2] - ll[-3]) / data.n_answers >= 1e-6
    rel = DawidSkene(n_iter=500, tol=1e-6, stopping="relative").fit(data)
    assert abs(rel.loglik_history_[-1] - rel.loglik_history_[-2]) < 1e-6 * abs(rel.loglik_history_[-2])


def test_invariant_to_relabelling_tasks_and_workers():
    data = simulate_crowd(1500, 50, 4, (2, 5), spammer_share=0.2, seed=5)
    rng = np.random.default_rng(0)
    task_perm, worker_perm = rng.permutation(data.n_tasks), rng.permutation(data.n_workers)
    shuffled_rows = rng.permutation(data.n_answers)
    permuted = CrowdData(task_perm[data.task][shuffled_rows], worker_perm[data.worker][shuffled_rows],
                         data.label[shuffled_rows], data.n_tasks, data.n_workers, data.n_classes)
    a = DawidSkene(n_iter=30, tol=None).fit(data)
    b = DawidSkene(n_iter=30, tol=None).fit(permuted)
    np.testing.assert_allclose(b.probas_[task_perm], a.probas_, atol=1e-10)
    np.testing.assert_allclose(b.confusions_[worker_perm], a.confusions_, atol=1e-10)


@pytest.mark.parametrize("init", ["naive_soft", "diagonal"])
def test_torch_cpu_matches_numpy(init):
    pytest.importorskip("torch")
    data = simulate_crowd(2000, 80, 5, (1, 7), spammer_share=0.2, seed=6)
    a = DawidSkene(n_iter=25, tol=None, init=init).fit(data)
    b = DawidSkene(n_iter=25, tol=None, init=init, device="torch-cpu").fit(data)
    np.testing.assert_allclose(b.probas_, a.probas_, atol=1e-5)
    np.testing.assert_allclose(b.confusions_, a.confusions_, atol=1e-5)
    np.testing.assert_allclose(b.loglik_history_, a.loglik_history_, rtol=1e-8)
    assert b.backend_ == "torch" and a.backend_ == "numpy"


def test_device_auto_is_numpy_on_cpu_and_torch_cpu_forces_torch(monkeypatch):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a CUDA machine 'auto' is the torch path (checked by the agreement tests)")
    monkeypatch.delenv("CROWD_DEVICE", raising=False)
    data = simulate_crowd(200, 10, 3, 3, seed=8)
    assert DawidSkene().device == "auto" and DawidSkene().fit(data).backend_ == "numpy"
    assert DawidSkene(device="torch-cpu").fit(data).backend_ == "torch"
    monkeypatch.setenv("CROWD_DEVICE", "cpu")
    assert DawidSkene().fit(data).backend_ == "numpy"


def test_tasks_with_thousands_of_answers_do_not_underflow():
    # 2000 answers per task: a product of probabilities would be 0 (0.5**2000 ~ 1e-602)
    data = simulate_crowd(40, 2000, 3, 2000, diag_low=0.4, diag_high=0.6, seed=7)
    for device in ("cpu", "torch-cpu"):
        ds = DawidSkene(n_iter=10, tol=None, device=device).fit(data)
        assert np.all(np.isfinite(ds.probas_))
        np.testing.assert_allclose(ds.probas_.sum(1), 1.0)
        assert np.isfinite(ds.loglik_history_).all()
        assert ds.accuracy() == 1.0  # 2000 weak but informative votes are conclusive


def test_worker_who_never_saw_a_class_gets_no_nan():
    # worker 2 only answers tasks of class 0 (hard MV init puts no mass on class 1 for him)
    data = CrowdData([0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1, 1], 3, 3, 2)
    ds = DawidSkene(n_iter=5, tol=None, init="mv").fit(data)
    assert np.all(np.isfinite(ds.confusions_))
    # no mass on class 1: uniform over the labels worker 2 gave (only label 0), like row 0
    np.testing.assert_allclose(ds.confusions_[2], [[1.0, 0.0], [1.0, 0.0]])
    assert list(ds.labels_) == [0, 1, 1]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="init"):
        DawidSkene(init="random")
    with pytest.raises(ValueError, match="n_iter"):
        DawidSkene(n_iter=0)
    with pytest.raises(ValueError, match="no answer"):
        DawidSkene().fit(CrowdData([0, 0], [0, 1], [0, 1], 2, 2, 2))


# ------------------------------------------------------------------ real data
def _real(name):
    from crowd.data import datasets
    from crowd.data.registry import DataFileError

    try:
        return datasets.load(name, features=False if name == "text" else None) if name != "music" else datasets.load(name)
    except DataFileError as err:  # data mirror missing on this machine
        pytest.skip(f"{name} data not available: {err}")


@pytest.mark.parametrize("name", ["labelme", "music", "text"])
def test_agrees_with_crowdkit_on_real_data(name):
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    data = _real(name)
    n_iter = 20
    # crowd-kit: init = normalised vote counts, M-step first, then n_iter (E, M) rounds; tol=-inf runs them all
    ck = crowdkit.DawidSkene(n_iter=n_iter, tol=-np.inf)
    ck_probas = ck.fit_predict_proba(data.answers)
    ck_probas = ck_probas.reindex(index=data.task_ids, columns=data.classes, fill_value=0.0).to_numpy()
    ours = DawidSkene(n_iter=n_iter, tol=None, init="naive_soft", count_floor=1e-10).fit(data)
    # with crowd-kit's floor of 1e-10 on the soft counts the two agree to crowd-kit's own
    # in-place clipping of its posteriors at 1e-10
    np.testing.assert_allclose(ours.probas_, ck_probas, atol=1e-8)
    np.testing.assert_array_equal(ours.labels_, ck_probas.argmax(1))
    # exact maximum likelihood (no floor) is a different fixed point but the same method
    exact = DawidSkene(n_iter=n_iter, tol=None, init="naive_soft").fit(data)
    assert abs(exact.accuracy() - ours.accuracy()) < 0.03


# MMLC (Han et al. AAAI 2025) Table 1, DS: init diagonal 0.7, exactly 10 EM iterations,
# accuracy on the annotated items against gold. MMLC's LabelMe had 977 items; ours has 1000.
@pytest.mark.parametrize("name", ["labelme", "text", "music"])
def test_mmlc_table1_ds_rows(name):
    from crowd.experiments.settings.mmlc import aggregator_preset
    from crowd.reporting.report import paper_table

    paper = paper_table("mmlc_table1").set_index(["dataset", "method"]).loc[(name, "DS")]
    data = _real(name)
    ds = DawidSkene(**aggregator_preset("DS")).fit(data)
    assert ds.n_iter_ == 10
    assert abs(100 * ds.accuracy() - paper["value"]) <= paper["tolerance"]


def test_memory_is_linear_in_answers_not_tasks_times_workers():
    import tracemalloc

    from crowd.aggregation.glad import GLAD
    from crowd.aggregation.one_coin import OneCoinDawidSkene

    # 5000 tasks x 200000 workers: a dense tasks x workers float array would need 8 GB
    data = simulate_crowd(5000, 200_000, 3, 3, seed=8)
    budget = 200 * data.n_answers + 8 * data.n_workers * 9 * 6 + 8 * data.n_tasks * 3 * 10  # bytes, generous
    for model in (DawidSkene(n_iter=5, tol=None), OneCoinDawidSkene(n_iter=5, tol=None), GLAD(n_iter=5, tol=None)):
        assert data.answers_per_worker().min() == 0  # also checks workers without answers stay finite
        tracemalloc.start()
        model.fit(data)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < budget, (type(model).__name__, peak, budget)
        assert peak < 150e6
        for attr in ("probas_", "confusions_", "alphas_"):
            if hasattr(model, attr):
                assert np.all(np.isfinite(getattr(model, attr))), (type(model).__name__, attr)
