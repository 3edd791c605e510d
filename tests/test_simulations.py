import numpy as np
import pytest
import torch

from crowd.experiments import runner
from crowd.experiments.settings import waum as presets
from crowd.simulation import waum_crowds as sim

torch.set_num_threads(1)
QUICK = presets.SimulationSettings(epochs=20, milestones=(10,), identification_epochs=5)


def test_three_circles_shapes_and_determinism():
    a, b = sim.three_circles(seed=3), sim.three_circles(seed=3)
    assert (a.n_tasks, a.n_workers, a.n_classes, a.n_answers) == (525, 3, 3, 1575)
    assert len(a.splits["test"]) == 225
    assert np.array_equal(a.label, b.label) and np.array_equal(a.features, b.features)
    assert not np.array_equal(a.label, sim.three_circles(seed=4).label)
    # the GBM is the best worker, near the paper's 0.84 test accuracy; the SVC stopped after one iteration is poor
    acc = dict(zip(a.meta["workers"], a.meta["worker_test_accuracy"]))
    assert acc["GBM"] > 0.75 and acc["GBM"] == max(acc.values()) and acc["SVC"] < 0.75
    x, y = sim.three_circles_points(600, noise=0.0, seed=0)
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), (y + 1) / 3, atol=1e-6)
    assert np.array_equal(np.bincount(y), [200, 200, 200])


def test_answers_are_the_workers_predictions():
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    workers = [("stump", DecisionTreeClassifier(max_depth=1, random_state=0)),
               ("flipped", DecisionTreeClassifier(max_depth=1, random_state=0))]
    data = sim.crowd_from_workers(x, y, x[:20], y[:20], workers, 2)
    for j, (_, clf) in enumerate(workers):
        rows = data.worker == j
        assert np.array_equal(data.label[rows], clf.predict(x[data.task[rows]]))
    assert data.n_answers == 160


def test_many_workers_answer_counts_and_classes():
    data = sim.many_workers(seed=1, n_workers=12, tasks_per_class=30)
    apt = data.answers_per_task()
    assert data.n_tasks == 120 and data.n_classes == 4
    assert np.array_equal(np.bincount(data.gold), [30, 30, 30, 30])
    assert apt.min() >= 1 and apt.max() <= 5 and set(np.unique(apt)) == {1, 2, 3, 4, 5}
    assert data.n_workers <= 12
    with pytest.raises(ValueError, match="answers_per_task"):
        sim.many_workers(seed=1, n_workers=3, tasks_per_class=5)


def test_random_workers_follow_appendix_grid():
    names = [n for n, _ in sim.random_workers(60, seed=0)]
    kinds = {n.split("(")[0] for n in names}
    assert kinds == {"LinearSVC", "SVC", "GBM"}


def test_only_the_expected_convergence_warning_is_silenced():
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.tree import DecisionTreeClassifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim.three_circles(seed=0)  # the SVC stopped after one iteration does not converge, on purpose
    assert caught == []

    class Noisy(DecisionTreeClassifier):
        def fit(self, x, y):
            warnings.warn("not converged", ConvergenceWarning)
            warnings.warn("something else", UserWarning)
            return super().fit(x, y)

    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim.crowd_from_workers(x, y, x, y, [("noisy", Noisy(max_depth=1))], 2)
    assert [w.category for w in caught] == [UserWarning]


def test_runner_prunes_and_learns_from_perfect_workers():
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    x = (centres[y] + rng.normal(0, 0.5, (300, 2))).astype(np.float32)
    workers = [(f"tree{j}", DecisionTreeClassifier(random_state=j)) for j in range(3)]  # fit the truth exactly
    data = sim.crowd_from_workers(x[:200], y[:200], x[200:], y[200:], workers, 3)
    setup = QUICK.setup(data)
    s = QUICK.strategies()
    methods = [runner.Method(s["MV"]), runner.Method(s["NS"]),
               runner.Method(s["WDS"], runner.with_alpha(presets.PRUNINGS["WAUM"], 0.1)),
               runner.Method(s["WDS"], runner.with_alpha(presets.PRUNINGS["AUMC"], 0.25))]
    assert [m.label for m in methods] == ["MV", "NS", "WDS + WAUM (alpha=0.1)", "WDS + AUMC (alpha=0.25)"]
    ident = runner.Identification(data, setup, seed=0)
    for m in methods:
        res = runner.run_method(data, m, setup, seed=0, identification=ident)
        assert res.metrics["accuracy"] > 0.95, m.label
        assert res.metrics["train_accuracy"] > 0.95 and 0 <= res.metrics["ece"] <= 1
        expected = 200 - int(np.ceil(m.pruning.alpha * 200)) if m.pruning.prunes else 200
        assert res.keep.sum() == expected
        assert np.isnan(res.targets[~res.keep]).all() and np.isfinite(res.targets[res.keep]).all()
    assert set(ident.waum) == set(ident.aumc) == {"yang"} and ident.worker_wise == {}


def test_run_on_one_crowd_or_a_new_crowd_per_seed():
    calls = []

    def make(seed):
        calls.append(seed)
        return sim.many_workers(seed=seed, n_workers=6, tasks_per_class=10)

    ns = [runner.Method(QUICK.strategies()["NS"])]
    fixed = runner.run(make(5), ns, QUICK.setup, seeds=[5, 6])
    assert calls == [5] and len(fixed.table) == 2 and len(fixed.workers) == 2 * 6
    calls.clear()
    resampled = runner.run(make, ns, QUICK.setup, seeds=[5, 6])
    assert calls == [5, 6] and list(resampled.table["seed"]) == [5, 6]
    assert list(resampled.workers["seed"].unique()) == [5, 6]
