"""Dataset statistics and the figure helper."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from crowd.data import datasets
from crowd.reporting import figures
from crowd import paths
from crowd.reporting.plots import dataset_statistics, naive_soft_entropy, plot_dataset_statistics


def test_entropy_extremes():
    h = naive_soft_entropy(np.array([[5, 0, 0], [1, 1, 1], [2, 2, 0]]))
    np.testing.assert_allclose(h, [0.0, np.log(3), np.log(2)])
    with pytest.raises(ValueError, match="no vote"):
        naive_soft_entropy(np.array([[0, 0]]))


def test_cifar10h_statistics_from_counts():
    cifar = datasets.load("cifar10h", raw=False, images=False)
    stats = dataset_statistics(cifar, vote_counts=cifar.meta["vote_counts_all"])
    assert stats["answers_per_task"].sum() == 511000 and len(stats["tasks_per_worker"]) == 2571
    assert stats["tasks_per_worker"].sum() == 25752


def test_save_figure_writes_png_and_pdf(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "FIGURES_DIR", tmp_path)
    stats = dataset_statistics(datasets.load("music"))
    fig = plot_dataset_statistics(stats, "Music")
    written = figures.save_figure(fig, "99_test_statistics")
    plt.close(fig)
    assert [p.name for p in written] == ["99_test_statistics.png", "99_test_statistics.pdf"]
    assert all(p.stat().st_size > 1000 for p in written)
    with pytest.raises(ValueError, match="plain file stem"):
        figures.save_figure(fig, "../escape")
