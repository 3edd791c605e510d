"""The estimator base of the networks trained on crowd answers ("learning from crowds" end to end).

:class:`CrowdLearner` gives every such model (CrowdLayer, CoNAL, and next CMM, DL-EM (Raykar),
Max-MIG, CrowdAR, MMLC) the same API and the same training loop, :func:`crowd.learning.trainer.train`:

- ``fit(data, inputs=None, valid=None) -> self``: ``data`` is a :class:`~crowd.data.CrowdData` or
  anything :func:`~crowd.data.as_crowd_data` reads (crowd-kit's long DataFrame, peerannot's
  answers.json...), ``inputs`` one row per task (default ``data.features``), ``valid`` an optional
  ``(inputs, gold labels)`` split whose best epoch is kept. An array of inputs is in task-code order
  (the order of ``data.task_ids``: sorted ids for a DataFrame); a DataFrame of inputs indexed by
  task id is aligned on the ids;
- ``predict_proba(inputs)`` (n, K), columns in the order of ``classes_``, and ``predict(inputs)``
  the original labels (``classes_[argmax]``: labels in = labels out, as for the aggregators);
- ``fit_predict(data, inputs=None)`` / ``fit_predict_proba``: the classifier's output on the training
  tasks, as the aggregators give theirs (a Series of original labels named ``agg_label`` / a DataFrame
  with one column per original label, indexed by task id);
- fitted attributes ending in ``_``: ``model_`` (the whole trained network, in eval mode),
  ``history_`` (one row per epoch: epoch, loss, lr, valid_accuracy), ``best_epoch_``, ``device_``,
  ``n_classes_``, ``classes_`` (original label of each class code), ``n_workers_``, ``answers_`` (the task index of the answers, :class:`TaskAnswers`),
  plus the model's own (e.g. ``confusions_``).

Answers stay the flat ``(task, worker, label)`` arrays of the CrowdData: a batch of tasks gathers
only the answers those tasks received through a CSR index (:class:`TaskAnswers`), so an epoch
costs time linear in the number of answers, never tasks x workers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from crowd.data import CrowdData, as_crowd_data
from crowd.device import resolve_device
from crowd.learning.trainer import TrainResult, predict_proba, train

__all__ = ["CrowdLearner", "TaskAnswers", "AnswerBatch", "answers_by_task", "gather_answers"]

ModelSpec = Any  # Callable[[], nn.Module] | nn.Module | str


# ------------------------------------------------------------------ answer index
def answers_by_task(data: CrowdData) -> tuple[np.ndarray, np.ndarray]:
    """CSR index of the answers: ``order`` sorts answers by task, ``indptr[t]:indptr[t+1]``
    are the positions (in ``order``) of task ``t``'s answers."""
    order = np.argsort(data.task, kind="stable")
    indptr = np.zeros(data.n_tasks + 1, dtype=np.int64)
    np.cumsum(np.bincount(data.task, minlength=data.n_tasks), out=indptr[1:])
    return order, indptr


def gather_answers(batch_tasks: np.ndarray, order: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Answer indices of ``batch_tasks`` and, for each, the row of its task in the batch."""
    starts, stops = indptr[batch_tasks], indptr[batch_tasks + 1]
    counts = stops - starts
    rows = np.repeat(np.arange(len(batch_tasks)), counts)
    # positions start_r, start_r + 1, ..., for every task r of the batch, without a Python loop
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return order[np.repeat(starts, counts) + offsets], rows


@dataclass(frozen=True)
class AnswerBatch:
    """The answers of a batch of tasks: ``index`` (positions in the CrowdData's arrays, numpy),
    and on the training device ``rows`` (row of the answer's task in the batch), ``worker``, ``label``."""

    index: np.ndarray
    rows: torch.Tensor
    worker: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return len(self.index)


class TaskAnswers:
    """The answers of a :class:`CrowdData` indexed by task, to gather any batch of tasks' answers."""

    def __init__(self, data: CrowdData, device: torch.device) -> None:
        self.order, self.indptr = answers_by_task(data)
        self.device = device
        self.worker = torch.as_tensor(data.worker)
        self.label = torch.as_tensor(data.label)

    def gather(self, tasks: Any) -> AnswerBatch:
        """The answers of ``tasks`` (task codes: numpy array or CPU tensor, the batch's rows in order)."""
        tasks = tasks.numpy() if isinstance(tasks, torch.Tensor) else np.asarray(tasks)
        index, rows = gather_answers(tasks, self.order, self.indptr)
        return AnswerBatch(index, torch.as_tensor(rows, device=self.device), self.worker[index].to(self.device),
                           self.label[index].to(self.device))


# ------------------------------------------------------------------------ learner
class CrowdLearner:
    """Base of the networks trained on crowd answers.

    Parameters
    ----------
    model : the classifier ``f`` (inputs -> K logits): a factory ``() -> nn.Module`` (called after
        torch is seeded, so the initial weights follow ``seed``), an ``nn.Module`` (copied at each
        fit, the caller's object is left untouched) or a name of :func:`crowd.learning.models.build_model`
        (``"mlp"``...) built for the inputs' flattened width and the data's classes.
    n_epochs, batch_size : epochs over the tasks and tasks per batch (a batch holds all their answers).
    optimizer, lr, momentum, weight_decay : ``"adam"`` or ``"sgd"`` and its settings.
    milestones, gamma : MultiStepLR schedule (lr multiplied by ``gamma`` at each milestone epoch).
    transform : batch augmentation ``transform(x, generator)`` (e.g. :func:`crowd.learning.trainer.random_crop_flip`).
    seed : seeds the initial weights, the task order, dropout and the augmentation; CPU runs are deterministic.
    device : ``"auto"`` (see :mod:`crowd.device`), ``"cpu"``, ``"cuda"``...
    progress : a tqdm bar over the epochs.

    How a subclass plugs in
    -----------------------
    1. **The network**: implement ``_build(data, inputs) -> nn.Module``. Build the classifier with
       ``self._new_classifier(data, inputs)`` and put the crowd part around it. The returned module's
       ``forward(x)`` called with the inputs alone must return the classifier's logits (that is what
       validation and ``predict_proba`` call); the crowd part is reached through extra arguments,
       e.g. ``forward(x, rows, workers)``.
    2. **The per-batch loss**: the loop batches TASKS; ``_batch_loss(model, batch, tasks)`` gets the
       batch's inputs (``batch[0]``, augmented), the task codes of its rows, and returns the loss or
       ``(loss, weight)`` (the weight, e.g. the number of answers, weighs the batch in the epoch's
       mean loss). ``self.answers_.gather(tasks)`` gives the batch's answers as an :class:`AnswerBatch`
       (``rows`` = row of each answer's task in the batch, ``worker``, ``label``). The default is the
       cross-entropy of ``model(x, rows, worker)`` (per-answer logits) against the answered labels,
       which is CrowdLayer's; CoNAL adds its penalty to it. Models whose loss is not per answer
       (Max-MIG, CrowdAR) override it and use the same gather.
    3. **Fitted attributes**: ``_store_fitted(model)`` sets the model's own (``confusions_``...).
    4. **An EM outer loop** (CMM, DL-EM / Raykar, MMLC with EM): override ``_fit(data, inputs, valid)
       -> TrainResult``. Build the network once with ``model = self._new_model(data, inputs)``
       (seeded), keep one optimiser across M-steps, and at each M-step call the one loop for one epoch
       on the E-step's targets::

           opt = torch.optim.Adam(model.parameters(), lr=self.lr)
           for it in range(self.max_iter):
               targets = self._e_step(...)                      # (n_tasks, K) posteriors
               result = train(model, inputs, targets, **self._train_kwargs(
                   epochs=1, optimizer=lambda params: opt, seed=self.seed * 1000 + it, progress=False))
           return TrainResult(model, history, device=self.device_)

       (or pass ``batch_loss=`` instead of targets when the M-step loss needs the answers).
       ``_fit`` may set extra fitted attributes on ``self``; ``fit`` then stores ``model_``,
       ``history_``, ``best_epoch_`` from the returned result.

    Estimator parameters are plain attributes (no trailing underscore) set by ``__init__``;
    subclasses add theirs with keyword-only arguments and call ``super().__init__(model, **kwargs)``.
    """

    def __init__(self, model: ModelSpec, *, n_epochs: int = 100, batch_size: int = 64, optimizer: str = "adam",
                 lr: float = 5e-3, momentum: float = 0.9, weight_decay: float = 0.0, milestones: Sequence[int] = (),
                 gamma: float = 0.1, transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
                 seed: int = 0, device: Any = "auto", progress: bool = True) -> None:
        self.model = model
        self.n_epochs, self.batch_size = n_epochs, batch_size
        self.optimizer, self.lr, self.momentum, self.weight_decay = optimizer, lr, momentum, weight_decay
        self.milestones, self.gamma = tuple(milestones), gamma
        self.transform = transform
        self.seed, self.device, self.progress = seed, device, progress

    # ------------------------------------------------------------------ hooks
    def _build(self, data: CrowdData, inputs: torch.Tensor) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must implement _build(data, inputs) -> nn.Module")

    def _batch_loss(self, model: nn.Module, batch: list[torch.Tensor], tasks: torch.Tensor):
        answers = self.answers_.gather(tasks)
        outputs = model(batch[0], answers.rows, answers.worker)
        return F.cross_entropy(outputs, answers.label), len(answers)

    def _store_fitted(self, model: nn.Module) -> None:
        """Set the model-specific fitted attributes (nothing by default)."""

    def _fit(self, data: CrowdData, inputs: torch.Tensor, valid: tuple[Any, Any] | None) -> TrainResult:
        """One call of the loop over batches of tasks, keeping the best validation epoch."""
        return train(lambda: self._build(data, inputs), inputs, batch_loss=self._batch_loss, valid=valid,
                     keep_best=valid is not None, desc=type(self).__name__, **self._train_kwargs())

    # ---------------------------------------------------------- for subclasses
    def _train_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """The estimator's settings as arguments of :func:`train` (task order from numpy's
        ``default_rng(seed)``, the order the committed CrowdLayer/CoNAL results were computed with)."""
        kwargs = dict(epochs=int(self.n_epochs), batch_size=int(self.batch_size), optimizer=self.optimizer,
                      lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                      milestones=self.milestones, gamma=self.gamma, transform=self.transform, seed=int(self.seed),
                      device=self.device_, progress=self.progress, shuffle="numpy")
        kwargs.update(overrides)
        return kwargs

    def _new_classifier(self, data: CrowdData, inputs: torch.Tensor) -> nn.Module:
        """A fresh classifier from the ``model`` spec (draws from torch's global generator)."""
        spec = self.model
        if isinstance(spec, nn.Module):
            return copy.deepcopy(spec)
        if isinstance(spec, str):
            from crowd.learning.models import build_model

            return build_model(spec, data.n_classes, in_features=int(np.prod(inputs.shape[1:])))
        if callable(spec):
            net = spec()
            if not isinstance(net, nn.Module):
                raise TypeError(f"the model factory returned {type(net).__name__}, not an nn.Module")
            return net
        raise TypeError(f"model must be a factory, an nn.Module or a model name, got {type(spec).__name__}")

    def _new_model(self, data: CrowdData, inputs: torch.Tensor) -> nn.Module:
        """``_build`` after seeding torch with ``seed`` (for ``_fit`` overrides that build the network themselves)."""
        torch.manual_seed(int(self.seed))
        return self._build(data, inputs)

    # ---------------------------------------------------------------- checks
    def _check_params(self) -> None:
        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use 'adam' or 'sgd'")
        if int(self.n_epochs) != self.n_epochs or self.n_epochs < 0:
            raise ValueError(f"n_epochs must be a non-negative integer, got {self.n_epochs}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")

    @staticmethod
    def _task_rows(data: CrowdData, inputs: Any) -> Any:
        """The inputs as one row per task code: a DataFrame indexed by task id is aligned on
        ``data.task_ids``; an array is taken as already in task-code order (``data.task_ids``)."""
        X = data.features if inputs is None else inputs
        if X is None:
            raise ValueError("no features: pass inputs= (one row per task) or give a CrowdData with features")
        if isinstance(X, pd.DataFrame):
            missing = pd.Index(data.task_ids).difference(X.index)
            if len(missing):
                raise ValueError(f"inputs lack the rows of {len(missing)} task(s), e.g. {missing[:5].tolist()}")
            if not X.index.is_unique:
                raise ValueError("inputs' index (task ids) holds duplicates")
            X = X.loc[data.task_ids].to_numpy()
        return X

    def _check_inputs(self, data: CrowdData, inputs: Any) -> torch.Tensor:
        X = np.asarray(self._task_rows(data, inputs))
        if not np.issubdtype(X.dtype, np.number):
            raise TypeError(f"inputs must be numeric, got dtype {X.dtype}")
        if X.ndim < 2 or len(X) != data.n_tasks:
            raise ValueError(f"inputs have {len(X) if X.ndim else 0} rows for {data.n_tasks} tasks "
                             f"(shape {X.shape}; one row per task)")
        if not X.flags.writeable:  # e.g. a view of a DataFrame: torch would share read-only memory
            X = X.copy()
        X_t = torch.as_tensor(X, dtype=torch.float32)
        if not bool(torch.isfinite(X_t).all()):
            raise ValueError("inputs hold NaN or infinite values")
        return X_t

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(data, inputs) first")

    # ------------------------------------------------------------------- API
    def fit(self, data: Any, inputs: Any = None, valid: tuple[Any, Any] | None = None) -> "CrowdLearner":
        """Train on the answers of ``data``; ``inputs`` (n_tasks, ...) default to ``data.features``;
        ``valid = (inputs, gold labels)`` keeps the epoch of best validation accuracy (first on ties)."""
        data = as_crowd_data(data)
        data.require_all_tasks_answered()
        X = self._check_inputs(data, inputs)
        self._check_params()
        if valid is not None and (not isinstance(valid, (tuple, list)) or len(valid) != 2):
            raise ValueError("valid must be (inputs, labels)")
        self.device_ = resolve_device(self.device)
        self.n_classes_, self.n_workers_, self.classes_ = data.n_classes, data.n_workers, data.classes
        self.answers_ = TaskAnswers(data, self.device_)
        result = self._fit(data, X, valid)
        self.model_ = result.model.eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self._store_fitted(self.model_)
        return self

    def predict_proba(self, inputs: Any, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities of the trained classifier, (n, K) (a DataFrame's rows in its order)."""
        self._check_fitted()
        X = np.asarray(inputs.to_numpy() if isinstance(inputs, pd.DataFrame) else inputs)
        X = torch.as_tensor(X if X.flags.writeable else X.copy(), dtype=torch.float32)
        return predict_proba(self.model_, X, batch_size, device=self.device_)

    def predict(self, inputs: Any) -> np.ndarray:
        """The most probable class of each row, as an original label (n,)."""
        self._check_fitted()
        return np.asarray(self.classes_.take(self.predict_proba(inputs).argmax(axis=1)))

    def fit_predict_proba(self, data: Any, inputs: Any = None) -> pd.DataFrame:
        """``fit(data, inputs)`` then the classifier's probabilities on the training tasks: one
        column per original label, indexed by task id."""
        data = as_crowd_data(data)
        inputs = self._task_rows(data, inputs)
        probas = self.fit(data, inputs).predict_proba(inputs)
        return pd.DataFrame(probas, index=pd.Index(data.task_ids, name="task"),
                            columns=pd.Index(data.classes, name="label"))

    def fit_predict(self, data: Any, inputs: Any = None) -> pd.Series:
        """``fit(data, inputs)`` then the classifier's label for each training task (original labels,
        indexed by task id)."""
        probas = self.fit_predict_proba(data, inputs)
        return pd.Series(np.asarray(self.classes_.take(probas.to_numpy().argmax(axis=1))), index=probas.index,
                         name="agg_label")

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
