import copy

import numpy as np
import pytest
import torch

from crowd import CrowdData
from crowd import identification as idf
from crowd.learning import models
from crowd.learning import trainer as training

torch.set_num_threads(1)
FAST = dict(batch_size=32, lr=0.05, momentum=0.9, weight_decay=0.0, progress=False, seed=0)


def blobs(n, seed=0, spread=0.4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    return (centres[y] + rng.normal(0, spread, (n, 2))).astype(np.float32), y


def test_margins_by_hand():
    p = torch.tensor([[0.6, 0.3, 0.1], [0.6, 0.3, 0.1], [0.6, 0.3, 0.1]])
    y = torch.tensor([0, 1, 2])
    np.testing.assert_allclose(idf.margins(p, y, "yang"), [0.3, 0.0, -0.2], atol=1e-6)
    np.testing.assert_allclose(idf.margins(p, y, "pleiss"), [0.3, -0.3, -0.5], atol=1e-6)
    # top-2: the label against the third largest (yang) / second largest other label (pleiss)
    np.testing.assert_allclose(idf.margins(p, y, "yang", top_k=2), [0.5, 0.2, 0.0], atol=1e-6)
    np.testing.assert_allclose(idf.margins(p, y, "pleiss", top_k=2), [0.5, 0.2, -0.2], atol=1e-6)
    with pytest.raises(ValueError, match="unknown margin"):
        idf.margins(p, y, "logit")


def test_aum_separable_near_one_and_mislabelled_negative():
    x, y = blobs(300)
    noisy = y.copy()
    flipped = np.arange(0, 300, 30)  # 10 mislabelled points
    noisy[flipped] = (y[flipped] + 1) % 3
    clean = np.setdiff1d(np.arange(300), flipped)
    for margin in ("pleiss", "yang"):
        training.seed_everything(0)
        aum = idf.AUM(epochs=30, margin=margin, **FAST).fit(models.MLP(2, 3), x, noisy)
        assert np.median(aum.aum_[clean]) > 0.85
        if margin == "pleiss":
            assert np.all(aum.aum_[flipped] < 0)
        else:  # the given label is never the argmax: yang margin <= 0
            assert np.all(aum.aum_[flipped] <= 1e-3)
            # the 10 lowest AUMs are exactly the mislabelled points
            assert set(np.argsort(aum.aum_)[:10]) == set(flipped)
    assert np.all(aum.prune(10 / 300)[clean])


def test_waum_equals_aum_with_equal_trust():
    # one answer per task: the stacked network is the plain network, and equal confusions give equal trust
    x, y = blobs(120, seed=1)
    rng = np.random.default_rng(0)
    worker = rng.integers(0, 4, 120)
    data = CrowdData(np.arange(120), worker, y, 120, 4, 3, features=x)
    conf = np.tile(np.full((3, 3), 0.1) + 0.7 * np.eye(3), (4, 1, 1))
    net = models.MLP(2, 3)
    training.seed_everything(0)
    waum = idf.WAUM(epochs=5, confusions=conf, **FAST).fit(data, copy.deepcopy(net))
    aum = idf.AUM(epochs=5, **FAST).fit(copy.deepcopy(net), x, y)
    np.testing.assert_allclose(waum.trust_, 0.8, atol=1e-6)
    np.testing.assert_allclose(waum.waum_, aum.aum_, atol=1e-6)


def test_waum_is_trust_weighted_mean_of_answer_aums():
    x, y = blobs(60, seed=2)
    task = np.repeat(np.arange(60), 3)
    worker = np.tile(np.arange(3), 60)
    label = y[task].copy()
    label[worker == 2] = (label[worker == 2] + 1) % 3  # worker 2 always wrong
    data = CrowdData(task, worker, label, 60, 3, 3, features=x)
    conf = np.stack([np.eye(3) * 0.9 + 0.05, np.eye(3) * 0.6 + 0.2, np.eye(3) * 0.0 + 1 / 3])
    res = idf.WAUM(epochs=4, confusions=conf, **FAST).fit(data, models.MLP(2, 3))
    num = np.bincount(task, weights=res.trust_ * res.aum_)
    den = np.bincount(task, weights=res.trust_)
    np.testing.assert_allclose(res.waum_, num / den)
    diag = np.diagonal(conf, axis1=1, axis2=2)
    # trust score of worker 2 (flat confusion) is 1/3 whatever the softmax
    np.testing.assert_allclose(res.trust_[worker == 2], 1 / 3, atol=1e-6)
    assert res.probas_.shape == (60, 3) and np.allclose(res.probas_.sum(1), 1, atol=1e-5)
    assert diag.shape == (3, 3)


@pytest.mark.parametrize("n", [525, 100, 1000])
@pytest.mark.parametrize("alpha", [1e-3, 1e-2, 0.1, 0.25])
def test_prune_removes_exactly_the_alpha_share(n, alpha):
    rng = np.random.default_rng(n)
    scores = rng.normal(size=n)
    keep = idf.prune_mask(scores, alpha)
    removed = n - keep.sum()
    assert removed == int(np.ceil(alpha * n - 1e-9))
    # the removed tasks are the lowest, and coincide with the "<= alpha-quantile" rule of algorithm 1
    assert scores[~keep].max(initial=-np.inf) < scores[keep].min()
    assert removed == int((scores <= np.quantile(scores, alpha)).sum())


def test_prune_rejects_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        idf.prune_mask(np.zeros(3), 1.5)
    with pytest.raises(ValueError, match="NaN"):
        idf.prune_mask(np.array([0.0, np.nan]), 0.1)


def test_waum_flags_tasks_the_crowd_disagrees_on():
    x, y = blobs(300, seed=3)
    rng = np.random.default_rng(3)
    task = np.repeat(np.arange(300), 3)
    worker = np.tile(np.arange(3), 300)
    label = y[task].copy()
    hard = rng.choice(300, 30, replace=False)
    for t in hard:  # two of the three workers answer the same wrong class
        label[3 * t:3 * t + 2] = (y[t] + 1 + rng.integers(0, 2)) % 3
    data = CrowdData(task, worker, label, 300, 3, 3, features=x)
    conf = np.tile(np.eye(3) * 0.85 + 0.05, (3, 1, 1))
    training.seed_everything(0)
    res = idf.WAUM(epochs=20, confusions=conf, **FAST).fit(data, models.MLP(2, 3))
    pruned = np.flatnonzero(~res.prune(0.1))
    assert len(pruned) == 30
    assert len(set(pruned) & set(hard)) >= 24
    assert res.pruned_data(0.1).n_tasks == 270


def test_worker_wise_waum_trains_each_worker_from_the_same_start():
    x, y = blobs(90, seed=4)
    task = np.concatenate([np.arange(0, 60), np.arange(30, 90)])
    worker = np.concatenate([np.zeros(60, int), np.ones(60, int)])
    label = y[task]
    data = CrowdData(task, worker, label, 90, 2, 3, features=x)
    conf = np.tile(np.eye(3) * 0.7 + 0.1, (2, 1, 1))
    net = models.MLP(2, 3)
    init = copy.deepcopy(net)
    ww = idf.WorkerWiseWAUM(epochs=4, confusions=conf, **FAST).fit(data, net)
    for j in (0, 1):
        rows = worker == j
        alone = idf.AUM(epochs=4, **FAST).fit(copy.deepcopy(init), x[task[rows]], label[rows])
        np.testing.assert_allclose(ww.aum_[rows], alone.aum_, atol=1e-6)
    # tasks 0..29 have only worker 0: their WAUM is worker 0's AUM
    np.testing.assert_allclose(ww.waum_[:30], ww.aum_[:30], atol=1e-9)


def test_waum_with_ds_confusions_and_errors():
    x, y = blobs(60, seed=5)
    task = np.repeat(np.arange(60), 2)
    worker = np.tile(np.arange(2), 60)
    data = CrowdData(task, worker, y[task], 60, 2, 3, features=x)
    res = idf.WAUM(epochs=2, **FAST).fit(data, models.MLP(2, 3))
    assert res.confusions_.shape == (2, 3, 3)
    np.testing.assert_allclose(res.confusions_.sum(2), 1, atol=1e-6)
    with pytest.raises(ValueError, match="confusions must have shape"):
        idf.WAUM(epochs=1, confusions=np.ones((5, 3, 3)), **FAST).fit(data, models.MLP(2, 3))
    with pytest.raises(ValueError, match="inputs have"):
        idf.WAUM(epochs=1, confusions=np.ones((2, 3, 3)) / 3, **FAST).fit(data, models.MLP(2, 3), inputs=x[:10])
