"""MMLC: Mixture of Experts based Multi-task supervised Learning from Crowds (Han et al., AAAI 2025).

Every worker is a task of a multi-task classifier that shares E expert networks. For an answer of
worker ``w`` on item ``x`` (paper, equations 5-7)::

    U(x) = (u_1(x), ..., u_E(x))                      E experts, each an MLP with ReLU layers -> R^d
    v(w) = softmax(Dense_E(ReLU(Dense_H(onehot(w)))))  gate: the worker's projection vector, length E
    proj(x, w) = sum_e v_e(w) u_e(x)                   the worker's view of the item, in R^d
    f_w(x) = o(proj(x, w))                             output module (ReLU MLP -> K logits, softmax)

    L = -(1/|D|) sum_{(i, j, y) in D} log f_{w_j}(x_i)[y]    (cross-entropy over the observed answers)

The paper adds ``lambda ||Theta||_F`` to the loss; the authors' code (Crowds24/MMLC, TensorFlow) has
no penalty, nor do we by default (``weight_decay=0``). The gate's attention layer acts on a sequence
of length 1, where it is the identity, and is left out.

The model never sees the true labels: the truth comes from an *oracle worker*, a projection vector
placed at the centre of the workers' vectors (:mod:`crowd.learning.oracle_worker`, MMLC-owf), or
from aggregating the answers of every worker predicted on every item (:mod:`crowd.learning.filling`,
MMLC-df).

Implementation notes (what differs from the authors' code):

* Training rows are the answers; a batch gathers the features of its rows' items by task index
  (no items x workers array, no per-answer copy of the features), and the experts run once per
  distinct item of the batch (the same item answered by several workers shares its expert outputs).
* The E experts are computed as one batched matrix product per layer (same function as E
  separate Dense layers). Weights start as Keras' (Glorot uniform, zero biases), Adam uses Keras'
  epsilon 1e-7, so the paper's learning rates mean the same.
* The authors shuffle the answers once and then train in that fixed order (``shuffle=False``);
  the one training loop reshuffles every epoch from the seed.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from crowd.data import CrowdData, as_crowd_data
from crowd.device import resolve_device
from crowd.learning.trainer import train

__all__ = ["MMLCNet", "MMLC"]

_ACTIVATIONS = {"relu": F.relu, "linear": lambda t: t, "identity": lambda t: t}


def _glorot_(weight: torch.Tensor, fan_in: int, fan_out: int, generator: torch.Generator) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.copy_(torch.rand(weight.shape, generator=generator) * (2 * bound) - bound)


class _Dense(nn.Module):
    """Keras-initialised dense layer (Glorot uniform kernel, zero bias)."""

    def __init__(self, n_in: int, n_out: int, generator: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        _glorot_(self.weight, n_in, n_out, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight)


class MMLCNet(nn.Module):
    """The MMLC network: E experts, a gate on the worker, the projection and the output module.

    Parameters
    ----------
    input_dim : item feature dimension (flattened).
    n_workers, n_classes : sizes of the crowd.
    n_experts : E.
    expert_hidden : widths of the experts' hidden ReLU layers (LabelMe (500, 128), Text (780, 128), Music (128,)).
    expert_dim : d, the width of each expert's last ReLU layer (32, or 16 for Music).
    gate_hidden : width of the gate's ReLU layer on the worker one-hot (``None``: n_workers, as the paper).
    gate_activation : ``"softmax"`` (paper) or ``"relu"`` (the authors' Music code).
    output_hidden : widths of the output module's hidden layers ((32, 32); Music (16,)).
    output_activation : ``"relu"`` (LabelMe, Text) or ``"linear"`` (the authors' Music code).
    seed : seeds the initial weights.
    """

    def __init__(self, input_dim: int, n_workers: int, n_classes: int, n_experts: int = 10,
                 expert_hidden: Sequence[int] = (128,), expert_dim: int = 16, gate_hidden: int | None = None,
                 gate_activation: str = "softmax", output_hidden: Sequence[int] = (32, 32),
                 output_activation: str = "relu", seed: int = 0):
        super().__init__()
        if input_dim < 1 or n_workers < 1 or n_classes < 2 or n_experts < 1 or expert_dim < 1:
            raise ValueError(f"need input_dim, n_workers, n_experts, expert_dim >= 1 and n_classes >= 2; got "
                             f"{input_dim}, {n_workers}, {n_experts}, {expert_dim}, {n_classes}")
        if gate_activation not in ("softmax", "relu"):
            raise ValueError(f"gate_activation must be 'softmax' or 'relu', got {gate_activation!r}")
        if output_activation not in _ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {sorted(_ACTIVATIONS)}, got {output_activation!r}")
        gen = torch.Generator().manual_seed(int(seed))
        self.input_dim, self.n_workers, self.n_classes = int(input_dim), int(n_workers), int(n_classes)
        self.n_experts, self.expert_dim = int(n_experts), int(expert_dim)
        self.gate_activation, self.output_activation = gate_activation, output_activation
        # experts: the first layer is one (D, E*H) matrix (one matmul for all experts), the next ones
        # (E, n_in, n_out) batched weights; each expert's slice is Glorot-initialised as its own Dense
        widths = [self.input_dim, *[int(h) for h in expert_hidden], self.expert_dim]
        first = torch.empty(self.n_experts, widths[0], widths[1])
        _glorot_(first, widths[0], widths[1], gen)
        self.expert_first = nn.Parameter(first.permute(1, 0, 2).reshape(widths[0], -1).contiguous())
        self.expert_first_bias = nn.Parameter(torch.zeros(self.n_experts * widths[1]))
        self.expert_weights = nn.ParameterList()
        self.expert_biases = nn.ParameterList()
        for n_in, n_out in zip(widths[1:-1], widths[2:]):
            w = torch.empty(self.n_experts, n_in, n_out)
            _glorot_(w, n_in, n_out, gen)
            self.expert_weights.append(nn.Parameter(w))
            self.expert_biases.append(nn.Parameter(torch.zeros(self.n_experts, 1, n_out)))
        # gate: Dense on a one-hot = a row lookup of the kernel
        hidden = self.n_workers if gate_hidden is None else int(gate_hidden)
        self.gate_hidden = _Dense(self.n_workers, hidden, gen)
        self.gate_out = _Dense(hidden, self.n_experts, gen)
        # output module
        out_widths = [self.expert_dim, *[int(h) for h in output_hidden]]
        self.output_layers = nn.ModuleList(_Dense(a, b, gen) for a, b in zip(out_widths[:-1], out_widths[1:]))
        self.output_last = _Dense(out_widths[-1], self.n_classes, gen)

    # ------------------------------------------------------------------ parts
    def experts(self, x: torch.Tensor) -> torch.Tensor:
        """U(x): (B, E, d) expert outputs."""
        x = x.reshape(len(x), -1)
        h = F.relu(torch.addmm(self.expert_first_bias, x, self.expert_first))  # (B, E*H)
        h = h.reshape(len(x), self.n_experts, -1).transpose(0, 1)  # (E, B, H)
        for w, b in zip(self.expert_weights, self.expert_biases):
            h = F.relu(torch.baddbmm(b, h, w))
        return h.transpose(0, 1)  # (B, E, d)

    def gate(self, workers: torch.Tensor) -> torch.Tensor:
        """v(w): (B, E) projection vectors of the workers (integer codes)."""
        h = F.relu(self.gate_hidden.weight.index_select(0, workers.long()) + self.gate_hidden.bias)
        z = self.gate_out(h)
        return torch.softmax(z, dim=1) if self.gate_activation == "softmax" else F.relu(z)

    def output(self, projection: torch.Tensor) -> torch.Tensor:
        """o(.) as logits: (B, d) -> (B, K)."""
        act = _ACTIVATIONS[self.output_activation]
        h = projection
        for layer in self.output_layers:
            h = act(layer(h))
        return self.output_last(h)

    @staticmethod
    def project(expert_out: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """sum_e v_e u_e(x): expert outputs (B, E, d), vectors (B, E) or (E,) -> (B, d)."""
        if v.ndim == 1:
            v = v.unsqueeze(0).expand(len(expert_out), -1)
        return torch.bmm(v.unsqueeze(1), expert_out).squeeze(1)

    def forward(self, x: torch.Tensor, workers: torch.Tensor, item_of_row: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the workers' answers. ``x`` holds item features; with ``item_of_row`` (B,), row r is
        the answer of ``workers[r]`` on item ``x[item_of_row[r]]`` (experts run once per item)."""
        u = self.experts(x)
        if item_of_row is not None:
            u = u.index_select(0, item_of_row)
        return self.output(self.project(u, self.gate(workers)))

    def forward_vector(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Logits of a worker given by its projection vector ``v`` (E,) or (B, E) (e.g. the oracle worker)."""
        return self.output(self.project(self.experts(x), v))


class _AnswerRows(nn.Module):
    """Training view: rows are answers (task code, worker code); features stay one row per item."""

    def __init__(self, net: MMLCNet, features: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("features", features, persistent=False)

    def forward(self, task: torch.Tensor, worker: torch.Tensor) -> torch.Tensor:
        items, item_of_row = torch.unique(task, return_inverse=True)
        return self.net(self.features.index_select(0, items), worker, item_of_row)


class MMLC:
    """MMLC estimator (Han et al., AAAI 2025): fit on the crowd's answers and the items' features.

    ``fit(data, inputs=None, valid=None)`` trains on every observed (item, worker, label) answer of
    ``data`` (a :class:`~crowd.data.CrowdData` or what :func:`~crowd.data.as_crowd_data` accepts);
    ``inputs`` are the item features (n_tasks, ...) and default to ``data.features``.

    Fitted attributes: ``net_`` (the :class:`MMLCNet`), ``history_`` (loss per epoch), ``data_``,
    ``n_workers_``, ``n_classes_``, ``device_``, ``fit_seconds_``.

    ``predict_proba(inputs, worker=None)``: ``worker`` an integer code -> that worker's answer
    distribution; a float vector of length E -> the worker with that projection vector (the oracle
    worker of MMLC-owf); an int array of length n -> row r answered by worker ``worker[r]``;
    ``None`` -> (n, n_workers, K) for every worker (small inputs only).
    """

    def __init__(self, n_experts: int = 10, expert_hidden: Sequence[int] = (128,), expert_dim: int = 16,
                 gate_hidden: int | None = None, gate_activation: str = "softmax",
                 output_hidden: Sequence[int] = (32, 32), output_activation: str = "relu",
                 epochs: int = 150, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0,
                 seed: int = 42, device: Any = "auto", progress: bool = True):
        self.n_experts = n_experts
        self.expert_hidden = tuple(expert_hidden)
        self.expert_dim = expert_dim
        self.gate_hidden = gate_hidden
        self.gate_activation = gate_activation
        self.output_hidden = tuple(output_hidden)
        self.output_activation = output_activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device
        self.progress = progress

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "MMLC":
        """The paper-size configuration of a dataset (see :mod:`crowd.experiments.settings.mmlc`)."""
        from crowd.experiments.settings.mmlc import mmlc_preset

        return cls(**{**mmlc_preset(name), **overrides})

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # ------------------------------------------------------------------ fit
    def fit(self, data: Any, inputs: Any = None, valid: Any = None) -> "MMLC":
        """Train on the observed answers (rows = answers, features gathered by task code).

        ``valid`` is accepted for the shared learner API and checked, but not used: MMLC has no
        validation step (the paper evaluates truth inference on the training items themselves)."""
        import time

        data = as_crowd_data(data)
        features = data.features if inputs is None else inputs
        if features is None:
            raise ValueError("MMLC needs item features: pass inputs= (n_tasks, ...) or fit on data with features")
        features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
        if len(features) != data.n_tasks:
            raise ValueError(f"inputs has {len(features)} rows for {data.n_tasks} tasks")
        if not np.all(np.isfinite(features)):
            raise ValueError("inputs hold NaN or infinite values")
        if valid is not None and (not isinstance(valid, (tuple, list)) or len(valid) != 2):
            raise ValueError("valid must be (inputs, labels)")
        dev = resolve_device(self.device)
        net = MMLCNet(features.shape[1], data.n_workers, data.n_classes, self.n_experts, self.expert_hidden,
                      self.expert_dim, self.gate_hidden, self.gate_activation, self.output_hidden,
                      self.output_activation, seed=self.seed)
        wrapper = _AnswerRows(net, torch.as_tensor(features))
        lr, wd = float(self.lr), float(self.weight_decay)

        def adam(params):  # Keras' Adam defaults (epsilon 1e-7)
            return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7, weight_decay=wd)

        start = time.perf_counter()
        result = train(wrapper, (data.task, data.worker), data.label, epochs=int(self.epochs),
                       batch_size=int(self.batch_size), optimizer=adam, lr=lr, weight_decay=wd, seed=int(self.seed),
                       device=dev, progress=self.progress, desc="MMLC")
        self.fit_seconds_ = time.perf_counter() - start
        self.net_ = result.model.net.eval()
        self.history_ = result.history
        self.data_ = data
        self.features_ = features
        self.n_workers_, self.n_classes_ = data.n_workers, data.n_classes
        self.device_ = dev
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError("MMLC is not fitted: call fit(data, inputs) first")

    def _features(self, inputs: Any) -> np.ndarray:
        x = self.features_ if inputs is None else np.asarray(inputs, dtype=np.float32)
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.net_.input_dim:
            raise ValueError(f"inputs have {x.shape[1]} features, the model was fitted on {self.net_.input_dim}")
        return x

    # -------------------------------------------------------------- outputs
    @torch.no_grad()
    def worker_embeddings(self) -> np.ndarray:
        """v(w) for every worker code: (n_workers, E), the workers in the spectral space."""
        self._check_fitted()
        codes = torch.arange(self.n_workers_, device=self.device_)
        return self.net_.gate(codes).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def expert_outputs(self, inputs: Any = None, batch_size: int = 4096) -> np.ndarray:
        """U(x): (n, E, d) expert outputs of the items (default: the training items)."""
        self._check_fitted()
        x = self._features(inputs)
        out = [self.net_.experts(torch.as_tensor(x[s:s + batch_size], device=self.device_)).cpu()
               for s in range(0, len(x), batch_size)]
        return torch.cat(out).numpy()

    @torch.no_grad()
    def predict_proba(self, inputs: Any = None, worker: Any = None, batch_size: int = 4096) -> np.ndarray:
        """Answer distributions (see the class docstring for ``worker``); ``inputs`` default to the training items."""
        self._check_fitted()
        x = self._features(inputs)
        net, dev = self.net_, self.device_
        if worker is None:
            codes = torch.arange(self.n_workers_, device=dev)
            chunk = max(1, batch_size // self.n_workers_)
            out = []
            for s in range(0, len(x), chunk):
                u = net.experts(torch.as_tensor(x[s:s + chunk], device=dev))
                b = len(u)
                rows = torch.arange(b, device=dev).repeat_interleave(self.n_workers_)
                logits = net.output(net.project(u.index_select(0, rows), net.gate(codes.repeat(b))))
                out.append(torch.softmax(logits, 1).reshape(b, self.n_workers_, -1).cpu())
            return torch.cat(out).numpy()
        w = np.asarray(worker)
        if w.ndim == 0:
            if not np.issubdtype(w.dtype, np.integer) or not 0 <= int(w) < self.n_workers_:
                raise ValueError(f"worker must be a code in [0, {self.n_workers_}) or a vector of length {net.n_experts}")
            w = np.full(len(x), int(w))
        if np.issubdtype(w.dtype, np.integer):
            if w.shape != (len(x),):
                raise ValueError(f"worker codes must have one entry per input row ({len(x)}), got shape {w.shape}")
            if len(w) and (w.min() < 0 or w.max() >= self.n_workers_):
                raise ValueError(f"worker codes out of range [0, {self.n_workers_})")
            out = [torch.softmax(net(torch.as_tensor(x[s:s + batch_size], device=dev),
                                     torch.as_tensor(w[s:s + batch_size], device=dev)), 1).cpu()
                   for s in range(0, len(x), batch_size)]
        else:
            if w.shape != (net.n_experts,):
                raise ValueError(f"a projection vector must have length E={net.n_experts}, got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError("the projection vector holds NaN or infinite values")
            v = torch.as_tensor(w, dtype=torch.float32, device=dev)
            out = [torch.softmax(net.forward_vector(torch.as_tensor(x[s:s + batch_size], device=dev), v), 1).cpu()
                   for s in range(0, len(x), batch_size)]
        return torch.cat(out).numpy() if out else np.empty((0, self.n_classes_))

    def predict(self, inputs: Any = None, worker: Any = None) -> np.ndarray:
        """Argmax of :meth:`predict_proba` (ties to the smallest class code)."""
        proba = self.predict_proba(inputs, worker)
        return proba.argmax(axis=-1)

    def predict_answers(self, task: np.ndarray, worker: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """Predicted answer distributions (n, K) of ``worker[r]`` on training item ``task[r]`` (flat pairs)."""
        self._check_fitted()
        task, worker = np.asarray(task, dtype=np.int64), np.asarray(worker, dtype=np.int64)
        if task.shape != worker.shape or task.ndim != 1:
            raise ValueError("task and worker must be 1-d arrays of the same length")
        if len(task) and (task.min() < 0 or task.max() >= len(self.features_)):
            raise ValueError(f"task codes out of range [0, {len(self.features_)})")
        if len(worker) and (worker.min() < 0 or worker.max() >= self.n_workers_):
            raise ValueError(f"worker codes out of range [0, {self.n_workers_})")
        feats = torch.as_tensor(self.features_, device=self.device_)
        view = _AnswerRows(self.net_, feats)
        out = []
        with torch.no_grad():
            for s in range(0, len(task), batch_size):
                t = torch.as_tensor(task[s:s + batch_size], device=self.device_)
                w = torch.as_tensor(worker[s:s + batch_size], device=self.device_)
                out.append(torch.softmax(view(t, w), 1).cpu())
        return torch.cat(out).numpy() if out else np.empty((0, self.n_classes_))

    def training_accuracy(self) -> float:
        """Share of the observed answers the fitted model reproduces (how well it fits the workers)."""
        self._check_fitted()
        pred = self.predict_answers(self.data_.task, self.data_.worker).argmax(1)
        return float(np.mean(pred == self.data_.label))
