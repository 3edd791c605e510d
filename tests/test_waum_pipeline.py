"""The WAUM experiments through the one runner: identification finds planted label errors, pruning
removes exactly the alpha share, every strategy of Tables 5-7 trains and is evaluated, summaries match
a direct computation; the real-data presets hold the paper's settings."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from crowd.data import CrowdData
from crowd.experiments import runner
from crowd.experiments.runner import ExperimentSetup, Method, grid, identify, run, summarize
from crowd.experiments.settings import waum as presets
from crowd.experiments.settings.waum import PRUNINGS
from crowd.learning.transforms import standardize

torch.set_num_threads(1)
K = 3
N_FLIPPED = 12


def planted_crowd(n_tasks: int = 150, seed: int = 0):
    """Three Gaussian classes; 3 answers per task from 5 workers right 90% of the time, except the
    first N_FLIPPED tasks, on which every worker answers the same wrong class (label errors)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(K, size=n_tasks)
    centres = np.array([[0.0, 3.0], [3.0, -1.5], [-3.0, -1.5]])
    X = (centres[truth] + rng.normal(scale=0.6, size=(n_tasks, 2))).astype(np.float32)
    tasks, workers, labels = [], [], []
    for t in range(n_tasks):
        for w in rng.choice(5, size=3, replace=False):
            if t < N_FLIPPED:
                lab = (truth[t] + 1) % K
            else:
                lab = truth[t] if rng.random() < 0.9 else rng.integers(K)
            tasks.append(t), workers.append(w), labels.append(lab)
    data = CrowdData(np.array(tasks), np.array(workers), np.array(labels), n_tasks, 5, K, gold=truth, features=X)
    test_truth = rng.integers(K, size=300)
    X_test = (centres[test_truth] + rng.normal(scale=0.6, size=(300, 2))).astype(np.float32)
    return data, X_test, test_truth


def small_net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, K))


def make_setup(X_test, y_test, alpha=N_FLIPPED / 150, epochs=15, ident_epochs=30):
    adam = dict(batch_size=32, optimizer="adam", lr=1e-2, weight_decay=0.0)
    return ExperimentSetup("toy", small_net, train_kwargs=dict(epochs=epochs, **adam), test=(X_test, y_test),
                           ident_kwargs=dict(epochs=ident_epochs, **adam), alpha=alpha,
                           ds_kwargs=dict(presets.DS_SETTINGS), progress=False, percent=True)


def aggregate(name, data, seed=0):
    return presets.aggregation_strategies()[name].targets(data, seed)


@pytest.fixture(scope="module")
def toy():
    data, X_test, y_test = planted_crowd()
    setup = make_setup(X_test, y_test)
    ident = identify(data, setup, seed=0, margins=("yang", "pleiss", "yang_top2"))
    return data, setup, ident


def test_identification_finds_the_planted_label_errors(toy):
    data, setup, ident = toy
    for pruning in ("AUMC", "WAUM", "WAUM(psi1)", "WAUM(psi5)"):
        keep = ident.keep_mask(PRUNINGS[pruning])
        assert (~keep).sum() == N_FLIPPED  # exactly ceil(alpha * n_tasks)
        assert (~keep[:N_FLIPPED]).sum() >= N_FLIPPED - 2, pruning
    # Pleiss margin: p_y - p_true < 0 on the flipped tasks, mostly positive elsewhere
    assert np.all(ident.waum["pleiss"][:N_FLIPPED] < 0)
    assert np.mean(ident.waum["pleiss"][N_FLIPPED:] > 0) > 0.9
    # Yang & Koyejo margin p_y - p_[2] is 0 when the wrong label is the runner-up: flipped tasks
    # sit at or below 0, far below the clean ones
    assert ident.waum["yang"][:N_FLIPPED].max() < 0.01 < np.median(ident.waum["yang"][N_FLIPPED:])
    assert ident.aum["yang"].shape == (data.n_answers,)
    assert np.all((ident.trust >= 0) & (ident.trust <= 1))


def test_pleiss_and_yang_margins_agree_when_the_label_is_on_top(toy):
    _, _, ident = toy
    # yang = p_y - p_[2], pleiss = p_y - max_{k != y} p_k: equal per step when y is the argmax,
    # and yang >= pleiss always, so the averages satisfy the same inequality
    assert np.all(ident.aum["yang"] >= ident.aum["pleiss"] - 1e-12)
    # the top-2 margin p_y - p_[3] is never below the top-1 margin
    assert np.all(ident.aum["yang_top2"] >= ident.aum["yang"] - 1e-12)


def test_every_strategy_and_pruning_of_tables_5_7_trains(toy):
    data, setup, ident = toy
    strategies = presets.strategies(["MV", "NS", "DS", "WDS", "CrowdLayer", "CoNAL(1e-4)"])
    prunings = [PRUNINGS[p] for p in ("none", "AUMC", "WAUM")]
    raw = pd.DataFrame([{"method": m.label, "pruning": m.pruning.name,
                         "n_train_tasks": int(r.keep.sum()), **r.metrics}
                        for m in grid(strategies, prunings)
                        for r in [runner.run_method(data, m, setup, seed=0, identification=ident)]])
    assert set(raw["method"]) == {f"{s}{'' if p == 'none' else ' + ' + p}" for s in ["MV", "NS", "DS", "WDS", "CrowdLayer",
                                  "CoNAL(1e-4)"] for p in ("none", "AUMC", "WAUM")}
    n_kept = raw.groupby("pruning")["n_train_tasks"].unique()
    assert n_kept["none"].tolist() == [150] and n_kept["WAUM"].tolist() == [150 - N_FLIPPED]
    acc = raw.set_index("method")["accuracy"]
    assert acc.between(0, 100).all()
    # the classes are well separated: every strategy learns them (accuracy in percent)
    assert (acc > 85).all(), acc.sort_values().head()
    np.testing.assert_allclose(raw["one_minus_ece"], 1 - raw["ece"])
    assert raw["top2_accuracy"].between(acc.min() - 1e-9, 100).all()


def test_aggregate_targets():
    data, _, _ = planted_crowd(60)
    mv = aggregate("MV", data)
    assert mv.dtype == np.int64 and mv.shape == (60,)
    ns = aggregate("NS", data)
    np.testing.assert_allclose(ns, data.vote_counts() / data.vote_counts().sum(1, keepdims=True))
    for name in ("DS", "WDS"):
        soft = aggregate(name, data)
        assert soft.shape == (60, K)
        np.testing.assert_allclose(soft.sum(1), 1.0)
    # re-aggregation happens on the pruned data: targets follow the kept tasks
    sub = data.subset_tasks(np.arange(10, 60))
    assert aggregate("WDS", sub).shape == (50, K)
    with pytest.raises(ValueError, match="unknown strategy name"):
        presets.strategies(["Bogus"])


def test_run_is_reproducible_and_summarize_matches_groupby():
    data, X_test, y_test = planted_crowd(90)
    setup = make_setup(X_test, y_test, alpha=0.1, epochs=4, ident_epochs=4)
    methods = grid(presets.strategies(["NS"]), [PRUNINGS["none"], PRUNINGS["WAUM"]])
    out = run(data, methods, setup, seeds=[0, 1])
    raw = out.table
    again = run(data, methods, setup, seeds=[0]).table
    pd.testing.assert_frame_equal(raw[raw.seed == 0].reset_index(drop=True), again)
    assert sorted(out.identifications) == [0, 1]
    table = summarize(raw, note="toy")
    acc = raw[raw.method == "NS + WAUM"]["accuracy"]
    row = table[(table.method == "NS + WAUM") & (table.metric == "accuracy")].iloc[0]
    assert row["value"] == pytest.approx(acc.mean())
    assert row["std"] == pytest.approx(acc.std(ddof=1))
    assert row["n_runs"] == 2 and row["note"] == "toy"
    assert list(table.columns) == ["dataset", "method", "metric", "value", "std", "n_runs", "note"]


def test_clear_errors():
    data, X_test, y_test = planted_crowd(30)
    with pytest.raises(ValueError, match="unknown margin"):
        runner.Pruning("WAUM(psi9)", "waum", "psi9")
    bad = ExperimentSetup("toy", small_net, train_kwargs={"epochs": 1}, test=(X_test, y_test), inputs=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="5 rows for 30 tasks"):
        run(data, [Method(presets.strategies(["NS"])[0])], bad)
    no_epochs = ExperimentSetup("toy", small_net, train_kwargs={"lr": 0.1}, test=(X_test, y_test))
    with pytest.raises(ValueError, match="need 'epochs'"):
        run(data, [Method(presets.strategies(["NS"])[0])], no_epochs)
    assert set(PRUNINGS) == {"none", "AUMC", "WAUM", "WAUM(psi1)", "WAUM(psi5)"}
    assert {(p.score, p.margin) for p in PRUNINGS.values() if p.prunes} == {
        ("aumc", "yang"), ("waum", "yang"), ("waum", "pleiss"), ("waum", "yang_top2")}


def test_standardize_uses_training_statistics():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 3, size=(50, 4)), rng.normal(5, 3, size=(20, 4))
    a_s, b_s = standardize(a, b)
    np.testing.assert_allclose(a_s.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a_s.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(b_s, (b - a.mean(0)) / a.std(0), rtol=1e-5)


def test_cifar10h_raw_zip_code_path(tmp_path, monkeypatch):
    """The full-mode path (per-annotator cifar10h-raw.zip) on a small zip built from the real
    answers of tasks 9500..9999 in the raw csv format, tasks 9500..9749 moved to 0..249 so that
    both the training (< 9500) and validation (>= 9500) parts are exercised."""
    import json
    import zipfile

    from crowd.data import datasets
    from crowd.data.registry import fetch
    from crowd.data.cifar10 import cifar10h_full_requirements
    from crowd.experiments.settings.waum import cifar10h_experiment

    answers = json.loads(fetch("tanglef+computo_2023/datasets/cifar10H/answers_valid.json").read_text())
    gold = np.load(fetch("jcpeterson+cifar10-human-experiments/confusion_matrices/test_set_cifar_labels.npy"))
    rows = []
    for task, votes in answers.items():
        idx = int(task) - 9500 if int(task) < 9750 else int(task)
        for worker, label in votes.items():
            rows.append({"annotator_id": int(worker), "chosen_label": int(label), "true_label": int(gold[int(task)]),
                         "cifar10_test_test_idx": idx, "is_attn_check": 0, "reaction_time": 1000.0})
    for worker in range(5):  # attention checks: no image index, must be dropped
        rows.append({"annotator_id": worker, "chosen_label": 3, "true_label": 3, "cifar10_test_test_idx": -99999,
                     "is_attn_check": 1, "reaction_time": 500.0})
    raw = pd.DataFrame(rows)
    target = tmp_path / "jcpeterson+cifar-10h" / "data" / "cifar10h-raw.zip"
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr("cifar10h-raw.csv", raw.to_csv(index=False))
    monkeypatch.setenv("CROWD_CACHE_DIR", str(tmp_path))
    assert next(iter(cifar10h_full_requirements().values())) is True

    data = datasets.load_cifar10h(raw=True)
    kept = raw[raw["is_attn_check"] == 0]
    assert data.n_answers == len(kept) == sum(len(v) for v in answers.values())
    assert data.n_tasks == 10000
    exp, crowd = cifar10h_experiment(data, "smoke", seed=0, progress=False, smoke_answers_per_task=2)
    first_half = kept[kept["cifar10_test_test_idx"] < 9500]
    assert crowd.n_tasks == 250 and np.array_equal(crowd.task_ids, np.arange(250))
    assert np.array_equal(crowd.gold, gold[:250])  # gold comes from the CIFAR-10 label of the image index
    assert crowd.n_answers == 2 * 250 and (crowd.answers_per_task() == 2).all()
    assert first_half["cifar10_test_test_idx"].nunique() == 250
    valid_x, valid_y = exp.setup.valid
    assert tuple(valid_x.shape) == (500, 3, 32, 32) and np.array_equal(valid_y, gold[9500:])
    test_x, test_y = exp.setup.test
    assert len(test_y) == 300 and np.array_equal(test_y, gold[250:550])  # first images neither trained nor validated on


def test_cap_answers_and_idle_workers():
    from crowd.data.selection import cap_answers, drop_idle_workers

    data, _, _ = planted_crowd(80)
    capped = cap_answers(data, 2, seed=1)
    assert (capped.answers_per_task() == np.minimum(data.answers_per_task(), 2)).all()
    assert np.array_equal(capped.label, cap_answers(data, 2, seed=1).label)
    # every kept answer is one of the original answers
    key = lambda d: set(zip(d.task.tolist(), d.worker.tolist(), d.label.tolist()))  # noqa: E731
    assert key(capped) <= key(data)
    # tasks answered only by workers 0 and 1: the other workers go, codes stay consistent
    only01 = data.subset_answers(np.isin(data.worker, [0, 1]))
    sub = only01.subset_tasks(np.flatnonzero(only01.answers_per_task() > 0))
    compact = drop_idle_workers(sub)
    assert compact.n_workers == 2 and list(compact.worker_ids) == [0, 1]
    assert key(compact) == key(sub)
    soft = aggregate("WDS", compact)
    assert np.isfinite(soft).all()


def test_real_data_experiments_use_the_paper_settings():
    from crowd.data import datasets
    from crowd.experiments.settings.waum import labelme_experiment, music_experiment

    labelme, music = datasets.load("labelme", features="avg"), datasets.load("music")
    lm = labelme_experiment(labelme, "full", progress=False)
    assert lm.setup.alpha == 0.01 and lm.setup.ident_kwargs["epochs"] == 500 and lm.setup.ident_kwargs["lr"] == 5e-3
    assert len(lm.seeds) == 5 and len(lm.setup.test[1]) == 1188 and len(lm.setup.valid[1]) == 500
    assert [p.name for p in lm.prunings] == ["none", "AUMC", "WAUM", "WAUM(psi1)", "WAUM(psi5)"]
    assert [s.name for s in lm.strategies] == ["MV", "NS", "DS", "GLAD", "WDS", "CrowdLayer", "CoNAL(0)", "CoNAL(1e-4)"]
    assert lm.setup.ds_kwargs == presets.DS_SETTINGS and lm.setup.percent and len(lm.methods) == 8 * 5
    mu = music_experiment(music, "full", progress=False)
    assert mu.setup.alpha == 0.05 and mu.setup.ident_kwargs["epochs"] == 1000 and mu.setup.ident_kwargs["lr"] == 1e-3
    assert len(mu.seeds) == 3 and len(mu.setup.test[1]) == 300 and mu.setup.valid is None
    np.testing.assert_allclose(mu.setup.inputs.mean(axis=0), 0, atol=1e-4)
    assert any("TEST set" in d for d in mu.deviations) and any("pooled" in d for d in lm.deviations)
    with pytest.raises(ValueError, match="mode must be"):
        labelme_experiment(labelme, "fast")


def test_paired_differences_and_pruned_summary(toy):
    from crowd.reporting.statistics import confidence_intervals, paired_differences, pruned_tasks_summary

    raw = pd.DataFrame({"dataset": "toy", "strategy": "NS", "seed": [0, 0, 1, 1],
                        "pruning": ["none", "WAUM", "none", "WAUM"], "accuracy": [80.0, 83.0, 90.0, 89.0]})
    out = paired_differences(raw).iloc[0]
    assert out["mean"] == pytest.approx(1.0) and out["std"] == pytest.approx(np.std([3.0, -1.0], ddof=1))
    assert out["n_runs"] == 2
    ci = confidence_intervals(raw, "accuracy").set_index("pruning")
    assert ci.loc["none", "mean"] == pytest.approx(85.0)
    assert ci.loc["none", "half_width"] == pytest.approx(1.96 * np.std([80.0, 90.0], ddof=1) / np.sqrt(2))
    assert np.isnan(confidence_intervals(raw[raw.seed == 0], "accuracy")["half_width"]).all()  # one run: no interval
    data, setup, ident = toy
    summary = pruned_tasks_summary(data, ident, [PRUNINGS["AUMC"], PRUNINGS["WAUM"]]).set_index("pruning")
    # the planted errors are what gets pruned: MV is wrong on (nearly) all pruned tasks
    assert (summary["n_pruned"] == N_FLIPPED).all()
    assert (summary["mv_accuracy_pruned"] <= 2 / N_FLIPPED).all()
    assert (summary["mv_accuracy_all"] > 0.85).all()
