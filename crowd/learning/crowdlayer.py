"""CrowdLayer, "MW" variant (Rodrigues & Pereira, "Deep learning from crowds", AAAI 2018; WAUM paper appendix A.6).

A worker-aware layer on top of a shared classifier ``f``, trained on the raw crowd answers without
an aggregation step; after training only ``f`` predicts. For an answer of worker ``j`` on task ``x``,
with ``p = softmax(f(x))``::

    h(x, j) = p W_j            W_j in R^{K x K}, initialised at the identity,

and the loss is the mean over the batch's answers of the cross-entropy between ``softmax(h)`` and
the worker's label (the worker-specific output is used as logits, as in the authors' Keras code).
Rows of ``W_j`` index the true class, columns the answered one.

Implementation notes (what differs from peerannot, the WAUM authors' code):

* Answers are the flat ``(task, worker, label)`` arrays of :class:`~crowd.data.CrowdData`: a batch of
  tasks gathers only the answers those tasks received (cost linear in the number of answers);
  peerannot builds a dense ``batch x n_workers x K`` tensor with every worker for every task.
* With a validation split the whole network of the epoch with the best validation accuracy (first
  on ties) is kept (peerannot keeps the lowest validation loss).
"""

from __future__ import annotations

import torch
from torch import nn

from crowd.data import CrowdData
from crowd.learning.base import CrowdLearner

__all__ = ["CrowdLayerNet", "CrowdLayer"]


class CrowdLayerNet(nn.Module):
    """Classifier + one K x K matrix per worker (initialised at the identity)."""

    def __init__(self, classifier: nn.Module, n_workers: int, n_classes: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.confusion = nn.Parameter(torch.eye(n_classes).repeat(n_workers, 1, 1))

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None, workers: torch.Tensor | None = None):
        """Without workers: the classifier's logits. With ``rows`` (task row in ``x`` of each
        answer) and ``workers``: the per-answer outputs ``softmax(f(x))[rows] @ W_worker``."""
        logits = self.classifier(x)
        if workers is None:
            return logits
        p = logits.softmax(dim=1)[rows]
        return torch.bmm(p.unsqueeze(1), self.confusion[workers]).squeeze(1)


class CrowdLayer(CrowdLearner):
    """CrowdLayer MW (Rodrigues & Pereira 2018): ``h(x, j) = softmax(f(x)) W_j``, CE on softmax(h).

    ``model`` is the classifier ``f`` (a factory returning a fresh network mapping inputs to K
    logits; see :class:`~crowd.learning.base.CrowdLearner` for it and the training parameters).
    Fitted: ``model_`` (:class:`CrowdLayerNet`), ``classifier_`` (its ``f``), ``confusions_``
    (n_workers, K, K), rows = true class, ``history_``, ``best_epoch_``, ``device_``, ``n_classes_``.
    """

    def _build(self, data: CrowdData, inputs: torch.Tensor) -> nn.Module:
        return CrowdLayerNet(self._new_classifier(data, inputs), data.n_workers, data.n_classes)

    def _store_fitted(self, model: nn.Module) -> None:
        self.classifier_ = model.classifier
        self.confusions_ = model.confusion.detach().cpu().numpy()
