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


def test_rows_with_data_and_average_confusion_by_hand():
    from crowd.data import CrowdData
    from crowd.reporting.plots import average_confusion, rows_with_data

    # worker 0 answered tasks of classes 0 and 1, worker 1 only a task of class 2
    data = CrowdData([0, 1, 2], [0, 0, 1], [0, 1, 2], 3, 2, 3)
    observed = rows_with_data(data, np.array([0, 1, 2]))
    np.testing.assert_array_equal(observed, [[True, True, False], [False, False, True]])
    conf = np.stack([np.eye(3), np.full((3, 3), 1 / 3)])
    average, n = average_confusion(conf, observed)
    np.testing.assert_array_equal(n, [1, 1, 1])
    np.testing.assert_allclose(average, [[1, 0, 0], [0, 1, 0], [1 / 3, 1 / 3, 1 / 3]])  # filler rows left out
    average, n = average_confusion(conf, np.array([[True, False, False], [True, False, False]]))
    assert np.isnan(average[1:]).all() and n.tolist() == [2, 0, 0]
    with pytest.raises(ValueError, match="one class per task"):
        rows_with_data(data, np.array([0, 1]))


def test_cifar10h_slice_rows_without_data():
    """36% of the worker x class rows of the 500-image slice have no answer (by gold): DS's filler, masked in 00."""
    from crowd.reporting.plots import rows_with_data

    cifar = datasets.load("cifar10h", raw=False, images=False)
    observed = rows_with_data(cifar, cifar.gold)
    assert observed.shape == (2571, 10) and int((~observed).sum()) == 9227  # 35.9%
    assert cifar.answers_per_worker().max() == 19  # why a filter at >= 20 answers selected nobody


def test_masked_confusion_rows_are_drawn_as_no_data():
    from crowd.reporting.plots import plot_confusion

    fig, ax = plt.subplots()
    plot_confusion(np.eye(3), ax, "w", observed_rows=np.array([True, False, True]))
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("no data") == 1 and len(texts) == 1 + 6  # 2 rows x 3 values annotated
    assert np.ma.count_masked(ax.images[0].get_array()) == 3
    fig2, ax2 = plt.subplots()
    plot_confusion(np.full((3, 3), np.nan), ax2, "nobody")
    assert [t.get_text() for t in ax2.texts] == ["no data"] * 3
    assert figures.blank_axes(fig) == [] and len(figures.blank_axes(fig2)) == 1  # an all-NaN matrix is blank
    plt.close(fig)
    plt.close(fig2)
