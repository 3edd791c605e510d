"""Learning from crowds end to end: CrowdLayer (MW) and CoNAL.

Both put worker-aware layers on top of a shared classifier ``f`` and train everything
on the raw crowd answers, without an aggregation step. After training, only ``f`` is
kept to predict.

CrowdLayer, "MW" variant (Rodrigues & Pereira, AAAI 2018; WAUM paper appendix A.6)
    For an answer of worker ``j`` on task ``x``, with ``p = softmax(f(x))``::

        h(x, j) = p W_j            W_j in R^{K x K}, initialised at the identity,

    and the loss is the cross-entropy between ``softmax(h)`` and the worker's label
    (the worker-specific output is used as logits, as in the authors' Keras code).
    Rows of ``W_j`` index the true class, columns the answered one.

CoNAL (Chu, Ma & Wang, AAAI 2021; WAUM paper appendix A.7)
    A global confusion ``W_g`` shared by all workers plus local ones ``W_j``, mixed by a
    per-(task, worker) weight::

        omega = sigmoid(<normalize(v(x)), normalize(u_j)>),
        h(x, j) = omega * p W_g + (1 - omega) * p W_j,

    ``v`` = two dense layers on the flattened input (128 then ``embedding_dim``),
    ``u_j`` = a learned worker embedding. Loss (WAUM paper, equation of A.7)::

        L = mean CE(y_ij, softmax(h(x_i, j)))  -  lambda * sum_j ||W_g - W_j||_F^2 .

Implementation notes (what differs from peerannot, the WAUM authors' code):

* Answers are handled as the flat ``(task, worker, label)`` arrays of
  :class:`~crowd.data.CrowdData`: a batch of tasks gathers only the answers those tasks
  received (cost linear in the number of answers). peerannot builds a dense
  ``batch x n_workers x K`` tensor with every worker for every task.
* The confusion matrices act on the classifier's softmax ``p`` as in both original
  papers; peerannot's CoNAL multiplies the raw logits.
* The CoNAL penalty is the squared Frobenius norm written in the WAUM paper; peerannot
  subtracts the (unsquared) norm once per batch. ``W_g`` and ``W_j`` start at ``2 I``
  as in peerannot / CoNAL-pytorch.
* With a validation split, the classifier of the epoch with the best validation accuracy
  (first one on ties) is kept, as :func:`crowd.learning.trainer.train` does for the other strategies
  (peerannot keeps the lowest validation loss); the copy lives in memory.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from crowd.data import CrowdData, as_crowd_data

__all__ = ["CrowdLayerNet", "CoNALNet", "CrowdLayer", "CoNAL", "answers_by_task"]


# ---------------------------------------------------------------- devices / seeds
def _resolve_device(device: str | torch.device | None) -> torch.device:
    from crowd.learning.trainer import get_device  # the package-wide choice: CUDA when present unless overridden

    return get_device(device)


# ------------------------------------------------------------------ answer index
def answers_by_task(data: CrowdData) -> tuple[np.ndarray, np.ndarray]:
    """CSR index of the answers: ``order`` sorts answers by task, ``indptr[t]:indptr[t+1]``
    are the positions (in ``order``) of task ``t``'s answers."""
    order = np.argsort(data.task, kind="stable")
    indptr = np.zeros(data.n_tasks + 1, dtype=np.int64)
    np.cumsum(np.bincount(data.task, minlength=data.n_tasks), out=indptr[1:])
    return order, indptr


def _gather_answers(batch_tasks: np.ndarray, order: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Answer indices of ``batch_tasks`` and, for each, the row of its task in the batch."""
    starts, stops = indptr[batch_tasks], indptr[batch_tasks + 1]
    counts = stops - starts
    rows = np.repeat(np.arange(len(batch_tasks)), counts)
    # positions start_r, start_r + 1, ..., for every task r of the batch, without a Python loop
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return order[np.repeat(starts, counts) + offsets], rows


# ------------------------------------------------------------------------ modules
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


# ---------------------------------------------------------------------- learners
@dataclass
class _DeepCrowdLearner:
    """Shared fit loop (task batches, gathered answers, Adam or SGD, MultiStepLR)."""

    classifier_factory: Callable[[], nn.Module]
    n_epochs: int = 100
    batch_size: int = 64
    lr: float = 5e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    seed: int = 0
    device: str | torch.device | None = None
    progress: bool = True
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    history_: dict[str, list[float]] = field(default_factory=dict, init=False, repr=False)

    # subclasses build the network and may add a penalty
    def _build(self, data: CrowdData, features: torch.Tensor) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _penalty(self, net: nn.Module) -> torch.Tensor | None:
        return None

    def fit(self, data: Any, features: np.ndarray | None = None, valid: tuple[np.ndarray, np.ndarray] | None = None):
        """Train on the answers of ``data`` (CrowdData or anything :func:`as_crowd_data` reads).

        ``features`` (n_tasks, ...) default to ``data.features``. ``valid = (X, y)`` with gold
        labels keeps the classifier of the epoch with the best validation accuracy.
        """
        data = as_crowd_data(data)
        data.require_all_tasks_answered()
        X = data.features if features is None else features
        if X is None:
            raise ValueError("no features: pass features= or give a CrowdData with features")
        if len(X) != data.n_tasks:
            raise ValueError(f"features has {len(X)} rows for {data.n_tasks} tasks")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use 'adam' or 'sgd'")
        device = _resolve_device(self.device)
        torch.manual_seed(self.seed)
        np_rng = np.random.default_rng(self.seed)
        generator = torch.Generator().manual_seed(self.seed)  # augmentation randomness

        X_t = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        worker_t = torch.as_tensor(data.worker)
        label_t = torch.as_tensor(data.label)
        net = self._build(data, X_t).to(device)
        params = net.parameters()
        if self.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.milestones), gamma=self.gamma)
        order, indptr = answers_by_task(data)

        if valid is not None:
            Xv = torch.as_tensor(np.asarray(valid[0]), dtype=torch.float32)
            yv = np.asarray(valid[1])
        best_val, best_state = -np.inf, None
        self.history_ = {"train_loss": [], "valid_accuracy": []}
        for _ in tqdm(range(self.n_epochs), desc=type(self).__name__, disable=not self.progress, leave=False):
            net.train()
            perm = np_rng.permutation(data.n_tasks)
            total, n_seen = 0.0, 0
            for start in range(0, data.n_tasks, self.batch_size):
                batch = perm[start:start + self.batch_size]
                ans, rows = _gather_answers(batch, order, indptr)
                xb = X_t[batch].to(device)
                if self.transform is not None:
                    xb = self.transform(xb, generator)
                out = net(xb, torch.as_tensor(rows, device=device), worker_t[ans].to(device))
                loss = F.cross_entropy(out, label_t[ans].to(device))
                penalty = self._penalty(net)
                if penalty is not None:
                    loss = loss + penalty
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(ans)
                n_seen += len(ans)
            sched.step()
            self.history_["train_loss"].append(total / n_seen)
            if valid is not None:
                val_acc = float(np.mean(_predict_logits(net.classifier, Xv, device).argmax(1).numpy() == yv))
                self.history_["valid_accuracy"].append(val_acc)
                if val_acc > best_val:
                    best_val, best_state = val_acc, copy.deepcopy(net.classifier.state_dict())
        if best_state is not None:
            net.classifier.load_state_dict(best_state)
        net.eval()
        self.net_ = net
        self.classifier_ = net.classifier
        self.device_ = device
        self.n_classes_ = data.n_classes
        self._store_fitted(net)
        return self

    def _store_fitted(self, net: nn.Module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities of the trained classifier, (n, K)."""
        logits = _predict_logits(self.classifier_, torch.as_tensor(np.asarray(X), dtype=torch.float32),
                                 self.device_, batch_size)
        return logits.softmax(dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


@torch.no_grad()
def _predict_logits(model: nn.Module, X: torch.Tensor, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = torch.cat([model(X[i:i + batch_size].to(device)).cpu() for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return out


@dataclass
class CrowdLayer(_DeepCrowdLearner):
    """CrowdLayer MW (Rodrigues & Pereira 2018): ``h(x, j) = softmax(f(x)) W_j``, CE on softmax(h).

    ``classifier_factory()`` returns a fresh network mapping features to K logits.
    Fitted: ``classifier_``, ``net_``, ``confusions_`` (n_workers, K, K) rows = true class,
    ``history_``.
    """

    def _build(self, data: CrowdData, features: torch.Tensor) -> nn.Module:
        return CrowdLayerNet(self.classifier_factory(), data.n_workers, data.n_classes)

    def _store_fitted(self, net: nn.Module) -> None:
        self.confusions_ = net.confusion.detach().cpu().numpy()


@dataclass
class CoNAL(_DeepCrowdLearner):
    """CoNAL (Chu et al. 2021) with the WAUM paper's loss ``CE - lambda_ * sum_j ||W_g - W_j||_F^2``.

    Fitted: ``classifier_``, ``net_``, ``global_confusion_`` (K, K), ``confusions_``
    (n_workers, K, K), ``history_``.
    """

    lambda_: float = 0.0
    embedding_dim: int = 20
    hidden_dim: int = 128

    def _build(self, data: CrowdData, features: torch.Tensor) -> nn.Module:
        input_dim = int(np.prod(features.shape[1:]))
        return CoNALNet(self.classifier_factory(), data.n_workers, data.n_classes, input_dim,
                        embedding_dim=self.embedding_dim, hidden_dim=self.hidden_dim)

    def _penalty(self, net: nn.Module) -> torch.Tensor | None:
        if self.lambda_ == 0:
            return None
        return -self.lambda_ * net.penalty()

    def _store_fitted(self, net: nn.Module) -> None:
        self.global_confusion_ = net.global_confusion.detach().cpu().numpy()
        self.confusions_ = net.local_confusion.detach().cpu().numpy()
