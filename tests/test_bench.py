"""The quick benchmark (runs inside make test so it never rots): every run finishes, caps work,
our DS matches crowd-kit's at equal iterations when .venv-bench exists, outputs are written."""

import numpy as np
import pytest

from benchmarks import bench
from crowd import paths
from crowd.simulation.confusion import simulate_crowd

QUICK = bench.Case("test_5k", 1000, 60, 4, 5, n_iter=10)


@pytest.fixture(scope="module")
def quick_results():
    impls = ["ours_mv", "ours_ds", "ours_glad"]
    if bench.DEFAULT_PEER_PYTHON.exists():
        impls += ["crowdkit_ds", "peerannot_ds"]
    return bench.run_benchmark([QUICK], impls, timeout_s=120, mem_cap_gb=4, progress=False)


def test_every_run_finishes_with_sane_numbers(quick_results):
    df = quick_results.set_index("impl")
    assert (df["status"] == "ok").all(), df["status"].to_dict()
    assert (df["n_answers"] == 5000).all()
    assert (df["wall_s"] > 0).all() and (df["peak_rss_mb"] > 10).all()
    assert df.loc["ours_ds", "n_iter"] == 10
    # DS beats majority vote on a crowd with spammers and diverse workers
    assert df.loc["ours_ds", "accuracy"] > df.loc["ours_mv", "accuracy"]
    assert df.loc["ours_ds", "per_iter_s"] > 0


def test_same_accuracy_as_peers_at_equal_iterations(quick_results):
    df = quick_results.set_index("impl")
    if "crowdkit_ds" not in df.index:
        pytest.skip("no .venv-bench: peers not installed (make .venv-bench)")
    # same init (vote shares), same 10 iterations: within 0.1 point
    assert abs(df.loc["crowdkit_ds", "accuracy"] - df.loc["ours_ds", "accuracy"]) <= 0.001
    assert abs(df.loc["peerannot_ds", "accuracy"] - df.loc["ours_ds", "accuracy"]) <= 0.001


def test_time_and_memory_caps_stop_a_run(tmp_path):
    data = simulate_crowd(200, 20, 3, 3, seed=0)
    path = tmp_path / "d.npz"
    np.savez(path, task=data.task, worker=data.worker, label=data.label, gold=data.gold,
             n_tasks=data.n_tasks, n_workers=data.n_workers, n_classes=data.n_classes)
    import sys

    timed = bench.run_one("ours_ds", path, 5, python=sys.executable, timeout_s=0.05, mem_cap_mb=1e6, workdir=tmp_path)
    assert timed["status"].startswith("did not finish (time cap")
    capped = bench.run_one("ours_ds", path, 5, python=sys.executable, timeout_s=60, mem_cap_mb=5, workdir=tmp_path)
    assert capped["status"].startswith("did not finish (memory cap")
    broken = bench.run_one("ours_ds", tmp_path / "missing.npz", 5, python=sys.executable, timeout_s=60,
                           mem_cap_mb=1e6, workdir=tmp_path)
    assert broken["status"].startswith("error")


def test_roofline_reference_is_measured():
    data = simulate_crowd(5000, 100, 5, 4, seed=1)
    ref = bench.roofline_reference(data.task, data.worker, data.label, data.n_workers, data.n_classes)
    assert 0 < ref["ref_pass_s"] < 5
    assert ref["copy_bandwidth_gbs"] > 0.1


def test_outputs_table_and_figure(quick_results, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(paths, "FIGURES_DIR", tmp_path / "figures")
    written = bench.write_outputs(quick_results, stem="bench_test")
    assert written["csv"].exists() and written["figure"].exists()
    table = written["md"].read_text()
    assert "| test_5k | 5000 | DS | 10 |" in table
    if "crowdkit_ds" in set(quick_results["impl"]):
        row = next(line for line in table.splitlines() if line.startswith("| test_5k | 5000 | DS |"))
        assert row.split("|")[7].strip().endswith("x")  # speed-up vs crowd-kit filled in
