"""CrowdLayer and CoNAL: exact identities at initialisation, recovery of simulated workers, and
bit-for-bit equality with an independent re-implementation of the loop they were trained with
before they moved onto the one loop (the loop the committed results of notebook 03 come from)."""

import numpy as np
import pytest
import torch
from torch import nn

from crowd.data import CrowdData
from crowd.learning.base import answers_by_task, gather_answers
from crowd.learning.conal import CoNAL, CoNALNet
from crowd.learning.crowdlayer import CrowdLayer, CrowdLayerNet

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
    ans, rows = gather_answers(batch, order, indptr)
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
        CrowdLayer(linear_classifier, n_epochs=1, progress=False).fit(data, inputs=X[:10])
    unanswered = CrowdData(data.task, data.worker, data.label, data.n_tasks + 1, data.n_workers, K)
    with pytest.raises(ValueError, match="no answer"):
        CrowdLayer(linear_classifier, n_epochs=1, progress=False).fit(unanswered, inputs=np.zeros((31, 2)))
    with pytest.raises(ValueError, match="unknown optimizer"):
        CrowdLayer(linear_classifier, n_epochs=1, optimizer="rmsprop", progress=False).fit(data)


# ------------------------------------------------------------- the loop before the move
def dropout_classifier(d: int = 2) -> nn.Module:
    # dropout makes the comparison sensitive to the order of torch's random draws
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, K))


def old_loop(net_factory, data, X, *, n_epochs, batch_size, lr, optimizer="adam", momentum=0.9, weight_decay=0.0,
             milestones=(), gamma=0.1, lambda_=0.0, valid=None, seed=0):
    """The former CrowdLayer/CoNAL loop written out plainly: seed torch, build, then per epoch a
    numpy default_rng(seed) permutation of the tasks, each task batch with all its answers (found
    by a Python scan), CE on the per-answer outputs minus lambda * penalty, best validation epoch
    (first on ties) kept for the classifier."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X_t = torch.as_tensor(X, dtype=torch.float32)
    net = net_factory()
    if optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)
    best, best_state = -np.inf, None
    for _ in range(n_epochs):
        net.train()
        perm = rng.permutation(data.n_tasks)
        for start in range(0, data.n_tasks, batch_size):
            batch = perm[start:start + batch_size]
            rows, ans = [], []
            for r, t in enumerate(batch):
                for a in np.flatnonzero(data.task == t):  # answers in their original order
                    rows.append(r), ans.append(a)
            ans = np.array(ans)
            out = net(X_t[batch], torch.tensor(rows), torch.as_tensor(data.worker[ans]))
            loss = nn.functional.cross_entropy(out, torch.as_tensor(data.label[ans]))
            if lambda_:
                loss = loss + (-lambda_ * net.penalty())
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if valid is not None:
            net.eval()
            with torch.no_grad():
                acc = float(np.mean(net.classifier(torch.as_tensor(valid[0])).argmax(1).numpy() == valid[1]))
            if acc > best:
                best, best_state = acc, {k: v.clone() for k, v in net.classifier.state_dict().items()}
    if best_state is not None:
        net.classifier.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        return net.classifier(torch.as_tensor(X)).softmax(1).numpy()


@pytest.mark.parametrize("case", ["crowdlayer_adam", "crowdlayer_sgd_schedule_valid", "conal_penalty"])
def test_bit_for_bit_with_the_former_loop(case):
    data, X, truth = gaussian_crowd(150, seed=4)
    common = dict(n_epochs=4, batch_size=16, lr=1e-2, seed=7)
    kwargs, valid = {}, None
    if case == "crowdlayer_adam":
        new = CrowdLayer(dropout_classifier, progress=False, device="cpu", **common)
        factory = lambda: CrowdLayerNet(dropout_classifier(), data.n_workers, K)  # noqa: E731
    elif case == "crowdlayer_sgd_schedule_valid":
        kwargs = dict(optimizer="sgd", momentum=0.9, weight_decay=5e-4, milestones=(2,), gamma=0.1)
        valid = (X[:20], truth[:20])
        new = CrowdLayer(dropout_classifier, progress=False, device="cpu", **common, **kwargs)
        factory = lambda: CrowdLayerNet(dropout_classifier(), data.n_workers, K)  # noqa: E731
    else:
        kwargs = dict(lambda_=1e-2)
        new = CoNAL(dropout_classifier, progress=False, device="cpu", **common, **kwargs)
        factory = lambda: CoNALNet(dropout_classifier(), data.n_workers, K, input_dim=2)  # noqa: E731
    expected = old_loop(factory, data, X, valid=valid, **common, **kwargs)
    got = new.fit(data, valid=valid).predict_proba(X)
    np.testing.assert_array_equal(got, expected)
    if valid is not None:
        assert new.best_epoch_ == int(np.argmax(new.history_["valid_accuracy"])) + 1
