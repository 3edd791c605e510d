"""CrowdLayer and CoNAL: exact identities at initialisation, recovery of simulated workers."""

import numpy as np
import pytest
import torch
from torch import nn

from crowd.data import CrowdData
from crowd.learning.deep_crowd import CoNAL, CoNALNet, CrowdLayer, CrowdLayerNet, _gather_answers, answers_by_task

torch.set_num_threads(1)
K = 3


def linear_classifier(d: int = 2) -> nn.Module:
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, K))


def gaussian_crowd(n_tasks: int = 240, seed: int = 0):
    """Three well separated Gaussian classes; worker 0 is perfect, worker 1 right 80% of the
    time, worker 2 always answers (y + 1) mod 3; each task gets 2 or 3 of them."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n_tasks) % K
    centres = np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    X = centres[truth] + rng.normal(scale=0.7, size=(n_tasks, 2))
    tasks, workers, labels = [], [], []
    for t in range(n_tasks):
        who = [0, 1, 2] if t % 4 else list(rng.choice(3, size=2, replace=False))
        for w in who:
            if w == 0:
                lab = truth[t]
            elif w == 1:
                lab = truth[t] if rng.random() < 0.8 else rng.integers(K)
            else:
                lab = (truth[t] + 1) % K
            tasks.append(t), workers.append(w), labels.append(lab)
    data = CrowdData(np.array(tasks), np.array(workers), np.array(labels), n_tasks, 3, K,
                     gold=truth, features=X.astype(np.float32))
    return data, X.astype(np.float32), truth


def test_gather_answers_matches_a_loop():
    data, _, _ = gaussian_crowd(40)
    order, indptr = answers_by_task(data)
    batch = np.array([5, 0, 17, 39, 2])
    ans, rows = _gather_answers(batch, order, indptr)
    expected = [(r, i) for r, t in enumerate(batch) for i in np.flatnonzero(data.task == t)]
    assert sorted(zip(rows.tolist(), ans.tolist())) == sorted(expected)
    assert np.all(data.task[ans] == batch[rows])


def test_crowdlayer_with_identity_matrices_equals_its_base_network():
    torch.manual_seed(0)
    base = linear_classifier()
    net = CrowdLayerNet(base, n_workers=4, n_classes=K)
    x = torch.randn(6, 2)
    rows = torch.tensor([0, 0, 1, 3, 5, 5])
    workers = torch.tensor([0, 3, 1, 2, 0, 1])
    with torch.no_grad():
        assert torch.equal(net(x), base(x))
        per_answer = net(x, rows, workers)
        torch.testing.assert_close(per_answer, base(x).softmax(1)[rows])
        assert torch.equal(per_answer.argmax(1), base(x).argmax(1)[rows])


def test_conal_mixture_and_penalty():
    torch.manual_seed(0)
    net = CoNALNet(linear_classifier(), n_workers=3, n_classes=K, input_dim=2)
    x = torch.randn(4, 2)
    rows, workers = torch.tensor([0, 1, 2, 3, 3]), torch.tensor([0, 1, 2, 0, 2])
    with torch.no_grad():
        omega = net.omega(x, rows, workers)
        assert torch.all((omega > 0) & (omega < 1))
        # equal global and local matrices: the mixture is that matrix applied to softmax(f(x))
        p = net.classifier(x).softmax(1)[rows]
        torch.testing.assert_close(net(x, rows, workers), 2.0 * p)
        net.local_confusion[1] += 1.0
        assert float(net.penalty()) == pytest.approx(K * K)
        # a different local matrix changes only worker 1's outputs, in proportion 1 - omega
        out = net(x, rows, workers)
        torch.testing.assert_close(out[1], 2.0 * p[1] + (1 - omega[1]) * p[1].sum())
        torch.testing.assert_close(out[[0, 2, 3, 4]], 2.0 * p[[0, 2, 3, 4]])


def test_crowdlayer_learns_the_permuting_worker():
    data, X, truth = gaussian_crowd()
    model = CrowdLayer(linear_classifier, n_epochs=60, batch_size=32, lr=1e-2, seed=0, progress=False).fit(data)
    assert np.mean(model.predict(X) == truth) > 0.95
    conf = model.confusions_
    # rows = true class: worker 2 answers k + 1 for class k, workers 0 and 1 stay diagonal
    assert conf[2].argmax(axis=1).tolist() == [1, 2, 0]
    assert conf[0].argmax(axis=1).tolist() == [0, 1, 2]
    assert conf[1].argmax(axis=1).tolist() == [0, 1, 2]


def test_crowdlayer_is_deterministic_for_a_seed():
    data, X, _ = gaussian_crowd(60)
    a = CrowdLayer(linear_classifier, n_epochs=3, seed=3, progress=False).fit(data).predict_proba(X)
    b = CrowdLayer(linear_classifier, n_epochs=3, seed=3, progress=False).fit(data).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_conal_learns_and_lambda_pushes_local_matrices_away():
    data, X, truth = gaussian_crowd()
    fits = {}
    for lam in (0.0, 1e-2):
        fits[lam] = CoNAL(linear_classifier, lambda_=lam, n_epochs=40, batch_size=32, lr=1e-2, seed=0,
                          progress=False).fit(data)
    assert np.mean(fits[0.0].predict(X) == truth) > 0.95

    def spread(m):
        return float(((m.confusions_ - m.global_confusion_[None]) ** 2).sum())

    assert spread(fits[1e-2]) > spread(fits[0.0])


def test_valid_split_keeps_the_best_epoch():
    data, X, truth = gaussian_crowd(90)
    # a poor validation subset (first 12 tasks) so that accuracy varies between epochs
    model = CrowdLayer(linear_classifier, n_epochs=8, lr=1e-3, seed=0, progress=False).fit(data, valid=(X[:12], truth[:12]))
    hist = model.history_["valid_accuracy"]
    assert len(hist) == 8
    assert np.mean(model.predict(X[:12]) == truth[:12]) == pytest.approx(max(hist))


def test_clear_errors():
    data, X, _ = gaussian_crowd(30)
    no_features = CrowdData(data.task, data.worker, data.label, data.n_tasks, data.n_workers, K)
    with pytest.raises(ValueError, match="no features"):
        CrowdLayer(linear_classifier, n_epochs=1, progress=False).fit(no_features)
    with pytest.raises(ValueError, match="rows for"):
        CrowdLayer(linear_classifier, n_epochs=1, progress=False).fit(data, features=X[:10])
    unanswered = CrowdData(data.task, data.worker, data.label, data.n_tasks + 1, data.n_workers, K)
    with pytest.raises(ValueError, match="no answer"):
        CrowdLayer(linear_classifier, n_epochs=1, progress=False).fit(unanswered, features=np.zeros((31, 2)))
    with pytest.raises(ValueError, match="unknown optimizer"):
        CrowdLayer(linear_classifier, n_epochs=1, optimizer="rmsprop", progress=False).fit(data)
