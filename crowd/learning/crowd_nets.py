"""Networks trained on crowd labels: the baselines of the CMM paper and the parts its EM learners share.

Mena & Nanculef (2019), section 5, compare CMM with four ways of training the same network
``f(x; theta) ~ p(z | x)`` on crowd answers, plus an upper bound:

* :class:`SoftMV`: targets = the per-task vote frequencies ``r_i / T_i`` (soft majority vote);
* :class:`HardMV`: targets = the majority label (ties to the smallest label, as the authors'
  ``argmax``; ``tie_break`` changes it);
* :class:`DLDS`: targets = the Dawid-Skene posteriors (:class:`crowd.aggregation.DawidSkene`,
  initialised with the soft MV, stopping at a relative log-likelihood change <= 0.03 or 50 iterations);
* :class:`Ideal`: targets = the true labels (``data.gold``).

These fits are not EM: the network is trained with Adam (lr 1e-3, Keras' default) until the
relative change of the epoch loss is <= ``tol`` = 3% (the authors' ``EarlyStopRelative``,
patience 1), at most ``max_epochs`` = 50 epochs.

Shared with :mod:`crowd.learning.cmm` and :mod:`crowd.learning.raykar`:

* :class:`NetClassifier` / :class:`ClassPriorClassifier`: the "classifier part" ``p(z | x)`` of an
  EM learner. The network one trains one epoch per M-step (:func:`crowd.learning.trainer.train`
  with ``epochs=1`` and a persistent Adam optimiser); the class-prior classifier replaces it by
  ``p(z | x) = rho`` with the exact M-step ``rho ∝ sum_i w_i t_i``, which turns DL-EM into
  Dawid-Skene and makes every EM exact (used by the tests).
* :class:`FixedClassifier`: given ``p(z | x_i)`` (e.g. the truth), never trained.
* :class:`EMNetLearner`: restarts, the paper's stopping rule, the best restart by log-likelihood.

Differences from the authors' Keras code (FMena14/MixtureofGroups), on purpose: the loss of a
batch with per-task weights is ``sum_b w_b CE_b / sum_b w_b`` (Keras averages ``w_b CE_b`` over
the batch; with Adam the two differ only by the batch's mean weight); the default weight
initialisation is Keras' (Glorot-uniform kernels, zero biases) so that the small MLP starts as
theirs did (``weight_init="torch"`` keeps PyTorch's).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from crowd.data import CrowdData, as_crowd_data
from crowd.device import resolve_device

__all__ = [
    "NetCrowdLearner", "NetClassifier", "ClassPriorClassifier", "FixedClassifier", "EMNetLearner", "build_network",
    "relative_change", "SoftMV", "HardMV", "DLDS", "Ideal",
]

ModelSpec = "str | nn.Module | Callable[[], nn.Module] | None"
#: floor before logs (a zero probability stays finite)
TINY = np.finfo(np.float64).tiny
#: Keras' epsilon in float32, used by the authors' relative changes
KERAS_EPS = float(np.finfo(np.float32).eps)


# ----------------------------------------------------------------------------- helpers
def relative_change(new: Any, old: Any, eps: float = KERAS_EPS) -> float:
    """Mean over entries of ``|new - old| / (old + eps)`` (the authors' parameter criterion)."""
    new, old = np.asarray(new, dtype=float).ravel(), np.asarray(old, dtype=float).ravel()
    return float(np.mean(np.abs(new - old) / (old + eps)))


def _keras_init(model: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases for every Linear / Conv layer (Keras' defaults)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _reset_parameters(model: nn.Module) -> None:
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    if hasattr(model, "reset_parameters"):
        model.reset_parameters()


def build_network(spec: Any, input_shape: Sequence[int], n_classes: int) -> nn.Module:
    """A fresh network from ``spec``:

    * ``None``: :class:`~crowd.learning.models.CMMMLP` for flat inputs (Setup 1), :class:`CifarCNN`
      for (3, H, W) images (Setup 2);
    * a name: ``"cmm_mlp"``, ``"cifar_cnn"``, ``"rodrigues"`` (LabelMe head on features);
    * an ``nn.Module``: a deep copy of it with freshly reset parameters;
    * a callable: called without arguments.
    """
    from crowd.learning import models

    shape = tuple(int(s) for s in input_shape)
    flat = int(np.prod(shape)) if shape else 1
    if spec is None:
        if len(shape) == 1:
            return models.CMMMLP(shape[0], n_classes)
        if len(shape) == 3 and shape[0] in (1, 3):
            return models.CifarCNN(n_classes, in_channels=shape[0], image_size=shape[1])
        raise ValueError(f"no default network for inputs of shape {shape}; pass model=")
    if isinstance(spec, str):
        name = spec.lower()
        if name in ("cmm_mlp", "mlp16"):
            return models.CMMMLP(flat, n_classes)
        if name == "cifar_cnn":
            if len(shape) != 3:
                raise ValueError(f"cifar_cnn needs (C, H, W) image inputs, got shape {shape}")
            return models.CifarCNN(n_classes, in_channels=shape[0], image_size=shape[1])
        if name in ("rodrigues", "rodrigues_head"):
            return models.RodriguesHead(flat, n_classes)
        raise ValueError(f"unknown model {spec!r}; use 'cmm_mlp', 'cifar_cnn', 'rodrigues', a module or a factory")
    if isinstance(spec, nn.Module):
        net = copy.deepcopy(spec)
        _reset_parameters(net)
        return net
    if callable(spec):
        net = spec()
        if not isinstance(net, nn.Module):
            raise TypeError(f"the model factory returned {type(net).__name__}, not an nn.Module")
        return net
    raise TypeError(f"model must be None, a name, an nn.Module or a factory, got {type(spec).__name__}")


def _as_input_array(inputs: Any) -> np.ndarray:
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    arr = np.asarray(inputs)
    if arr.dtype == np.uint8:  # images: scale to [0, 1] as the authors (inputs / 255)
        arr = arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"inputs must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim < 2:
        raise ValueError(f"inputs must have one row per task, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("inputs hold NaN or infinite values")
    return arr


# ------------------------------------------------------------------- classifier parts
class NetClassifier:
    """``p(z | x)`` by a network; :meth:`fit_step` trains it ``epochs`` epoch(s) on soft targets
    with :func:`crowd.learning.trainer.train`, keeping one Adam optimiser across calls."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, *, lr: float, batch_size: int,
                 weight_decay: float, device: torch.device, epochs: int = 1) -> None:
        self.model = model.to(device)
        self.inputs = inputs
        self.batch_size, self.epochs, self.device = batch_size, epochs, device
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, eps=1e-7, weight_decay=weight_decay)

    def fit_step(self, targets: np.ndarray, weights: np.ndarray | None, seed: int) -> float:
        from crowd.learning.trainer import train

        t = torch.as_tensor(targets, dtype=torch.float32, device=self.device)
        w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=self.device)
        result = train(self.model, self.inputs, t, epochs=self.epochs, batch_size=self.batch_size,
                       optimizer=lambda params: self.optimizer, sample_weight=w, seed=seed,
                       device=self.device, progress=False)
        return float(result.history["loss"].iloc[-1])

    def predict_proba(self, inputs: torch.Tensor | None = None) -> np.ndarray:
        from crowd.learning.trainer import predict_proba

        x = self.inputs if inputs is None else inputs
        return predict_proba(self.model, x, device=self.device).astype(np.float64)


class ClassPriorClassifier:
    """``p(z | x) = rho`` for every task, with the exact M-step ``rho ∝ sum_i w_i t_i``.

    Replacing the network by it makes DL-EM exactly Dawid-Skene and CMM an exact EM (no
    network in the loop), which the tests use; ``model`` is None."""

    def __init__(self, n_tasks: int, n_classes: int) -> None:
        self.n_tasks = n_tasks
        self.rho = np.full(n_classes, 1.0 / n_classes)
        self.model = None

    def fit_step(self, targets: np.ndarray, weights: np.ndarray | None, seed: int) -> float:
        t = np.asarray(targets, dtype=np.float64)
        mass = t.sum(axis=0) if weights is None else (np.asarray(weights, dtype=np.float64)[:, None] * t).sum(axis=0)
        self.rho = mass / mass.sum()
        w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=np.float64)
        return float(-(w[:, None] * t * np.log(np.maximum(self.rho, TINY))).sum() / w.sum())

    def predict_proba(self, inputs: Any = None) -> np.ndarray:
        n = self.n_tasks if inputs is None else len(inputs)
        return np.tile(self.rho, (n, 1))


class FixedClassifier:
    """``p(z | x_i)`` given and never trained (e.g. the true labels one-hot): isolates the crowd part of an EM."""

    def __init__(self, probas: Any, n_tasks: int, n_classes: int) -> None:
        p = np.asarray(probas, dtype=np.float64)
        if p.shape != (n_tasks, n_classes):
            raise ValueError(f"fixed classifier probabilities must have shape ({n_tasks}, {n_classes}), got {p.shape}")
        if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("fixed classifier probabilities must be distributions (rows >= 0 summing to 1)")
        self.probas = p
        self.model = None

    def fit_step(self, targets: np.ndarray, weights: np.ndarray | None, seed: int) -> float:
        w = np.ones(len(targets)) if weights is None else np.asarray(weights, dtype=np.float64)
        return float(-(w[:, None] * targets * np.log(np.maximum(self.probas, TINY))).sum() / w.sum())

    def predict_proba(self, inputs: Any = None) -> np.ndarray:
        if inputs is not None:
            raise ValueError("a fixed classifier only knows the training tasks")
        return self.probas


# ------------------------------------------------------------------------ base learner
class NetCrowdLearner:
    """Estimator API of the networks trained on crowd answers (the shape of ``crowd.learning.base.CrowdLearner``):
    ``fit(data, inputs=None, valid=None)``, ``predict_proba(inputs)``, ``predict(inputs)``; fitted
    ``model_``, ``history_``, ``device_``.

    Parameters shared by every learner
    ----------------------------------
    model : network spec (see :func:`build_network`); default by the input shape.
    lr, batch_size, weight_decay : Adam's settings (Keras' lr 1e-3; batch 64, 128 for CIFAR).
    standardize : standardise the inputs with the training mean / std (kept for ``predict_proba``).
    weight_init : ``"keras"`` (Glorot-uniform, zero bias: the authors') or ``"torch"``.
    seed : seeds the network, the shuffling, dropout and any clustering; CPU runs are deterministic.
    device : ``"auto"`` (see :mod:`crowd.device`), ``"cpu"``, ``"cuda"``...
    """

    def __init__(self, model: Any = None, *, lr: float = 1e-3, batch_size: int = 64, weight_decay: float = 0.0,
                 standardize: bool = False, weight_init: Literal["keras", "torch"] = "keras", seed: int = 0,
                 device: Any = "auto", progress: bool = False) -> None:
        if lr <= 0 or batch_size < 1 or weight_decay < 0:
            raise ValueError(f"need lr > 0, batch_size >= 1, weight_decay >= 0; got {lr}, {batch_size}, {weight_decay}")
        if weight_init not in ("keras", "torch"):
            raise ValueError(f"weight_init must be 'keras' or 'torch', got {weight_init!r}")
        self.model = model
        self.lr, self.batch_size, self.weight_decay = lr, batch_size, weight_decay
        self.standardize, self.weight_init = standardize, weight_init
        self.seed, self.device, self.progress = seed, device, progress

    # -- data
    def _read(self, data: Any, inputs: Any) -> tuple[CrowdData, np.ndarray]:
        data = as_crowd_data(data)
        data.require_all_tasks_answered()
        X = data.features if inputs is None else inputs
        if X is None:
            raise ValueError("no inputs: pass inputs= (one row per task) or give a CrowdData with features")
        X = _as_input_array(X)
        if len(X) != data.n_tasks:
            raise ValueError(f"inputs has {len(X)} rows for {data.n_tasks} tasks")
        return data, X

    def _standardise_fit(self, X: np.ndarray) -> np.ndarray:
        if not self.standardize:
            self.input_mean_ = self.input_std_ = None
            return X
        self.input_mean_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.input_std_ = np.where(std > 0, std, 1.0)
        return ((X - self.input_mean_) / self.input_std_).astype(np.float32)

    def _transform(self, inputs: Any) -> np.ndarray:
        X = _as_input_array(inputs)
        if getattr(self, "input_mean_", None) is not None:
            if X.shape[1:] != self.input_mean_.shape:
                raise ValueError(f"inputs have shape {X.shape[1:]} per row, the model was fitted on {self.input_mean_.shape}")
            X = ((X - self.input_mean_) / self.input_std_).astype(np.float32)
        return X

    def _new_network(self, input_shape: Sequence[int], n_classes: int, seed: int) -> nn.Module:
        torch.manual_seed(int(seed))
        net = build_network(self.model, input_shape, n_classes)
        if self.weight_init == "keras":
            _keras_init(net)
        return net

    def _valid_accuracy(self, valid: Any, model: nn.Module | None = None) -> float | None:
        if valid is None:
            return None
        from crowd.learning.trainer import predict_proba

        X, y = valid
        probas = predict_proba(self.model_ if model is None else model, torch.as_tensor(self._transform(X)), device=self.device_)
        return float(np.mean(probas.argmax(axis=1) == np.asarray(y)))

    # -- prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit first")

    def predict_proba(self, inputs: Any, batch_size: int = 1024) -> np.ndarray:
        """``p(z | x)`` of the fitted network, (n, K)."""
        self._check_fitted()
        if self.model_ is None:  # class-prior classifier
            return self.classifier_.predict_proba(np.empty((len(inputs), 0)))
        from crowd.learning.trainer import predict_proba

        return predict_proba(self.model_, torch.as_tensor(self._transform(inputs)), batch_size, device=self.device_)

    def predict(self, inputs: Any) -> np.ndarray:
        return self.predict_proba(inputs).argmax(axis=1)

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


# --------------------------------------------------------------------- non-EM baselines
class _TargetNet(NetCrowdLearner):
    """A network trained on fixed targets until the relative loss change is <= ``tol`` (max ``max_epochs``)."""

    def __init__(self, model: Any = None, *, max_epochs: int = 50, tol: float | None = 0.03, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs}")
        self.max_epochs, self.tol = max_epochs, tol

    def _targets(self, data: CrowdData) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, data: Any, inputs: Any = None, valid: Any = None) -> "_TargetNet":
        data, X = self._read(data, inputs)
        targets = self._targets(data)
        self.targets_ = targets
        X = self._standardise_fit(X)
        self.device_ = resolve_device(self.device)
        net = self._new_network(X.shape[1:], data.n_classes, self.seed)
        x_t = torch.as_tensor(X, device=self.device_)
        clf = NetClassifier(net, x_t, lr=self.lr, batch_size=self.batch_size, weight_decay=self.weight_decay,
                            device=self.device_)
        hard = targets.ndim == 1
        rows, best = [], None
        from crowd.learning.trainer import train

        epochs = range(self.max_epochs)
        if self.progress:
            from tqdm.auto import tqdm

            epochs = tqdm(epochs, desc=type(self).__name__, leave=False)
        for epoch in epochs:
            if hard:
                res = train(clf.model, x_t, torch.as_tensor(targets, device=self.device_), epochs=1,
                            batch_size=self.batch_size, optimizer=lambda p: clf.optimizer,
                            seed=self.seed * 1000 + epoch, device=self.device_, progress=False)
                loss = float(res.history["loss"].iloc[-1])
            else:
                loss = clf.fit_step(targets, None, seed=self.seed * 1000 + epoch)
            self.model_ = clf.model
            record = {"epoch": epoch + 1, "loss": loss}
            acc = self._valid_accuracy(valid)
            if acc is not None:
                record["valid_accuracy"] = acc
            rows.append(record)
            # the authors' EarlyStopRelative (patience 1): stop at the first epoch whose loss moved
            # by <= tol relative to the last epoch that moved more
            if best is None:
                best = loss
            elif self.tol and abs(best - loss) / abs(best) <= self.tol:
                break
            else:
                best = loss
        self.model_.eval()
        self.history_ = pd.DataFrame(rows)
        self.n_epochs_ = len(rows)
        self.n_classes_ = data.n_classes
        self.train_probas_ = clf.predict_proba()
        return self


class SoftMV(_TargetNet):
    """softMV: a network on the per-task vote frequencies ``r_i / T_i``."""

    def _targets(self, data: CrowdData) -> np.ndarray:
        votes = data.vote_counts().astype(np.float64)
        return votes / votes.sum(axis=1, keepdims=True)


class HardMV(_TargetNet):
    """hardMV: a network on the majority label (``tie_break`` as :func:`crowd.aggregation.majority_vote.break_ties`;
    ``"smallest"`` is the authors' argmax)."""

    def __init__(self, model: Any = None, *, tie_break: Any = "smallest", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.tie_break = tie_break

    def _targets(self, data: CrowdData) -> np.ndarray:
        from crowd.aggregation.majority_vote import break_ties

        labels, _ = break_ties(data.vote_counts(), self.tie_break, seed=self.seed)
        return labels.astype(np.int64)


class DLDS(_TargetNet):
    """DL-DS: a network on Dawid-Skene's posteriors.

    DS (:class:`crowd.aggregation.DawidSkene`) starts from the soft MV and stops when the relative
    change of its log-likelihood is <= ``ds_tol`` (0.03) or after ``ds_max_iter`` (50) iterations.
    The authors' DS (dallascard/dawid_skene) also required the mean relative change of the error
    rates to be <= 0.03; ours stops on the log-likelihood alone. The fitted aggregator is
    ``aggregator_`` (its ``confusions_`` are the per-annotator matrices for I-JS)."""

    def __init__(self, model: Any = None, *, ds_tol: float = 0.03, ds_max_iter: int = 50, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.ds_tol, self.ds_max_iter = ds_tol, ds_max_iter

    def _targets(self, data: CrowdData) -> np.ndarray:
        from crowd.aggregation import DawidSkene

        self.aggregator_ = DawidSkene(n_iter=self.ds_max_iter, tol=self.ds_tol, stopping="relative", init="naive_soft")
        self.aggregator_.fit(data)
        probas = self.aggregator_.probas_
        return probas / probas.sum(axis=1, keepdims=True)


class Ideal(_TargetNet):
    """Ideal: the network on the true labels ``data.gold`` (the upper bound of the paper's tables)."""

    def _targets(self, data: CrowdData) -> np.ndarray:
        if data.gold is None or (data.gold < 0).any():
            missing = "no gold labels" if data.gold is None else f"{int((data.gold < 0).sum())} task(s) without gold"
            raise ValueError(f"Ideal trains on the true labels, but the data has {missing}")
        return data.gold.astype(np.int64)


# ------------------------------------------------------------------------ EM learners
class EMNetLearner(NetCrowdLearner):
    """EM with a network in the M-step (one epoch per iteration), restarts, the paper's stopping rule.

    Subclasses implement ``_init_state``, ``_m_step`` (returns the network's targets and weights
    and updates the closed-form parameters), ``_e_step`` (returns the log-likelihood and the
    log-prior of the parameters) and ``_params`` (the array whose relative change is monitored).

    Stopping (the authors' rule): after iteration ``t >= 2`` stop when
    ``|ll_t - ll_{t-1}| / |ll_{t-1}| <= tol`` AND ``mean |beta_t - beta_{t-1}| / (beta_{t-1} + eps) <= tol``,
    or after ``max_iter`` iterations; ``tol=None`` runs exactly ``max_iter``.
    Restarts: ``n_restarts`` fits from fresh networks (and fresh clustering seeds); the one with the
    highest final log-likelihood is kept (the authors took each run's highest log-likelihood over
    its iterations but kept its final parameters; ours ranks runs by the parameters it keeps).
    """

    def __init__(self, model: Any = None, *, n_restarts: int = 20, max_iter: int = 50, tol: float | None = 0.03,
                 prior_count: float = 1.0, classifier: Any = "net", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if n_restarts < 1 or max_iter < 1:
            raise ValueError(f"n_restarts and max_iter must be >= 1, got {n_restarts} and {max_iter}")
        if prior_count < 0:
            raise ValueError(f"prior_count must be >= 0, got {prior_count}")
        if isinstance(classifier, str) and classifier not in ("net", "class_prior"):
            raise ValueError(f"classifier must be 'net', 'class_prior' or an (n_tasks, K) array of fixed p(z | x), got {classifier!r}")
        self.n_restarts, self.max_iter, self.tol = n_restarts, max_iter, tol
        self.prior_count, self.classifier = prior_count, classifier

    # subclass hooks
    def _init_state(self, prep: Any, rng: np.random.Generator) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _m_step(self, state: Any) -> tuple[np.ndarray, np.ndarray | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _e_step(self, state: Any, probas: np.ndarray) -> tuple[float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _params(self, state: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _store(self, state: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_em(self, prep: Any, n_tasks: int, n_classes: int, X: np.ndarray | None, valid: Any) -> None:
        self.device_ = resolve_device(self.device)
        x_t = None if X is None else torch.as_tensor(X, device=self.device_)
        best = None
        summary = []
        restarts = range(self.n_restarts)
        if self.progress:
            from tqdm.auto import tqdm

            restarts = tqdm(restarts, desc=type(self).__name__, leave=False)
        for restart in restarts:
            run_seed = int(self.seed) * 1009 + restart
            rng = np.random.default_rng(run_seed)
            if isinstance(self.classifier, str) and self.classifier == "class_prior":
                clf: Any = ClassPriorClassifier(n_tasks, n_classes)
            elif not isinstance(self.classifier, str):
                clf = FixedClassifier(self.classifier, n_tasks, n_classes)
            else:
                if x_t is None:
                    raise ValueError("the network needs inputs: pass inputs= or give a CrowdData with features")
                net = self._new_network(X.shape[1:], n_classes, run_seed)
                clf = NetClassifier(net, x_t, lr=self.lr, batch_size=self.batch_size,
                                    weight_decay=self.weight_decay, device=self.device_)
            state = self._init_state(prep, rng)
            rows, old_params = [], None
            for it in range(self.max_iter):
                targets, weights = self._m_step(state)
                loss = clf.fit_step(targets, weights, seed=run_seed * 1000 + it)
                probas = clf.predict_proba()
                loglik, log_prior = self._e_step(state, probas)
                params = self._params(state)
                record = {"iteration": it + 1, "loss": loss, "loglik": loglik, "objective": loglik + log_prior}
                if rows:
                    record["loglik_change"] = abs(loglik - rows[-1]["loglik"]) / max(abs(rows[-1]["loglik"]), TINY)
                    record["param_change"] = relative_change(params, old_params)
                if valid is not None and clf.model is not None:
                    record["valid_accuracy"] = self._valid_accuracy(valid, clf.model)
                rows.append(record)
                old_params = params.copy()
                if (self.tol and it >= 1 and record["loglik_change"] <= self.tol
                        and record["param_change"] <= self.tol):
                    break
            state["probas"] = probas
            summary.append({"restart": restart, "n_iter": len(rows), "loglik": rows[-1]["loglik"],
                            "objective": rows[-1]["objective"]})
            if best is None or rows[-1]["loglik"] > best[0]:
                best = (rows[-1]["loglik"], state, clf, rows)
        _, state, clf, rows = best
        self.classifier_ = clf
        self.model_ = clf.model
        if self.model_ is not None:
            self.model_.eval()
        self.history_ = pd.DataFrame(rows)
        self.restarts_ = pd.DataFrame(summary)
        self.loglik_history_ = [r["loglik"] for r in rows]
        self.objective_history_ = [r["objective"] for r in rows]
        self.n_iter_ = len(rows)
        self.n_classes_ = n_classes
        self.train_probas_ = state["probas"]
        self._store(state)
