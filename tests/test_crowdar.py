"""CrowdAR: the loss of Eq. 5 against a hand computation, the w_3 >= 0 constraint, and a simulated
crowd with features where majority voting fails (a few experts, many biased spammers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from crowd.learning.crowdar import CrowdAR, CrowdARNet, crowdar_loss, split_classifier
from crowd.simulation.confusion import simulate_answers

torch.set_num_threads(1)


def expert_spammer_crowd(seed: int = 0, n_tasks: int = 400, K: int = 4, d: int = 8, n_experts: int = 4,
                         n_spammers: int = 16):
    """Experts right 90% of the time; spammers answer their favourite label 80% of the time whatever
    the truth; 5 answers per task; Gaussian class clusters as features."""
    rng = np.random.default_rng(seed)
    conf = np.empty((n_experts + n_spammers, K, K))
    expert = np.full((K, K), 0.1 / (K - 1))
    np.fill_diagonal(expert, 0.9)
    conf[:n_experts] = expert
    for j in range(n_spammers):
        row = np.full(K, 0.2 / (K - 1))
        row[j % K] = 0.8
        conf[n_experts + j] = row[None, :]
    data = simulate_answers(conf, n_tasks, 5, seed=rng)
    means = rng.normal(size=(K, d)) * 1.2
    X = (means[data.gold] + rng.normal(size=(n_tasks, d))).astype(np.float32)
    return data, X


@pytest.fixture(scope="module")
def crowd():
    return expert_spammer_crowd()


@pytest.fixture(scope="module")
def fitted(crowd):
    data, X = crowd
    return CrowdAR("mlp", n_epochs=20, seed=1, device="cpu", progress=False).fit(data, X)


def test_beats_majority_vote(crowd, fitted):
    data, X = crowd
    mv = (data.vote_counts().argmax(1) == data.gold).mean()
    assert mv < 0.6
    accuracy = (fitted.predict(X) == data.gold).mean()
    assert accuracy > mv + 0.25, (accuracy, mv)


def test_api_and_fitted_attributes(crowd, fitted):
    data, X = crowd
    assert isinstance(fitted.model_, CrowdARNet)
    proba = fitted.predict_proba(X)
    assert proba.shape == (data.n_tasks, data.n_classes)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(fitted.predict(X), proba.argmax(1))
    assert fitted.confusions_.shape == (data.n_workers, data.n_classes, data.n_classes)
    assert fitted.expertise_.shape == (data.n_workers, data.n_classes)
    assert fitted.reliability_.shape == (data.n_answers,)
    assert ((fitted.reliability_ > 0) & (fitted.reliability_ < 1)).all()
    assert fitted.difficulty_.shape == (data.n_tasks, data.n_classes)
    assert (fitted.model_.reliability.combine.weight >= 0).all()  # w_3 >= 0 after the last step
    assert list(fitted.history_["epoch"]) == list(range(1, 21))
    # the classifier alone gives the same probabilities
    with torch.no_grad():
        alone = torch.softmax(fitted.classifier_(torch.as_tensor(X)), 1).numpy()
    np.testing.assert_allclose(alone, proba, rtol=1e-5, atol=1e-6)


def test_reliability_of_one_answer_matches_the_loop(crowd, fitted):
    data, X = crowd
    net = fitted.model_
    a = 7  # one answer, recomputed from Eq. 1-2 by hand
    t, w = int(data.task[a]), int(data.worker[a])
    with torch.no_grad():
        x = torch.as_tensor(X[t:t + 1])
        u = net.embedding(x)
        q = torch.softmax(net.head(u), 1)[0]
        rel = net.reliability
        d = torch.sigmoid(rel.difficulty_out(torch.sigmoid(rel.difficulty_hidden(u))))[0]
        e = torch.sigmoid(rel.expertise_logits[w])
        m = torch.sigmoid(sum(rel.combine.weight[0, k] * (e[k] - d[k]) * q[k] for k in range(len(q)))
                          + rel.combine.bias[0])
    assert fitted.reliability_[a] == pytest.approx(float(m), rel=1e-5)


def test_loss_equals_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    K, lam = 3, 0.7
    logits = torch.randn(2, K, generator=gen)
    annotation_logits = torch.randn(3, K, generator=gen)
    reliability = torch.tensor([0.9, 0.2, 0.6])
    rows, labels = torch.tensor([0, 0, 1]), torch.tensor([2, 1, 0])
    total = 0.0
    for a in range(3):
        logp = torch.log_softmax(annotation_logits[a], 0)
        soft = [(reliability[a] if k == labels[a] else 0.0) + (1 - reliability[a]) / K for k in range(K)]
        ce = -sum(soft[k] * logp[k] for k in range(K))
        agree = float(int(logits[rows[a]].argmax()) == int(labels[a]))
        bce = -(agree * torch.log(reliability[a]) + (1 - agree) * torch.log(1 - reliability[a]))
        total += lam * ce + (1 - lam) * bce
    got = crowdar_loss(logits, annotation_logits, reliability, rows, labels, lam)
    assert float(got) == pytest.approx(float(total) / 3, rel=1e-6)


def test_deterministic_on_cpu_for_a_seed(crowd):
    data, X = crowd
    small = dict(n_epochs=2, device="cpu", progress=False)
    a = CrowdAR("mlp", seed=5, **small).fit_predict_proba(data, X)
    b = CrowdAR("mlp", seed=5, **small).fit_predict_proba(data, X)
    c = CrowdAR("mlp", seed=6, **small).fit_predict_proba(data, X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_difficulty_from_inputs_takes_any_classifier(crowd):
    data, X = crowd
    est = CrowdAR(lambda: nn.Linear(X.shape[1], data.n_classes), difficulty_from="inputs", n_epochs=1,
                  device="cpu", progress=False).fit(data, X)
    assert est.difficulty_.shape == (data.n_tasks, data.n_classes)


def test_bad_input_gives_clear_errors(crowd):
    data, X = crowd
    with pytest.raises(ValueError, match="last hidden layer"):
        split_classifier(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="last hidden layer"):
        CrowdAR(lambda: nn.Linear(X.shape[1], data.n_classes), n_epochs=1, device="cpu", progress=False).fit(data, X)
    est = CrowdAR("mlp", n_epochs=1, device="cpu", progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict_proba(X)
    with pytest.raises(ValueError, match="rows for"):
        est.fit(data, X[:10])
    with pytest.raises(ValueError, match="lambda_"):
        CrowdAR("mlp", lambda_=1.5, device="cpu", progress=False).fit(data, X)
    with pytest.raises(ValueError, match="difficulty_from"):
        CrowdAR("mlp", difficulty_from="features", device="cpu", progress=False).fit(data, X)
