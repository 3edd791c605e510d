"""Max-MIG (Cao, Xu, Kong & Wang, "Max-MIG: an information theoretic approach for joint learning
from crowds", ICLR 2019).

Two forecasters of the true class are trained together:

* the **data classifier** ``h(x_i) = softmax(f(x_i))`` (any network ``f``);
* the **crowds aggregator** ``g``, a weighted vote of the task's answers: with one K x K weight
  matrix ``W_j`` per worker and the class prior ``p``,

      s_ik = log p_k + sum_{answers (i, j, l)} W_j[k, l],        g_i = softmax_k(s_i).

``exp(W_j[k, .])`` normalised over the answered label is worker ``j``'s confusion row for true
class ``k``, so ``g_i`` is the Dawid-Skene posterior of task ``i`` under those confusions.

Both are trained by maximising the f-mutual-information gain between them, estimated on the matched
pairs ``(h(x_i), g_i)`` and the unmatched pairs ``(h(x_i), g_{i'})``, ``i != i'``, of a batch of B tasks.
With ``m_{ii'} = sum_k h_k(x_i) g_{i'k} / p_k`` and the KL divergence (``f(t) = t log t``, the
f the paper uses and the authors' code trains),

      MIG^f = 1/B sum_i (1 + log m_ii)  -  1/(B (B - 1)) sum_{i != i'} m_{ii'},

and the loss of a batch is ``-MIG^f``. After training, ``h`` predicts (``predict_proba``); on the
training tasks, ``posteriors_`` is the paper's data-crowds forecaster ``zeta_i ∝ h(x_i) * g_i / p``.

Facts from the authors' code (Newbeeer/Max-MIG, ``Labelme/``), kept here:

* ``W_j = log(T_j + 0.01)`` at the start, with ``T_j`` the "MLE initialisation" of their appendix
  B.2: ``T_j[k, l] = sum_{i: j answered l} mv_i[k] / sum_{i: j answered} mv_i[k]``, ``mv_i`` the
  task's vote shares (rows of a class ``k`` without mass stay 0 before the ``+ 0.01``);
* the prior stays uniform (their prior parameter never receives a gradient); ``learn_prior=True``
  learns it (``p = softmax(a)``) as the paper's joint maximisation over ``(h, g, p)`` describes;
* KL-MIG; Adam with learning rate 1e-4 for both ``h`` and ``g``; batch 64; 20 epochs; the LabelMe
  classifier is Rodrigues' head (Dense(128) ReLU, Dropout(0.5), Dense(K)) on the 8192-d VGG16 features.

What differs, on purpose: answers stay the flat ``(task, worker, label)`` arrays (the aggregator's
score is a gather and an ``index_add`` over the batch's answers; the authors build a dense
``batch x workers x K`` one-hot tensor); the log of ``m_ii`` is floored at a fixed tiny value where
the authors add ``U(0, 1e-4)`` noise, so CPU runs are deterministic; the last, smaller batch of an
epoch is used when it holds at least 2 tasks (the estimator needs one unmatched pair; the authors
drop every incomplete batch); the authors report the best TEST accuracy over epochs, here the last
epoch is kept (or the best validation epoch with ``valid=``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from crowd.data import CrowdData, as_crowd_data
from crowd.learning.base import CrowdLearner
from crowd.learning.trainer import TrainResult, make_optimizer, predict_logits, train

__all__ = ["MaxMIGNet", "MaxMIG", "mig_kl_loss", "mv_confusion_init"]

#: floor of m_ii before its log (softmax outputs can underflow in float32)
_TINY = 1e-30


def mv_confusion_init(data: CrowdData, smoothing: float = 0.01) -> np.ndarray:
    """``log(T_j + smoothing)`` for every worker (n_workers, K, K), rows = true class: the authors'
    initialisation of the aggregator's weights from the vote shares of each task (linear in the answers)."""
    K = data.n_classes
    counts = data.vote_counts().astype(np.float64)
    shares = counts / counts.sum(axis=1, keepdims=True)
    mass = shares[data.task]  # (n_answers, K): the vote shares of the answer's task
    T = np.zeros((data.n_workers, K, K))
    np.add.at(T, (data.worker, slice(None), data.label), mass)  # T[j, :, l] += mv_i
    norm = np.zeros((data.n_workers, K))
    np.add.at(norm, data.worker, mass)
    norm[norm == 0] = 1.0
    T /= norm[:, :, None]
    return np.log(T + smoothing)


def mig_kl_loss(h: torch.Tensor, g: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``-MIG^f`` (KL) of a batch: ``h``, ``g`` (B, K) distributions of the same B tasks, ``prior`` (K,).

    ``m = (h / p) g^T``; matched pairs are the diagonal, unmatched the rest (B >= 2).
    """
    B = h.shape[0]
    if B < 2:
        raise ValueError("the MIG estimator needs at least 2 tasks in a batch")
    m = (h / prior) @ g.T
    diag = torch.diagonal(m)
    matched = (1.0 + torch.log(diag.clamp_min(_TINY))).mean()
    unmatched = (m.sum() - diag.sum()) / (B * (B - 1))
    return -(matched - unmatched)


class MaxMIGNet(nn.Module):
    """Data classifier ``f`` and crowds aggregator (per-worker weights ``W``, log-prior)."""

    def __init__(self, classifier: nn.Module, weights: torch.Tensor, learn_prior: bool = False) -> None:
        super().__init__()
        self.classifier = classifier
        self.weights = nn.Parameter(weights.clone().float())  # (n_workers, K, K): W_j[k, l]
        K = weights.shape[1]
        log_prior = torch.full((K,), -float(np.log(K)))
        if learn_prior:
            self.prior_logits = nn.Parameter(log_prior)
        else:
            self.register_buffer("prior_logits", log_prior)

    def log_prior(self) -> torch.Tensor:
        return torch.log_softmax(self.prior_logits, dim=0)

    def aggregator_scores(self, n_rows: int, rows: torch.Tensor, workers: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
        """``s_i = log p + sum over the answers of row i of W_worker[:, label]`` (n_rows, K), sparse."""
        per_answer = self.weights[workers, :, labels]  # (n_answers, K)
        scores = self.log_prior().unsqueeze(0).expand(n_rows, -1).clone()
        return scores.index_add(0, rows, per_answer)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None, workers: torch.Tensor | None = None,
                labels: torch.Tensor | None = None):
        """The classifier's logits; with the answers of the batch, also the aggregator's scores."""
        logits = self.classifier(x)
        if workers is None:
            return logits
        return logits, self.aggregator_scores(x.shape[0], rows, workers, labels)


class MaxMIG(CrowdLearner):
    """Max-MIG (Cao et al., ICLR 2019): classifier and aggregator trained by maximising the KL
    f-mutual-information gain between them (see the module docstring).

    Parameters
    ----------
    model : the classifier ``f`` (see :class:`~crowd.learning.base.CrowdLearner`); ``"rodrigues"``
        is the authors' LabelMe network.
    learn_prior : learn the class prior ``p`` (the paper) instead of keeping it uniform (the code).
    aggregator_lr : learning rate of the aggregator (``W`` and the prior); None = ``lr`` (the code: both 1e-4).
    init_smoothing : the ``0.01`` of ``W_j = log(T_j + 0.01)``.
    Other parameters: :class:`~crowd.learning.base.CrowdLearner`'s; the defaults are the authors'
    (Adam, lr 1e-4, batch 64, 20 epochs).

    Fitted: ``model_`` (:class:`MaxMIGNet`), ``classifier_``, ``weights_`` (n_workers, K, K) = ``W``,
    ``confusions_`` (rows = true class: ``softmax`` of ``W_j``'s rows), ``priors_`` (K,),
    ``aggregator_posteriors_`` = ``g`` and ``posteriors_`` = ``zeta`` on the training tasks (n_tasks, K),
    ``history_``, ``best_epoch_``, ``device_``, ``n_classes_``, ``n_workers_``.
    """

    def __init__(self, model: Any = "rodrigues", *, learn_prior: bool = False, aggregator_lr: float | None = None,
                 init_smoothing: float = 0.01, n_epochs: int = 20, batch_size: int = 64, lr: float = 1e-4,
                 **kwargs: Any) -> None:
        super().__init__(model, n_epochs=n_epochs, batch_size=batch_size, lr=lr, **kwargs)
        self.learn_prior, self.aggregator_lr, self.init_smoothing = learn_prior, aggregator_lr, init_smoothing

    # ------------------------------------------------------------------ hooks
    def _check_params(self) -> None:
        super()._check_params()
        if self.batch_size < 2:
            raise ValueError(f"Max-MIG compares tasks within a batch: batch_size must be >= 2, got {self.batch_size}")
        if self.aggregator_lr is not None and not self.aggregator_lr > 0:
            raise ValueError(f"aggregator_lr must be > 0, got {self.aggregator_lr}")
        if not self.init_smoothing > 0:
            raise ValueError(f"init_smoothing must be > 0 (it is inside a log), got {self.init_smoothing}")

    def _build(self, data: CrowdData, inputs: torch.Tensor) -> nn.Module:
        weights = torch.as_tensor(mv_confusion_init(data, self.init_smoothing), dtype=torch.float32)
        return MaxMIGNet(self._new_classifier(data, inputs), weights, learn_prior=self.learn_prior)

    def _batch_loss(self, model: nn.Module, batch: list[torch.Tensor], tasks: torch.Tensor):
        x = batch[0]
        if x.shape[0] < 2:  # a last batch of one task has no unmatched pair: no step
            return (model.weights.sum() * 0.0), 0.0
        answers = self.answers_.gather(tasks)
        logits, scores = model(x, answers.rows, answers.worker, answers.label)
        h, g = torch.softmax(logits, dim=1), torch.softmax(scores, dim=1)
        return mig_kl_loss(h, g, model.log_prior().exp()), x.shape[0]

    def _fit(self, data: CrowdData, inputs: torch.Tensor, valid: tuple[Any, Any] | None) -> TrainResult:
        if data.n_tasks < 2:
            raise ValueError(f"Max-MIG needs at least 2 tasks, got {data.n_tasks}")
        kwargs = self._train_kwargs()
        if self.aggregator_lr is not None:
            def optimizer(params):  # noqa: ARG001 - the groups are taken from the model below
                return make_optimizer([
                    {"params": list(net.classifier.parameters()), "lr": self.lr},
                    {"params": [p for n, p in net.named_parameters() if not n.startswith("classifier.")],
                     "lr": self.aggregator_lr},
                ], self.optimizer, self.lr, self.momentum, self.weight_decay)

            net = self._new_model(data, inputs)
            kwargs["optimizer"] = optimizer
            return train(net, inputs, batch_loss=self._batch_loss, valid=valid, keep_best=valid is not None,
                         desc=type(self).__name__, **kwargs)
        return train(lambda: self._build(data, inputs), inputs, batch_loss=self._batch_loss, valid=valid,
                     keep_best=valid is not None, desc=type(self).__name__, **kwargs)

    def fit(self, data: Any, inputs: Any = None, valid: tuple[Any, Any] | None = None) -> "MaxMIG":
        data = as_crowd_data(data)
        super().fit(data, inputs, valid)
        self._store_posteriors(data, self._check_inputs(data, inputs))
        return self

    def _store_fitted(self, model: nn.Module) -> None:
        self.classifier_ = model.classifier
        W = model.weights.detach().cpu()
        self.weights_ = W.numpy()
        self.confusions_ = torch.softmax(W, dim=2).numpy()
        self.priors_ = model.log_prior().detach().exp().cpu().numpy()

    @torch.no_grad()
    def _store_posteriors(self, data: CrowdData, X: torch.Tensor) -> None:
        """``g`` and ``zeta ∝ h g / p`` on the training tasks (one pass over the answers)."""
        model = self.model_
        dev = self.device_
        scores = model.aggregator_scores(data.n_tasks, torch.as_tensor(data.task, device=dev),
                                         torch.as_tensor(data.worker, device=dev),
                                         torch.as_tensor(data.label, device=dev)).cpu()
        log_h = torch.log_softmax(predict_logits(model, X, device=dev), dim=1)
        log_prior = model.log_prior().cpu()
        self.aggregator_posteriors_ = torch.softmax(scores, dim=1).numpy()
        self.posteriors_ = torch.softmax(log_h + torch.log_softmax(scores, dim=1) - log_prior, dim=1).numpy()
