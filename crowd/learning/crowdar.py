"""CrowdAR, learning from crowds with annotation reliability (Cao, Chen, Huang, Shen & Huang, SIGIR 2023).

A classifier ``q_i = softmax(f(x_i))`` is trained through per-worker confusion matrices, on soft
targets that trust each answer as much as its predicted reliability. For an answer ``l`` of
worker ``j`` on task ``i``:

* instance difficulty (Eq. 1): ``d_i = sigmoid(W_2 sigmoid(W_1 u_i))`` in [0, 1]^K, ``u_i`` the
  classifier's embedding of ``x_i`` (its last hidden layer, detached);
* worker expertise: ``e_j = sigmoid(E_j)`` in [0, 1]^K (``E`` Glorot-normal at the start);
* annotation reliability (Eq. 2): ``m_ij = sigmoid(w_3 . ((e_j - d_i) * q_i) + b_3)`` with
  ``w_3 >= 0`` (clipped after every step, so more expertise never lowers the reliability);
* soft annotation (Eq. 3): ``z_ij = m_ij onehot(l) + (1 - m_ij) / K``;
* predicted annotation (Eq. 4): ``softmax(q_i C_j)``, ``C_j`` a K x K matrix (identity at the start);
* loss (Eq. 5), over the batch's answers A:

      L = 1/|A| sum_A [ lambda CE(z_ij, softmax(q_i C_j)) + (1 - lambda) BCE(m_ij, 1[argmax q_i = l]) ],

  ``lambda`` = 0.9.

After training the classifier predicts (``predict_proba``); ``reliability_`` holds ``m`` of every
training answer (the paper uses it to rate the crowd's answers).

Sources and what is ours: no code of the authors is public, and the paper's text was not at hand
here. The equations above are as written, with their equation numbers, in a public third-party
PyTorch reimplementation (ies-research/multi-annotator-machine-learning,
``maml/classifiers/_crowd_ar.py``; settings ``classifier/crowdar.yaml``: embedding 128, lambda 0.9),
read for these facts only. The reliability gradient reaches ``m`` through both terms and ``q``
through the reliability as there. Not from the paper (unknown here), our choices: Adam, lr 1e-3,
batch 64, 50 epochs; the classifier is the package's ``"rodrigues"`` head (Dense(128) ReLU,
Dropout(0.5), Dense(K)), which MMLC says it shares with CrowdAR. Answers stay the flat
``(task, worker, label)`` arrays (one row per answer, never tasks x workers).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crowd.data import CrowdData, as_crowd_data
from crowd.learning.base import CrowdLearner

__all__ = ["ReliabilityNet", "CrowdARNet", "CrowdAR", "split_classifier"]


def split_classifier(classifier: nn.Module) -> tuple[nn.Module, nn.Linear]:
    """``(embedding, head)`` of a classifier whose layers are an ``nn.Sequential`` (itself or its
    ``net`` attribute, as the package's MLP and Rodrigues heads) ending in an ``nn.Linear``."""
    seq = classifier if isinstance(classifier, nn.Sequential) else getattr(classifier, "net", None)
    if not isinstance(seq, nn.Sequential) or len(seq) < 2 or not isinstance(seq[-1], nn.Linear):
        raise ValueError(
            f"CrowdAR reads the instance difficulty from the classifier's last hidden layer, but "
            f"{type(classifier).__name__} is not an nn.Sequential (or has no .net Sequential) ending in "
            f"nn.Linear; pass such a classifier or difficulty_from='inputs'")
    return nn.Sequential(*list(seq)[:-1]), seq[-1]


class ReliabilityNet(nn.Module):
    """``m = sigmoid(w_3 . ((e_j - d_i) * q_i) + b_3)``, ``d_i`` from the instance, ``e_j`` per worker."""

    def __init__(self, input_dim: int, n_workers: int, n_classes: int, embed_dim: int = 128) -> None:
        super().__init__()
        self.difficulty_hidden = nn.Linear(input_dim, embed_dim)
        self.difficulty_out = nn.Linear(embed_dim, n_classes)
        self.expertise_logits = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_workers, n_classes)))
        self.combine = nn.Linear(n_classes, 1)
        self.clip()

    @torch.no_grad()
    def clip(self) -> None:
        """``w_3 >= 0`` (the monotonicity constraint of Eq. 2)."""
        self.combine.weight.clamp_(min=0.0)

    def difficulty(self, u: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.difficulty_out(torch.sigmoid(self.difficulty_hidden(u))))

    def forward(self, u: torch.Tensor, q: torch.Tensor, rows: torch.Tensor, workers: torch.Tensor) -> torch.Tensor:
        """Reliability of each answer (n_answers,): ``u``, ``q`` per task row, ``rows``/``workers`` per answer."""
        d = self.difficulty(u)[rows]
        e = torch.sigmoid(self.expertise_logits[workers])
        return torch.sigmoid(self.combine((e - d) * q[rows])).squeeze(1)


class CrowdARNet(nn.Module):
    """Classifier (embedding + head), per-worker confusions ``C_j`` and the reliability network."""

    def __init__(self, embedding: nn.Module, head: nn.Linear, n_workers: int, n_classes: int,
                 difficulty_dim: int, embed_dim: int = 128, difficulty_from: str = "embedding") -> None:
        super().__init__()
        self.embedding, self.head = embedding, head
        self.confusion = nn.Parameter(torch.eye(n_classes).repeat(n_workers, 1, 1))
        self.reliability = ReliabilityNet(difficulty_dim, n_workers, n_classes, embed_dim)
        self.difficulty_from = difficulty_from

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None, workers: torch.Tensor | None = None):
        """The classifier's logits; with the batch's answers also the per-answer annotation logits
        ``q_i C_j`` and reliabilities ``m_ij``."""
        u = self.embedding(x)
        logits = self.head(u)
        if workers is None:
            return logits
        q = logits.softmax(dim=1)
        source = u if self.difficulty_from == "embedding" else torch.flatten(x, start_dim=1)
        annotation_logits = torch.bmm(q[rows].unsqueeze(1), self.confusion[workers]).squeeze(1)
        reliability = self.reliability(source.detach(), q, rows, workers)
        return logits, annotation_logits, reliability


def crowdar_loss(logits: torch.Tensor, annotation_logits: torch.Tensor, reliability: torch.Tensor,
                 rows: torch.Tensor, labels: torch.Tensor, lambda_: float) -> torch.Tensor:
    """Eq. 5 averaged over the answers: ``lambda`` CE on the soft annotations + ``(1 - lambda)`` BCE
    of the reliability against "the classifier's argmax equals the answer"."""
    K = annotation_logits.shape[1]
    onehot = F.one_hot(labels, K).to(annotation_logits.dtype)
    soft = reliability.unsqueeze(1) * onehot + (1.0 - reliability.unsqueeze(1)) / K
    annotation = -(soft * annotation_logits.log_softmax(dim=1)).sum(dim=1)
    agrees = (logits.argmax(dim=1)[rows] == labels).to(reliability.dtype)
    reliable = F.binary_cross_entropy(reliability, agrees, reduction="none")
    return (lambda_ * annotation + (1.0 - lambda_) * reliable).mean()


class CrowdAR(CrowdLearner):
    """CrowdAR (Cao et al., SIGIR 2023): confusions + annotation reliability (see the module docstring).

    Parameters
    ----------
    model : the classifier; its layers must be an ``nn.Sequential`` ending in ``nn.Linear`` (e.g.
        ``"rodrigues"``, ``"mlp"``) so that its last hidden layer feeds the difficulty network.
    lambda_ : weight of the annotation term (the reliability term gets ``1 - lambda_``), default 0.9.
    embed_dim : width of the difficulty network's hidden layer (128).
    difficulty_from : ``"embedding"`` (the classifier's last hidden layer, detached) or ``"inputs"``.
    Other parameters: :class:`~crowd.learning.base.CrowdLearner`'s (defaults ours: Adam, lr 1e-3,
    batch 64, 50 epochs).

    Fitted: ``model_`` (:class:`CrowdARNet`), ``classifier_`` (embedding + head), ``confusions_``
    (n_workers, K, K), rows = true class, ``expertise_`` (n_workers, K) = ``sigmoid(E)``,
    ``reliability_`` (n_answers,) ``m`` of every training answer (in the data's answer order),
    ``difficulty_`` (n_tasks, K), ``history_``, ``best_epoch_``, ``device_``, ``n_classes_``, ``n_workers_``.
    """

    def __init__(self, model: Any = "rodrigues", *, lambda_: float = 0.9, embed_dim: int = 128,
                 difficulty_from: Literal["embedding", "inputs"] = "embedding", n_epochs: int = 50,
                 batch_size: int = 64, lr: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(model, n_epochs=n_epochs, batch_size=batch_size, lr=lr, **kwargs)
        self.lambda_, self.embed_dim, self.difficulty_from = lambda_, embed_dim, difficulty_from

    def _check_params(self) -> None:
        super()._check_params()
        if not 0.0 <= self.lambda_ <= 1.0:
            raise ValueError(f"lambda_ must be in [0, 1], got {self.lambda_}")
        if int(self.embed_dim) != self.embed_dim or self.embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive integer, got {self.embed_dim}")
        if self.difficulty_from not in ("embedding", "inputs"):
            raise ValueError(f"difficulty_from must be 'embedding' or 'inputs', got {self.difficulty_from!r}")

    def _build(self, data: CrowdData, inputs: torch.Tensor) -> nn.Module:
        classifier = self._new_classifier(data, inputs)
        if self.difficulty_from == "embedding":
            embedding, head = split_classifier(classifier)
            dim = head.in_features
        else:  # any classifier; the difficulty network reads the flattened inputs
            embedding, head, dim = classifier, nn.Identity(), int(np.prod(inputs.shape[1:]))
        return CrowdARNet(embedding, head, data.n_workers, data.n_classes, dim, int(self.embed_dim),
                          self.difficulty_from)

    def _batch_loss(self, model: nn.Module, batch: list[torch.Tensor], tasks: torch.Tensor):
        model.reliability.clip()  # after the previous step: w_3 >= 0
        answers = self.answers_.gather(tasks)
        logits, annotation_logits, reliability = model(batch[0], answers.rows, answers.worker)
        loss = crowdar_loss(logits, annotation_logits, reliability, answers.rows, answers.label, float(self.lambda_))
        return loss, len(answers)

    def fit(self, data: Any, inputs: Any = None, valid: tuple[Any, Any] | None = None) -> "CrowdAR":
        data = as_crowd_data(data)
        super().fit(data, inputs, valid)
        self._store_reliability(data, self._check_inputs(data, inputs))
        return self

    def _store_fitted(self, model: nn.Module) -> None:
        model.reliability.clip()
        self.classifier_ = nn.Sequential(model.embedding, model.head)
        self.confusions_ = model.confusion.detach().cpu().numpy()
        self.expertise_ = torch.sigmoid(model.reliability.expertise_logits).detach().cpu().numpy()

    @torch.no_grad()
    def _store_reliability(self, data: CrowdData, X: torch.Tensor, batch_size: int = 1024) -> None:
        """``m`` of every training answer and ``d`` of every task, in eval mode, batch by batch."""
        model, dev = self.model_, self.device_
        reliability = np.empty(data.n_answers, dtype=np.float32)
        difficulty = []
        for start in range(0, data.n_tasks, batch_size):
            tasks = np.arange(start, min(start + batch_size, data.n_tasks))
            x = X[tasks].to(dev)
            answers = self.answers_.gather(tasks)
            _, _, m = model(x, answers.rows, answers.worker)
            reliability[answers.index] = m.cpu().numpy()
            u = model.embedding(x) if self.difficulty_from == "embedding" else torch.flatten(x, start_dim=1)
            difficulty.append(model.reliability.difficulty(u).cpu().numpy())
        self.reliability_ = reliability
        self.difficulty_ = np.concatenate(difficulty)
