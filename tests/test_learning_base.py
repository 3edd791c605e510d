"""CrowdLearner: the estimator base the deep crowd models subclass (the API, its checks, and the
two ways a subclass plugs in: a per-batch loss, and an EM outer loop calling the one loop)."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from crowd.data import CrowdData
from crowd.learning.base import CrowdLearner, TaskAnswers
from crowd.learning.crowdlayer import CrowdLayer
from crowd.learning.trainer import TrainResult, soft_cross_entropy, train

torch.set_num_threads(1)
K = 3


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, K))


def crowd(n_tasks: int = 150, seed: int = 0):
    """Separable classes, five workers right 75% of the time (uniform errors), three answers per task."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n_tasks) % K
    X = (np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])[truth] + rng.normal(scale=0.7, size=(n_tasks, 2)))
    tasks = np.repeat(np.arange(n_tasks), 3)
    workers = np.concatenate([rng.choice(5, size=3, replace=False) for _ in range(n_tasks)])
    wrong = rng.random(len(tasks)) > 0.75
    labels = np.where(wrong, (truth[tasks] + rng.integers(1, K, len(tasks))) % K, truth[tasks])
    data = CrowdData(tasks, workers, labels, n_tasks, 5, K, gold=truth, features=X.astype(np.float32))
    return data, X.astype(np.float32), truth


class AnswerNet(CrowdLearner):
    """Plugs in by the per-batch loss alone: the classifier's CE on every answer (no worker model)."""

    def _build(self, data, inputs):
        return self._new_classifier(data, inputs)

    def _batch_loss(self, model, batch, tasks):
        answers = self.answers_.gather(tasks)
        return nn.functional.cross_entropy(model(batch[0])[answers.rows], answers.label), len(answers)


class SoftVoteEM(CrowdLearner):
    """Plugs in by an EM outer loop: E-step = posteriors from one-coin workers and the network's
    prior, M-step = ONE epoch of the one loop on them, with one optimiser kept across M-steps."""

    def __init__(self, model, *, max_iter: int = 5, **kwargs):
        super().__init__(model, **kwargs)
        self.max_iter = max_iter

    def _build(self, data, inputs):
        return self._new_classifier(data, inputs)

    def _fit(self, data, inputs, valid):
        model = self._new_model(data, inputs).to(self.device_)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        votes = data.vote_counts().astype(np.float64)
        log_post = np.log(votes / votes.sum(1, keepdims=True) + 1e-3)
        rows = []
        for it in range(self.max_iter):
            targets = np.exp(log_post - log_post.max(1, keepdims=True))
            targets = (targets / targets.sum(1, keepdims=True)).astype(np.float32)
            result = train(model, inputs, targets, **self._train_kwargs(epochs=1, optimizer=lambda p: opt,
                                                                      seed=self.seed * 1000 + it, progress=False))
            rows.append({"epoch": it + 1, "loss": float(result.history["loss"].iloc[-1])})
            prior = self._prior(model, inputs)
            log_post = np.log(prior) + 2.0 * votes  # one-coin workers right with odds e^2
        self.n_iter_ = len(rows)
        return TrainResult(model, pd.DataFrame(rows), device=self.device_)

    @torch.no_grad()
    def _prior(self, model, inputs):
        model.eval()
        return torch.softmax(model(inputs.to(self.device_)), 1).cpu().double().numpy()


def test_a_per_batch_loss_subclass_learns_and_is_deterministic():
    data, X, truth = crowd()
    a = AnswerNet(mlp, n_epochs=20, batch_size=32, lr=1e-2, seed=1, progress=False).fit(data)
    b = AnswerNet(mlp, n_epochs=20, batch_size=32, lr=1e-2, seed=1, progress=False).fit(data)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.mean(a.predict(X) == truth) > 0.95
    assert list(a.history_.columns[:3]) == ["epoch", "loss", "lr"] and len(a.history_) == 20
    assert a.device_.type in ("cpu", "cuda") and a.n_classes_ == K and a.n_workers_ == 5
    assert not a.model_.training


def test_the_epoch_loss_is_the_mean_over_answers():
    data, X, _ = crowd(40)
    fit = AnswerNet(mlp, n_epochs=1, batch_size=7, lr=1e-12, seed=0, progress=False).fit(data)
    # with a vanishing lr the network barely moves: the epoch's loss is the CE over all answers
    with torch.no_grad():
        logits = fit.model_(torch.as_tensor(X))[torch.as_tensor(data.task)]
        expected = float(nn.functional.cross_entropy(logits, torch.as_tensor(data.label)))
    assert fit.history_["loss"].iloc[0] == pytest.approx(expected, rel=1e-4)


def test_an_em_subclass_runs_one_epoch_per_m_step():
    data, X, truth = crowd()
    fit = SoftVoteEM(mlp, max_iter=6, batch_size=32, lr=1e-2, seed=0, progress=False).fit(data)
    assert fit.n_iter_ == 6 and len(fit.history_) == 6 and fit.best_epoch_ is None
    assert np.mean(fit.predict(X) == truth) > 0.9
    again = SoftVoteEM(mlp, max_iter=6, batch_size=32, lr=1e-2, seed=0, progress=False).fit(data)
    np.testing.assert_array_equal(fit.predict_proba(X), again.predict_proba(X))


def test_task_answers_gather_in_batch_order():
    data, _, _ = crowd(30)
    index = TaskAnswers(data, torch.device("cpu"))
    got = index.gather(torch.tensor([4, 0, 29]))
    assert len(got) == 9
    np.testing.assert_array_equal(data.task[got.index], np.array([4, 0, 29])[got.rows.numpy()])
    np.testing.assert_array_equal(got.label.numpy(), data.label[got.index])
    np.testing.assert_array_equal(got.worker.numpy(), data.worker[got.index])


def test_labels_in_labels_out_from_a_crowdkit_dataframe():
    data, X, truth = crowd(90)
    names = np.array(["cat", "dog", "eel"])
    df = pd.DataFrame({"task": [f"t{t}" for t in data.task], "worker": [f"w{w}" for w in data.worker],
                       "label": names[data.label]})
    inputs = pd.DataFrame(X, index=[f"t{t}" for t in range(len(X))])[::-1]  # aligned by task id, not by row
    fit = CrowdLayer(mlp, n_epochs=15, batch_size=16, lr=1e-2, seed=0, progress=False)
    labels = fit.fit_predict(df, inputs=inputs)
    assert labels.name == "agg_label" and labels.index.name == "task"
    assert set(labels.unique()) <= set(names)
    assert list(fit.classes_) == list(names)
    order = np.array([int(t[1:]) for t in labels.index])  # task ids (sorted as the CrowdData codes them)
    assert np.mean(labels.to_numpy() == names[truth[order]]) > 0.9
    np.testing.assert_array_equal(fit.predict(X[order]), labels.to_numpy())
    probas = fit.fit_predict_proba(df, inputs=inputs)
    assert list(probas.columns) == list(names) and probas.columns.name == "label"
    with pytest.raises(ValueError, match="lack the rows of 1 task"):
        fit.fit(df, inputs=inputs.iloc[1:])


def test_model_specs_module_and_name():
    data, X, _ = crowd(30)
    module = mlp()
    before = [p.detach().clone() for p in module.parameters()]
    CrowdLayer(module, n_epochs=2, seed=0, progress=False).fit(data)
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))  # the caller's module untouched
    named = CrowdLayer("mlp", n_epochs=1, seed=0, progress=False).fit(data)
    assert named.predict_proba(X).shape == (30, K)
    with pytest.raises(TypeError, match="model must be"):
        CrowdLayer(3, n_epochs=1, progress=False).fit(data)


@pytest.mark.parametrize("params, inputs, valid, error, match", [
    ({"optimizer": "rmsprop"}, None, None, ValueError, "unknown optimizer"),
    ({"n_epochs": -1}, None, None, ValueError, "n_epochs"),
    ({"batch_size": 0}, None, None, ValueError, "batch_size"),
    ({"lr": 0.0}, None, None, ValueError, "lr"),
    ({"lr": float("nan")}, None, None, ValueError, "lr"),
    ({}, np.full((30, 2), np.nan), None, ValueError, "NaN"),
    ({}, np.array([["a", "b"]] * 30), None, TypeError, "numeric"),
    ({}, np.zeros(30), None, ValueError, "one row per task"),
    ({}, None, np.zeros((5, 2)), ValueError, "valid must be"),
    ({}, None, (np.zeros((5, 2)), np.zeros(4, dtype=int)), ValueError, "5 inputs for 4 labels"),
    ({"device": "tpu"}, None, None, ValueError, "unknown device"),
])
def test_clear_errors(params, inputs, valid, error, match):
    data, _, _ = crowd(30)
    with pytest.raises(error, match=match):
        CrowdLayer(mlp, **{"n_epochs": 1, "progress": False, **params}).fit(data, inputs, valid=valid)


def test_predict_before_fit_and_missing_build():
    with pytest.raises(RuntimeError, match="not fitted"):
        CrowdLayer(mlp).predict(np.zeros((2, 2)))
    data, _, _ = crowd(30)
    with pytest.raises(NotImplementedError, match="_build"):
        CrowdLearner(mlp, n_epochs=1, progress=False).fit(data)
