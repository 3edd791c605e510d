"""Identification of ambiguous tasks: AUM, AUMC, WAUM (stacked) and worker-wise WAUM, then pruning.

Lefort, Charlier, Joly, Salmon. "Identify ambiguous tasks combining crowdsourced labels by
weighting Areas Under the Margin", TMLR 2024 (equations 2-5, algorithms 1, 4, 5).

Margins (in probability space, sigma = softmax of the logits at a training step):

- ``"yang"`` (psi5, Yang & Koyejo 2020, the paper's default): M = sigma_y - sigma_[2], the
  second-largest probability over ALL classes (top-k: sigma_[k+1]).
- ``"pleiss"`` (psi1, Pleiss et al. 2020 in probability space): M = sigma_y - max_{k != y} sigma_k
  (top-k: the k-th largest probability among the other labels).

AUM(x, y) = (1/T) sum_t M^(t)(x, y): the margin is recorded at every training step on the
training-mode forward output, before the optimiser step, and averaged over the T epochs.

- AUMC(x_i) = AUM(x_i, MV label) on a network trained on the MV labels (eq. 3).
- WAUM (eq. 4-5): one network is trained for T epochs on the stacked answers (one row per
  (task, answer)); each answer gets AUM(x_i, y_i^(j)) and a trust score
  s_j(x_i) = <diag(pi_j), sigma^(T)(x_i)> (pi_j: worker j's DS confusion, rows = true class;
  sigma^(T): the training-mode softmax of that row at the last epoch), and
  WAUM(x_i) = sum_j s_j(x_i) AUM(x_i, y_i^(j)) / sum_j s_j(x_i).
- Worker-wise WAUM (algorithm 4): the same, but one network per worker trained on that worker's
  answers only, re-initialised (same initial weights) between workers.
- Pruning: the ceil(alpha * n_tasks) tasks of lowest score are removed (the tasks with score
  <= the alpha-quantile of algorithm 1; ties broken by task order). peerannot computes the AUMC
  quantile on one margin and thresholds another; here the same scores are used throughout.

Everything is vectorised over the flat answers (index_add / bincount), never tasks x workers.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from crowd.data import CrowdData, as_crowd_data
from crowd.learning.trainer import to_tensor, train

__all__ = [
    "margins", "AUMRecorder", "AUM", "AUMC", "WAUM", "WorkerWiseWAUM",
    "n_to_prune", "prune_mask", "trust_scores", "weighted_task_average",
]

MARGINS = ("yang", "pleiss")


def margins(probas: Any, labels: Any, kind: str = "yang", top_k: int = 1) -> torch.Tensor:
    """Margin of each row's label in probability space (see the module docstring); returns (B,)."""
    p = to_tensor(probas)
    y = to_tensor(labels, dtype=torch.long, device=p.device)
    if p.ndim != 2 or y.ndim != 1 or len(p) != len(y):
        raise ValueError(f"probas must be (B, K) and labels (B,), got {tuple(p.shape)} and {tuple(y.shape)}")
    n_classes = p.shape[1]
    if not 1 <= top_k < n_classes:
        raise ValueError(f"top_k must be in [1, {n_classes - 1}], got {top_k}")
    p_label = p.gather(1, y[:, None]).squeeze(1)
    if kind == "yang":
        kth = torch.topk(p, top_k + 1, dim=1).values[:, top_k]
    elif kind == "pleiss":
        others = p.scatter(1, y[:, None], float("-inf"))
        kth = torch.topk(others, top_k, dim=1).values[:, top_k - 1]
    else:
        raise ValueError(f"unknown margin {kind!r}; choose among {MARGINS}")
    return p_label - kth


class AUMRecorder:
    """Step callback for :func:`crowd.learning.trainer.train` accumulating margins per training row.

    After training: ``aum`` (n_rows,) is the mean margin over the recorded steps of each row and
    ``last_probas`` (n_rows, K) the training-mode softmax of each row the last time it was seen.
    Only epochs >= ``from_epoch`` are recorded.
    """

    def __init__(self, labels: Any, n_classes: int, margin: str = "yang", top_k: int = 1, from_epoch: int = 0):
        if margin not in MARGINS:
            raise ValueError(f"unknown margin {margin!r}; choose among {MARGINS}")
        self.labels = to_tensor(labels, dtype=torch.long)
        self.n_classes = n_classes
        self.margin, self.top_k, self.from_epoch = margin, top_k, from_epoch
        self._device: torch.device | None = None
        self._allocate(torch.device("cpu"))

    def _allocate(self, device: torch.device) -> None:
        # the accumulators live on the device of the logits: no host synchronisation per step on CUDA
        n = len(self.labels)
        self._device = device
        self.labels = self.labels.to(device)
        self.margin_sum = torch.zeros(n, dtype=torch.float64, device=device)
        self.count = torch.zeros(n, dtype=torch.float64, device=device)
        self._last = torch.full((n, self.n_classes), float("nan"), device=device)

    def __call__(self, epoch: int, rows: torch.Tensor, logits: torch.Tensor) -> None:
        if epoch < self.from_epoch:
            return
        if logits.device != self._device:
            if bool((self.count > 0).any()):
                raise RuntimeError("the logits moved to another device during training")
            self._allocate(logits.device)
        probas = torch.softmax(logits.float(), dim=1)
        rows = rows.to(logits.device)
        m = margins(probas, self.labels.index_select(0, rows), self.margin, self.top_k)
        self.margin_sum.index_add_(0, rows, m.double())
        self.count.index_add_(0, rows, torch.ones(len(rows), dtype=torch.float64, device=logits.device))
        self._last[rows] = probas

    @property
    def last_probas(self) -> torch.Tensor:
        return self._last.cpu()

    @property
    def aum(self) -> np.ndarray:
        if bool((self.count == 0).any()):
            raise RuntimeError(f"{int((self.count == 0).sum())} row(s) were never recorded; train for at least one epoch")
        return (self.margin_sum / self.count).cpu().numpy()


def n_to_prune(alpha: float, n: int) -> int:
    """Number of tasks the alpha-quantile rule removes: ceil(alpha * n) (the tasks with score <= q_alpha)."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    return int(np.ceil(alpha * n - 1e-9))


def prune_mask(scores: Any, alpha: float) -> np.ndarray:
    """Boolean mask of the tasks to KEEP: all but the ceil(alpha * n) lowest scores (stable order on ties)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-d, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} score(s) are NaN (tasks without answers?)")
    keep = np.ones(len(s), dtype=bool)
    keep[np.argsort(s, kind="stable")[:n_to_prune(alpha, len(s))]] = False
    return keep


def trust_scores(confusions: np.ndarray, worker: np.ndarray, probas: np.ndarray) -> np.ndarray:
    """s_j(x_i) = <diag(pi_j), sigma(x_i)> per answer (eq. 5); ``probas`` has one row per answer."""
    diag = np.diagonal(np.asarray(confusions), axis1=1, axis2=2)  # (n_workers, K)
    return np.einsum("ak,ak->a", diag[worker], probas)


def weighted_task_average(task: np.ndarray, values: np.ndarray, weights: np.ndarray, n_tasks: int) -> np.ndarray:
    """sum_j w_j v_j / sum_j w_j per task (eq. 4), NaN where a task has no answer or zero total weight."""
    num = np.bincount(task, weights=weights * values, minlength=n_tasks)
    den = np.bincount(task, weights=weights, minlength=n_tasks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _make_model(model: nn.Module | Callable[[], nn.Module]) -> nn.Module:
    return model if isinstance(model, nn.Module) else model()


def _ds_confusions(data: CrowdData, ds_kwargs: dict | None) -> np.ndarray:
    from crowd.aggregation.dawid_skene import DawidSkene

    ds = DawidSkene(**(ds_kwargs or {}))
    ds.fit(data)
    return np.asarray(ds.confusions_)


class AUM:
    """Area Under the Margin of (input, label) pairs (Pleiss et al. 2020; eq. 2 of the WAUM paper).

    ``fit(model, inputs, labels)`` trains ``model`` (a module or a factory) for ``epochs`` epochs
    with :func:`crowd.learning.trainer.train` (``train_kwargs``: optimizer, lr, batch_size, milestones,
    seed, device, ...) while recording margins. Fitted: ``aum_`` (n,), ``last_probas_`` (n, K),
    ``model_``, ``history_``.
    """

    def __init__(self, epochs: int = 50, margin: str = "yang", top_k: int = 1, **train_kwargs: Any):
        if margin not in MARGINS:
            raise ValueError(f"unknown margin {margin!r}; choose among {MARGINS}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.epochs, self.margin, self.top_k, self.train_kwargs = epochs, margin, top_k, train_kwargs

    def _run(self, model, inputs, labels, n_classes: int, input_index=None, desc: str = "AUM"):
        labels = np.asarray(labels)
        recorder = AUMRecorder(labels, n_classes, self.margin, self.top_k)
        kwargs = {"progress": True, "desc": desc, **self.train_kwargs}
        result = train(_make_model(model), inputs, labels, epochs=self.epochs, step_callback=recorder,
                       input_index=input_index, **kwargs)
        return recorder, result

    def fit(self, model: nn.Module | Callable[[], nn.Module], inputs: Any, labels: Any, n_classes: int | None = None) -> "AUM":
        labels = np.asarray(labels, dtype=np.int64)
        n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
        recorder, result = self._run(model, inputs, labels, n_classes)
        self.aum_, self.last_probas_ = recorder.aum, recorder.last_probas.numpy()
        self.model_, self.history_ = result.model, result.history
        return self

    def prune(self, alpha: float) -> np.ndarray:
        """Keep mask at level alpha of ``scores_`` (the AUM here)."""
        return prune_mask(self.scores_, alpha)

    @property
    def scores_(self) -> np.ndarray:
        return self.aum_


class AUMC(AUM):
    """AUM of the majority-vote label of each task (eq. 3), on a network trained on the MV labels.

    ``fit(data, model, inputs=None)``; ``inputs`` default to ``data.features``. MV ties go to the
    smallest label unless ``mv_labels`` is given. Fitted: ``aumc_`` (n_tasks,), ``mv_labels_``.
    """

    def fit(self, data: Any, model: nn.Module | Callable[[], nn.Module], inputs: Any = None, mv_labels: Any = None) -> "AUMC":  # type: ignore[override]
        data = as_crowd_data(data)
        data.require_all_tasks_answered()
        inputs = _task_inputs(data, inputs)
        labels = np.argmax(data.vote_counts(), axis=1) if mv_labels is None else np.asarray(mv_labels, dtype=np.int64)
        if len(labels) != data.n_tasks:
            raise ValueError(f"mv_labels has {len(labels)} entries for {data.n_tasks} tasks")
        recorder, result = self._run(model, inputs, labels, data.n_classes, desc="AUMC")
        self.mv_labels_ = labels
        self.aumc_ = self.aum_ = recorder.aum
        self.last_probas_ = recorder.last_probas.numpy()
        self.model_, self.history_ = result.model, result.history
        return self


def _task_inputs(data: CrowdData, inputs: Any) -> Any:
    inputs = data.features if inputs is None else inputs
    if inputs is None:
        raise ValueError("no inputs: the CrowdData has no features; pass inputs=")
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    if len(first) != data.n_tasks:
        raise ValueError(f"inputs have {len(first)} rows for {data.n_tasks} tasks")
    return inputs


class WAUM(AUM):
    """Weighted AUM on the stacked answers (algorithm 1, eq. 4-5).

    ``fit(data, model, inputs=None)`` trains ONE network for ``epochs`` (T) epochs on one row per
    answer (the task's features, the worker's label), records AUM per answer and the trust scores
    from the last epoch's training-mode softmax, with the confusion matrices ``confusions``
    (n_workers, K, K), rows = true class) or, when None, DS fitted on ``data`` (``ds_kwargs``).

    Fitted: ``aum_`` and ``trust_`` per answer, ``waum_`` (n_tasks,), ``confusions_``,
    ``probas_`` (n_tasks, K: trust-free mean of the last-epoch softmax over the task's rows),
    ``model_``, ``history_``.
    """

    def __init__(self, epochs: int = 50, margin: str = "yang", top_k: int = 1, confusions: np.ndarray | None = None,
                 ds_kwargs: dict | None = None, **train_kwargs: Any):
        super().__init__(epochs, margin, top_k, **train_kwargs)
        self.confusions, self.ds_kwargs = confusions, ds_kwargs

    def _confusions(self, data: CrowdData) -> np.ndarray:
        conf = _ds_confusions(data, self.ds_kwargs) if self.confusions is None else np.asarray(self.confusions, dtype=np.float64)
        if conf.shape != (data.n_workers, data.n_classes, data.n_classes):
            raise ValueError(f"confusions must have shape {(data.n_workers, data.n_classes, data.n_classes)}, got {conf.shape}")
        return conf

    def fit(self, data: Any, model: nn.Module | Callable[[], nn.Module], inputs: Any = None) -> "WAUM":  # type: ignore[override]
        data = as_crowd_data(data)
        data.require_all_tasks_answered()
        inputs = _task_inputs(data, inputs)
        self.confusions_ = self._confusions(data)
        recorder, result = self._run(model, inputs, data.label, data.n_classes, input_index=data.task, desc="WAUM")
        self.aum_ = recorder.aum
        last = recorder.last_probas.numpy()
        self._finish(data, last)
        self.model_, self.history_ = result.model, result.history
        return self

    def _finish(self, data: CrowdData, last_probas: np.ndarray) -> None:
        self.trust_ = trust_scores(self.confusions_, data.worker, last_probas)
        self.waum_ = weighted_task_average(data.task, self.aum_, self.trust_, data.n_tasks)
        counts = np.bincount(data.task, minlength=data.n_tasks)[:, None]
        sums = np.zeros((data.n_tasks, data.n_classes))
        np.add.at(sums, data.task, last_probas)
        self.probas_ = sums / np.maximum(counts, 1)
        self.data_ = data

    @property
    def scores_(self) -> np.ndarray:
        return self.waum_

    def pruned_data(self, alpha: float) -> CrowdData:
        """The fitted data restricted to the tasks kept at level alpha (re-coded, features kept)."""
        return self.data_.subset_tasks(np.flatnonzero(self.prune(alpha)))


class WorkerWiseWAUM(WAUM):
    """Worker-wise WAUM (appendix B.1, algorithm 4): one network per worker, on that worker's answers.

    Every worker's network starts from the same initial weights (a deep copy of the first model
    built), as when a checkpoint is reloaded between workers. Cost: T x n_workers epochs.
    """

    def fit(self, data: Any, model: nn.Module | Callable[[], nn.Module], inputs: Any = None) -> "WorkerWiseWAUM":  # type: ignore[override]
        data = as_crowd_data(data)
        data.require_all_tasks_answered()
        inputs = _task_inputs(data, inputs)
        self.confusions_ = self._confusions(data)
        initial = _make_model(model)
        init_state = copy.deepcopy(initial.state_dict())
        aum = np.full(data.n_answers, np.nan)
        last = np.full((data.n_answers, data.n_classes), np.nan)
        order = np.argsort(data.worker, kind="stable")
        bounds = np.searchsorted(data.worker[order], np.arange(data.n_workers + 1))
        kwargs = dict(self.train_kwargs)
        show = kwargs.pop("progress", True)
        workers = range(data.n_workers)
        if show:
            from tqdm.auto import tqdm

            workers = tqdm(workers, desc="worker-wise WAUM", leave=False)
        for j in workers:
            rows = order[bounds[j]:bounds[j + 1]]
            if len(rows) == 0:
                continue
            net = initial
            net.load_state_dict(init_state)
            recorder = AUMRecorder(data.label[rows], data.n_classes, self.margin, self.top_k)
            train(net, inputs, data.label[rows], epochs=self.epochs, step_callback=recorder,
                  input_index=data.task[rows], progress=False, **kwargs)
            aum[rows] = recorder.aum
            last[rows] = recorder.last_probas.numpy()
        self.aum_ = aum
        self._finish(data, last)
        self.model_ = None
        return self
