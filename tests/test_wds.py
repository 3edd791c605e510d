"""WDS soft labels: reduction to naive soft, hand-computed weights, the DawidSkene fit it runs."""

import numpy as np
import pytest

from crowd.aggregation.dawid_skene import DawidSkene
from crowd.aggregation.majority_vote import MajorityVote, NaiveSoft
from crowd.aggregation.wds import WDS
from crowd.data import CrowdData
from crowd.simulation.confusion import random_confusions, simulate_crowd


def test_equal_diagonals_reduce_to_naive_soft():
    data = simulate_crowd(400, 15, 4, (1, 6), seed=0)
    conf = random_confusions(15, 4, seed=1)
    diag = np.eye(4, dtype=bool)
    conf[:, diag] = 0.55  # same pi_j[l, l] for every worker and label; off-diagonals stay random
    wds = WDS(confusions=conf).fit(data)
    np.testing.assert_allclose(wds.probas_, NaiveSoft().fit(data).probas_)


def test_hand_computed_weights_and_rows_sum_to_one():
    # task 0: worker 0 says 0, worker 1 says 1, worker 2 says 1; task 1: worker 2 says 0
    data = CrowdData([0, 0, 0, 1], [0, 1, 2, 2], [0, 1, 1, 0], 2, 3, 2)
    conf = np.array([
        [[0.9, 0.1], [0.2, 0.8]],
        [[0.7, 0.3], [0.6, 0.4]],
        [[0.5, 0.5], [0.9, 0.1]],
    ])
    wds = WDS(confusions=conf).fit(data)
    # label 0 gets pi_0[0, 0] = 0.9; label 1 gets pi_1[1, 1] + pi_2[1, 1] = 0.4 + 0.1
    np.testing.assert_allclose(wds.probas_[0], [0.9 / 1.4, 0.5 / 1.4])
    np.testing.assert_allclose(wds.probas_[1], [1.0, 0.0])
    assert wds.labels_.tolist() == [0, 0]
    # no trusted vote at all: uniform
    conf[2, 0, 0] = 0.0
    np.testing.assert_allclose(WDS(confusions=conf).fit(data).probas_[1], [0.5, 0.5])


def test_fits_dawid_skene_with_its_defaults_or_the_given_settings():
    data = simulate_crowd(1500, 30, 4, 4, spammer_share=0.4, seed=5)
    wds = WDS().fit(data)
    ds = DawidSkene().fit(data)
    np.testing.assert_allclose(wds.confusions_, ds.confusions_)
    assert wds.ds_.init == "naive_soft" and wds.ds_.n_iter == 100
    np.testing.assert_allclose(wds.probas_.sum(axis=1), 1.0)
    # spammers' votes weigh less: the weighted vote beats majority vote
    assert wds.accuracy() > MajorityVote(seed=0).fit(data).accuracy() + 0.02
    capped = WDS(ds_kwargs={"n_iter": 3}).fit(data)
    assert capped.ds_.n_iter_ <= 3


def test_confusions_of_the_wrong_shape_are_named():
    data = simulate_crowd(50, 5, 3, 2, seed=0)
    with pytest.raises(ValueError, match="shape"):
        WDS(confusions=np.ones((4, 3, 3)) / 3).fit(data)
    with pytest.raises(ValueError, match="non-negative"):
        WDS(confusions=-np.ones((5, 3, 3))).fit(data)
