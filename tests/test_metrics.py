import numpy as np
import pytest
import torch

from crowd import metrics


def test_accuracy_from_probas_and_labels():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    assert metrics.accuracy(p, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert metrics.accuracy(np.array([0, 1, 1]), np.array([0, 1, 0])) == pytest.approx(2 / 3)
    assert metrics.accuracy(torch.tensor(p), torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


def test_top_k_accuracy_counts_label_rank():
    p = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    y = np.array([0, 1, 2, 0])
    assert metrics.top_k_accuracy(p, y, 1) == pytest.approx(0.25)
    assert metrics.top_k_accuracy(p, y, 2) == pytest.approx(0.5)
    assert metrics.top_k_accuracy(p, y, 3) == 1.0
    # against sklearn's independent implementation on random data without ties
    from sklearn.metrics import top_k_accuracy_score

    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(5), size=400)
    lab = rng.integers(0, 5, 400)
    for k in (1, 2, 3):
        assert metrics.top_k_accuracy(q, lab, k) == pytest.approx(top_k_accuracy_score(lab, q, k=k, labels=range(5)))


def test_ece_of_calibrated_predictor_is_near_zero():
    rng = np.random.default_rng(1)
    n, k = 200_000, 4
    p = rng.dirichlet(np.ones(k), size=n)
    # labels drawn from the predicted distribution: perfectly calibrated in expectation
    cum = p.cumsum(1)
    y = (rng.random(n)[:, None] > cum).sum(1)
    assert metrics.ece(p, y) < 0.01
    assert metrics.one_minus_ece(p, y) > 0.99


def test_ece_of_overconfident_predictor_equals_gap():
    # always predicts class 0 with confidence 0.9 but is right half of the time: ECE = 0.4
    p = np.tile([0.9, 0.1], (100, 1))
    y = np.array([0, 1] * 50)
    assert metrics.ece(p, y) == pytest.approx(0.4)
    bins = metrics.calibration_bins(p, y)
    assert bins["count"].sum() == 100 and bins["count"].iloc[13] == 100  # 0.9 in (13/15, 14/15]


def test_ece_bin_edges_right_closed():
    # confidence exactly 2/3 lies in bin (9/15, 10/15]
    p = np.array([[2 / 3, 1 / 3]])
    bins = metrics.calibration_bins(p, np.array([0]))
    assert bins["count"].iloc[9] == 1


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown label"):
        metrics.ece(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="k must be"):
        metrics.top_k_accuracy(np.array([[0.5, 0.5]]), np.array([0]), 3)
    with pytest.raises(ValueError, match="shape"):
        metrics.ece(np.array([0.5, 0.5]), np.array([0, 1]))


def test_top_k_does_not_reward_zero_probability_ties():
    from crowd.metrics import accuracy, top_k_accuracy

    one_hot = np.eye(4)[[0, 0, 1]]
    labels = np.array([3, 0, 2])
    # a one-hot prediction's second choice is one class, not every zero-probability class
    assert top_k_accuracy(one_hot, labels, k=2) == pytest.approx(1 / 3)
    assert top_k_accuracy(one_hot, labels, k=1) == pytest.approx(accuracy(one_hot, labels))
    assert top_k_accuracy(one_hot, labels, k=4) == 1.0
