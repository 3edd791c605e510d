"""CoNAL, common noise adaptation layers (Chu, Ma & Wang, AAAI 2021; WAUM paper appendix A.7).

A global confusion ``W_g`` shared by all workers plus local ones ``W_j``, on top of a shared
classifier ``f``, mixed by a per-(task, worker) weight; with ``p = softmax(f(x))``::

    omega = sigmoid(<normalize(v(x)), normalize(u_j)>),
    h(x, j) = omega * p W_g + (1 - omega) * p W_j,

``v`` = two dense layers on the flattened input (``hidden_dim`` = 128 then ``embedding_dim``),
``u_j`` = a learned worker embedding. Loss (WAUM paper, equation of A.7), per batch::

    L = mean over the batch's answers of CE(y_ij, softmax(h(x_i, j)))  -  lambda * sum_j ||W_g - W_j||_F^2 .

Implementation notes (what differs from peerannot, the WAUM authors' code):

* The confusion matrices act on the classifier's softmax ``p`` as in both original papers;
  peerannot's CoNAL multiplies the raw logits.
* The penalty is the squared Frobenius norm written in the WAUM paper; peerannot subtracts the
  (unsquared) norm once per batch. ``W_g`` and ``W_j`` start at ``2 I`` as in peerannot / CoNAL-pytorch.
* Answers are gathered per batch of tasks from the flat arrays (no dense tasks x workers tensor);
  with a validation split the network of the best validation epoch is kept (peerannot: lowest loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crowd.data import CrowdData
from crowd.learning.base import CrowdLearner

__all__ = ["CoNALNet", "CoNAL"]


class CoNALNet(nn.Module):
    """Classifier + global and local confusions mixed by an instance/worker weight."""

    def __init__(self, classifier: nn.Module, n_workers: int, n_classes: int, input_dim: int,
                 embedding_dim: int = 20, hidden_dim: int = 128, init_scale: float = 2.0) -> None:
        super().__init__()
        self.classifier = classifier
        self.instance_embedding = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.Linear(hidden_dim, embedding_dim))
        self.worker_embedding = nn.Embedding(n_workers, embedding_dim)
        self.global_confusion = nn.Parameter(init_scale * torch.eye(n_classes))
        self.local_confusion = nn.Parameter(init_scale * torch.eye(n_classes).repeat(n_workers, 1, 1))

    def omega(self, x: torch.Tensor, rows: torch.Tensor, workers: torch.Tensor) -> torch.Tensor:
        """Weight of the global confusion for each answer, in (0, 1)."""
        v = F.normalize(self.instance_embedding(torch.flatten(x, start_dim=1)), dim=1)[rows]
        u = F.normalize(self.worker_embedding(workers), dim=1)
        return torch.sigmoid((v * u).sum(dim=1))

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None, workers: torch.Tensor | None = None):
        """Without workers: the classifier's logits; with them: the per-answer mixed outputs ``h``."""
        logits = self.classifier(x)
        if workers is None:
            return logits
        p = logits.softmax(dim=1)[rows]
        omega = self.omega(x, rows, workers).unsqueeze(1)
        global_out = p @ self.global_confusion
        local_out = torch.bmm(p.unsqueeze(1), self.local_confusion[workers]).squeeze(1)
        return omega * global_out + (1 - omega) * local_out

    def penalty(self) -> torch.Tensor:
        """sum_j ||W_g - W_j||_F^2."""
        return ((self.local_confusion - self.global_confusion.unsqueeze(0)) ** 2).sum()


class CoNAL(CrowdLearner):
    """CoNAL (Chu et al. 2021) with the WAUM paper's loss ``CE - lambda_ * sum_j ||W_g - W_j||_F^2``.

    ``lambda_`` (the WAUM paper: 0 and 1e-4), ``embedding_dim``, ``hidden_dim``: see the module
    docstring; the other parameters are :class:`~crowd.learning.base.CrowdLearner`'s.
    Fitted: ``model_`` (:class:`CoNALNet`), ``classifier_``, ``global_confusion_`` (K, K),
    ``confusions_`` (n_workers, K, K), ``history_``, ``best_epoch_``, ``device_``, ``n_classes_``.
    """

    def __init__(self, model: Any, *, lambda_: float = 0.0, embedding_dim: int = 20, hidden_dim: int = 128,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.lambda_, self.embedding_dim, self.hidden_dim = lambda_, embedding_dim, hidden_dim

    def _build(self, data: CrowdData, inputs: torch.Tensor) -> nn.Module:
        input_dim = int(np.prod(inputs.shape[1:]))
        return CoNALNet(self._new_classifier(data, inputs), data.n_workers, data.n_classes, input_dim,
                        embedding_dim=self.embedding_dim, hidden_dim=self.hidden_dim)

    def _batch_loss(self, model: nn.Module, batch: list[torch.Tensor], tasks: torch.Tensor):
        loss, n_answers = super()._batch_loss(model, batch, tasks)
        if self.lambda_ != 0:
            loss = loss + (-self.lambda_ * model.penalty())
        return loss, n_answers

    def _store_fitted(self, model: nn.Module) -> None:
        self.classifier_ = model.classifier
        self.global_confusion_ = model.global_confusion.detach().cpu().numpy()
        self.confusions_ = model.local_confusion.detach().cpu().numpy()
