"""The one experiment runner: tidy output, determinism, the summary rule (one run -> std NaN),
the AUMC tie rule, pluggable end-to-end strategies, and method names that match the published tables."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from crowd.aggregation.majority_vote import MajorityVote
from crowd.data import CrowdData
from crowd.experiments import runner
from crowd.experiments.settings import waum as presets
from crowd.identification.scores import prune_mask
from crowd.reporting import report

torch.set_num_threads(1)
K = 3


def small_crowd(n_tasks: int = 90, seed: int = 0, answers: int = 3):
    """Three Gaussian classes, ``answers`` answers per task from 6 workers right 80% of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(K, size=n_tasks + 150)
    centres = np.array([[0.0, 3.0], [3.0, -1.5], [-3.0, -1.5]])
    x = (centres[truth] + rng.normal(scale=0.7, size=(len(truth), 2))).astype(np.float32)
    task = np.repeat(np.arange(n_tasks), answers)
    worker = np.concatenate([rng.choice(6, size=answers, replace=False) for _ in range(n_tasks)])
    right = rng.random(len(task)) < 0.8
    label = np.where(right, truth[task], rng.integers(K, size=len(task)))
    data = CrowdData(task, worker, label, n_tasks, 6, K, gold=truth[:n_tasks], features=x[:n_tasks], name="toy")
    return data, (x[n_tasks:], truth[n_tasks:])


def setup_for(test, epochs=4, ident_epochs=3, **kw):
    adam = dict(batch_size=32, optimizer="adam", lr=1e-2, weight_decay=0.0)
    return runner.ExperimentSetup("toy", lambda: nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, K)),
                                  train_kwargs=dict(epochs=epochs, **adam), ident_kwargs=dict(epochs=ident_epochs, **adam),
                                  test=test, alpha=0.1, ds_kwargs=dict(presets.DS_SETTINGS), progress=False, **kw)


@pytest.fixture(scope="module")
def toy():
    data, test = small_crowd()
    return data, setup_for(test)


def test_tidy_table_one_row_per_seed_and_method(toy):
    data, setup = toy
    s = presets.aggregation_strategies()
    methods = runner.grid([s["MV"], s["NS"]], [presets.PRUNINGS["none"], presets.PRUNINGS["WAUM"]])
    out = runner.run(data, methods, setup, seeds=[0, 1])
    table = out.table
    assert len(table) == 2 * 4
    assert list(table.columns) == ["dataset", "seed", "method", "strategy", "pruning", "alpha", "n_train_tasks",
                                   "accuracy", "top2_accuracy", "ece", "one_minus_ece", "train_accuracy"]
    assert table.groupby(["seed", "method"]).size().eq(1).all()
    assert list(table["method"][:4]) == ["MV", "NS", "MV + WAUM", "NS + WAUM"]  # pruning-major, as the papers' tables
    assert set(table.loc[table.pruning == "WAUM", "n_train_tasks"]) == {90 - 9}  # ceil(0.1 * 90)
    assert set(table.loc[table.pruning == "none", "alpha"]) == {0.0}
    assert table[["accuracy", "ece", "train_accuracy"]].apply(lambda c: c.between(0, 1)).all().all()
    np.testing.assert_allclose(table["one_minus_ece"], 1 - table["ece"])
    assert sorted(out.identifications) == [0, 1]
    # percent: the same numbers, accuracies times 100
    pct = runner.run(data, methods[:1], setup_for(setup.test, percent=True), seeds=[0]).table
    assert pct["accuracy"].iloc[0] == pytest.approx(100 * table["accuracy"].iloc[0])
    assert pct["ece"].iloc[0] == pytest.approx(table["ece"].iloc[0])


def test_seeds_give_identical_results_and_methods_do_not_interact(toy):
    data, setup = toy
    s = presets.aggregation_strategies()
    waum = runner.Method(s["WDS"], presets.PRUNINGS["WAUM"])
    aumc = runner.Method(s["DS"], presets.PRUNINGS["AUMC"])
    first = runner.run(data, [runner.Method(s["MV"]), aumc, waum], setup, seeds=[3]).table
    again = runner.run(data, [runner.Method(s["MV"]), aumc, waum], setup, seeds=[3]).table
    pd.testing.assert_frame_equal(first, again)
    # alone, in another order: the same rows (each model is seeded right before it is built)
    alone = runner.run(data, [waum, aumc], setup, seeds=[3]).table
    pd.testing.assert_frame_equal(alone.set_index("method").sort_index(),
                                  first[first.method != "MV"].set_index("method").sort_index())
    other = runner.run(data, [waum], setup, seeds=[4]).table
    assert other["accuracy"].iloc[0] != first.loc[first.method == "WDS + WAUM", "accuracy"].iloc[0] or \
        other["ece"].iloc[0] != first.loc[first.method == "WDS + WAUM", "ece"].iloc[0]


def test_summary_one_run_has_nan_std_and_several_runs_ddof_1():
    table = pd.DataFrame({"dataset": "d", "seed": [0, 1, 0], "method": ["A", "A", "B"],
                          "accuracy": [0.5, 0.7, 0.9], "ece": [0.1, 0.3, 0.2]})
    flat = runner.summarize(table, ["accuracy", "ece"], note="n")
    assert list(flat.columns) == ["dataset", "method", "metric", "value", "std", "n_runs", "note"]
    out = flat.set_index(["method", "metric"])
    assert out.loc[("A", "accuracy"), "value"] == pytest.approx(0.6)
    assert out.loc[("A", "accuracy"), "std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert np.isnan(out.loc[("B", "accuracy"), "std"]) and np.isnan(out.loc[("B", "ece"), "std"])
    assert out.loc[("B", "ece"), "n_runs"] == 1 and (out["note"] == "n").all()
    assert list(out.index.get_level_values("method")) == ["A", "A", "B", "B"]  # methods keep their order
    with pytest.raises(ValueError, match="none of the metrics"):
        runner.summarize(table, ["top5"])


def test_aumc_is_the_mv_strategys_label_with_random_ties(toy):
    data, setup = toy
    two, _ = small_crowd(n_tasks=200, seed=1, answers=2)  # two answers per task: many ties
    counts = two.vote_counts()
    tied = (counts == counts.max(1, keepdims=True)).sum(1) > 1
    assert tied.sum() > 20
    labels = {}
    for seed in (0, 1):
        ident = runner.Identification(two, setup_for(setup.test), seed)
        labels[seed] = ident.mv_labels
        # the AUMC network learns the MV strategy's own targets
        mv = presets.aggregation_strategies()["MV"].targets(two, seed)
        assert np.array_equal(ident.mv_labels, mv)
        assert np.array_equal(mv, MajorityVote(tie_break="random", seed=seed).fit(two).labels_)
        assert (counts[np.arange(200), mv] == counts.max(1)).all()
    # ties are broken at random, not towards the smallest label
    assert (labels[0][tied] != labels[1][tied]).any()
    assert (labels[0][tied] != np.argmax(counts[tied], axis=1)).any()


def test_pruning_threshold_and_scores_use_the_same_margin(toy):
    data, setup = toy
    ident = runner.identify(data, setup, seed=0, margins=("yang", "pleiss"), families=["aumc"])
    for margin in ("yang", "pleiss"):
        pruning = runner.Pruning(f"AUMC[{margin}]", "aumc", margin, alpha=0.2)
        keep = ident.keep_mask(pruning)
        assert np.array_equal(keep, prune_mask(ident.aumc[margin], 0.2))
        assert (~keep).sum() == 18
        assert ident.aumc[margin][~keep].max() <= ident.aumc[margin][keep].min()
    # a margin not recorded yet: the family is trained again, now recording it too
    top2 = ident.scores(runner.Pruning("AUMC[psi5]", "aumc", "yang_top2"))
    assert top2.shape == (90,) and set(ident.aumc) == {"yang", "pleiss", "yang_top2"}
    assert np.all(top2 >= ident.aumc["yang"] - 1e-12)  # p_y - p_[3] >= p_y - p_[2]


def test_ties_at_the_threshold_are_pruned_in_task_order():
    scores = np.array([0.5, 0.1, 0.3, 0.1, 0.1, 0.9, 0.1, 0.7])
    keep = prune_mask(scores, 0.25)  # ceil(0.25 * 8) = 2 of the four tied 0.1 scores
    assert np.flatnonzero(~keep).tolist() == [1, 3]


def test_end_to_end_strategies_plug_in_and_see_only_the_kept_answers(toy):
    data, setup = toy
    seen = {}

    class VoteShareLearner:  # stands for CMM, MMLC...: fit(data, features, valid), predict_proba(X)
        def __init__(self, seed):
            self.seed = seed

        def fit(self, crowd, features, valid=None):
            seen[self.seed] = (crowd.n_tasks, crowd.n_answers, len(features))
            self.centres_ = np.stack([features[crowd.vote_counts().argmax(1) == k].mean(0) for k in range(K)])
            return self

        def predict_proba(self, x):
            d = -((np.asarray(x)[:, None, :] - self.centres_[None]) ** 2).sum(-1)
            e = np.exp(d - d.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)

    strategy = runner.EndToEnd("centroids", lambda s, seed: VoteShareLearner(seed))
    out = runner.run(data, [runner.Method(strategy), runner.Method(strategy, presets.PRUNINGS["WAUM"])], setup, [0, 1])
    assert list(out.table["method"]) == ["centroids", "centroids + WAUM"] * 2
    assert seen[0][0] == 81 and seen[0][2] == 81 and seen[0][1] < data.n_answers
    assert (out.table["accuracy"] > 0.8).all()
    res = runner.run_method(data, runner.Method(strategy), setup, seed=0)
    assert res.targets is None and res.test_probas.shape == (150, K) and res.keep.all()


def test_clear_errors(toy):
    data, setup = toy
    s = presets.aggregation_strategies()
    with pytest.raises(ValueError, match="share the row name"):
        runner.run(data, [runner.Method(s["NS"]), runner.Method(s["NS"])], setup)
    with pytest.raises(ValueError, match="unknown score"):
        runner.Pruning("x", "oracle")
    with pytest.raises(ValueError, match="unknown margin"):
        runner.Pruning("x", "waum", "psi9")
    with pytest.raises(ValueError, match="alpha must be in"):
        runner.Pruning("x", "waum", alpha=1.5)
    with pytest.raises(ValueError, match="5 rows for 90 tasks"):
        runner.run(data, [runner.Method(s["NS"])], setup_for(setup.test, inputs=np.zeros((5, 2))))
    with pytest.raises(ValueError, match="unknown strategy name"):
        presets.strategies(["NS", "Oracle"])
    with pytest.raises(ValueError, match="mode must be"):
        presets.check_mode("fast")
    ident = runner.Identification(data, setup, seed=0)
    with pytest.raises(ValueError, match="computed for seed 0"):
        runner.run_method(data, runner.Method(s["NS"], presets.PRUNINGS["WAUM"]), setup, seed=1, identification=ident)


@pytest.mark.parametrize("table, methods", [
    ("waum_table1", presets.table1_methods), ("waum_table3", presets.table3_methods),
    ("waum_table4", presets.table4_methods)])
def test_simulation_presets_name_every_row_of_the_published_table(table, methods):
    published = list(dict.fromkeys(report.paper_table(table)["method"]))
    assert [m.label for m in methods(presets.SIMULATION["full"])] == published


@pytest.mark.parametrize("table, prunings", [("waum_table5", ["none", "AUMC", "WAUM"]),
                                             ("waum_table7", ["none", "WAUM(psi1)", "WAUM(psi5)"]),
                                             ("waum_table2", ["none", "AUMC", "WAUM"])])
def test_real_data_methods_name_the_published_rows(table, prunings):
    names = presets.strategies(None if table != "waum_table2" else ["MV", "NS", "DS", "GLAD", "WDS"])
    labels = {m.label for m in runner.grid(names, [presets.PRUNINGS[p] for p in prunings])}
    assert labels == set(report.paper_table(table)["method"])
