"""Sparse EM kernels shared by the Dawid-Skene family (DS, one-coin, HDS) and GLAD.

The answers are held as one sparse one-hot matrix ``S`` of shape
(n_tasks, n_workers * K): ``S[i, j*K + l] = 1`` when worker ``j`` gave label ``l``
to task ``i``. Both EM steps are then sparse-dense products, cost O(n_answers * K),
and nothing of size tasks x workers is ever formed:

* E-step: ``log T = log rho + S @ L`` with ``L[(j, l), k] = log pi_j[k, l]``;
* M-step: ``S.T @ T`` gives the soft counts ``sum_i T_ik 1{y_ij = l}`` for every
  (worker, label) row and true class ``k``.

The torch twin uses ``index_select`` / ``index_add_`` over the flat answers so it
runs unchanged on CPU and CUDA. Which one runs is :func:`crowd.device.aggregator_device`'s
rule: numpy when the resolved device is the CPU, torch on CUDA, torch on the CPU for
``device="torch-cpu"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from crowd.data import CrowdData
from crowd.device import aggregator_device

#: floor applied before taking logs of probabilities (a zero stays finite: exp(-708))
TINY = np.finfo(np.float64).tiny


def safe_log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, TINY))


@dataclass
class AnswerIndex:
    """Precomputed sparse structures for the EM steps (built once per fit)."""

    n_tasks: int
    n_workers: int
    n_classes: int
    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    by_task: sp.csr_matrix  # (n_tasks, n_workers*K) one-hot answers
    by_worker_label: sp.csr_matrix  # its transpose, in CSR for fast products

    @classmethod
    def from_data(cls, data: CrowdData) -> "AnswerIndex":
        K = data.n_classes
        col = data.worker * K + data.label
        ones = np.ones(data.n_answers, dtype=np.float64)
        shape = (data.n_tasks, data.n_workers * K)
        by_task = sp.csr_matrix((ones, (data.task, col)), shape=shape)
        by_worker_label = sp.csr_matrix((ones, (col, data.task)), shape=shape[::-1])
        return cls(data.n_tasks, data.n_workers, K, data.task, data.worker, data.label, by_task, by_worker_label)


def _row_max(a: np.ndarray) -> np.ndarray:
    # a loop over the K columns: numpy's reductions along a short last axis are ~10x slower
    m = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        np.maximum(m, a[:, k], out=m)
    return m


def _row_sum(a: np.ndarray) -> np.ndarray:
    s = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        s += a[:, k]
    return s


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log(sum_k exp(a_ik)) per row, stable; rows with -inf everywhere give -inf."""
    m = _row_max(a)
    m[~np.isfinite(m)] = 0.0
    return m + np.log(_row_sum(np.exp(a - m[:, None])))


def normalise_log_rows(log_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In place: ``log_t`` (n, K) becomes ``exp(log_t - log Z)``; returns it and ``log Z`` (n,)."""
    m = _row_max(log_t)
    m[~np.isfinite(m)] = 0.0
    log_t -= m[:, None]
    np.exp(log_t, out=log_t)
    total = _row_sum(log_t)
    log_t /= total[:, None]
    return log_t, m + np.log(total)


def e_step_numpy(index: AnswerIndex, log_conf: np.ndarray, log_priors: np.ndarray) -> tuple[np.ndarray, float]:
    """Posterior ``T`` (n_tasks, K) and the observed-data log-likelihood.

    ``log T_ik = log rho_k + sum_{(i,j,l)} log pi_j[k, l] - log Z_i``, and
    ``log p(answers) = sum_i log Z_i``.
    """
    W, K = index.n_workers, index.n_classes
    table = np.ascontiguousarray(log_conf.transpose(0, 2, 1)).reshape(W * K, K)  # row (j, l) -> log pi_j[:, l]
    log_t = index.by_task @ table
    log_t += log_priors[None, :]
    posteriors, log_z = normalise_log_rows(log_t)
    return posteriors, float(log_z.sum())


def soft_counts_numpy(index: AnswerIndex, posteriors: np.ndarray) -> np.ndarray:
    """``N[j, k, l] = sum_i T_ik 1{y_ij = l}``, shape (n_workers, K, K)."""
    W, K = index.n_workers, index.n_classes
    counts = index.by_worker_label @ posteriors  # row (j, l), column k
    return np.ascontiguousarray(counts.reshape(W, K, K).transpose(0, 2, 1))


# --------------------------------------------------------------------------- torch
class TorchAnswerIndex:
    """Flat answer arrays on a torch device, for gather / index_add_ EM steps."""

    def __init__(self, data: CrowdData, device: Any, dtype: Any) -> None:
        import torch

        self.torch = torch
        self.device, self.dtype = device, dtype
        self.n_tasks, self.n_workers, self.n_classes = data.n_tasks, data.n_workers, data.n_classes
        K = data.n_classes
        self.task = torch.as_tensor(data.task, device=device)
        self.worker = torch.as_tensor(data.worker, device=device)
        self.label = torch.as_tensor(data.label, device=device)
        self.col = self.worker * K + self.label

    def e_step(self, log_conf: Any, log_priors: Any) -> tuple[Any, float]:
        torch = self.torch
        W, K = self.n_workers, self.n_classes
        table = log_conf.transpose(1, 2).reshape(W * K, K)
        log_t = log_priors.expand(self.n_tasks, K).clone()
        log_t.index_add_(0, self.task, table.index_select(0, self.col))
        log_z = torch.logsumexp(log_t, dim=1)
        return torch.exp(log_t - log_z[:, None]), float(log_z.sum())

    def soft_counts(self, posteriors: Any) -> Any:
        torch = self.torch
        W, K = self.n_workers, self.n_classes
        counts = torch.zeros(W * K, K, device=self.device, dtype=posteriors.dtype)
        counts.index_add_(0, self.col, posteriors.index_select(0, self.task))
        return counts.reshape(W, K, K).transpose(1, 2).contiguous()


def torch_safe_log(x: Any) -> Any:
    import torch

    return torch.log(torch.clamp(x, min=torch.finfo(x.dtype).tiny))


# ------------------------------------------------------------------ backends
class NumpyBackend:
    """Array operations of the EM loop on numpy + scipy.sparse."""

    name = "numpy"

    def __init__(self, data: CrowdData) -> None:
        self.index = AnswerIndex.from_data(data)
        self.K = data.n_classes

    def asarray(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def log(self, x: np.ndarray) -> np.ndarray:
        return safe_log(x)

    def e_step(self, log_conf: np.ndarray, log_priors: np.ndarray) -> tuple[np.ndarray, float]:
        return e_step_numpy(self.index, log_conf, log_priors)

    def soft_counts(self, posteriors: np.ndarray) -> np.ndarray:
        return soft_counts_numpy(self.index, posteriors)

    def normalise_rows(self, counts: np.ndarray, empty_row: np.ndarray | None = None) -> np.ndarray:
        totals = counts.sum(axis=-1, keepdims=True)
        fallback = np.full(counts.shape[-1], 1.0 / counts.shape[-1]) if empty_row is None else empty_row
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), fallback)

    def diagonal(self, x: np.ndarray) -> np.ndarray:
        return np.diagonal(x, axis1=-2, axis2=-1).copy()

    def from_diagonal(self, diag: np.ndarray) -> np.ndarray:
        """Confusions with ``diag`` (..., K) on the diagonal and (1 - diag)/(K - 1) off it."""
        K = diag.shape[-1]
        off = (1.0 - diag) / (K - 1)
        conf = np.repeat(off[..., :, None], K, axis=-1)
        idx = np.arange(K)
        conf[..., idx, idx] = diag
        return conf

    def mean_rows(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=0)


class TorchBackend:
    """The same operations in torch (gather / index_add_), on any device."""

    name = "torch"

    def __init__(self, data: CrowdData, device: Any, dtype: Any = None) -> None:
        import torch

        self.torch = torch
        self.dtype = torch.float64 if dtype is None else dtype
        self.device = device
        self.index = TorchAnswerIndex(data, device, self.dtype)
        self.K = data.n_classes

    def asarray(self, x: Any) -> Any:
        return self.torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy().astype(np.float64)

    def log(self, x: Any) -> Any:
        return torch_safe_log(x)

    def e_step(self, log_conf: Any, log_priors: Any) -> tuple[Any, float]:
        return self.index.e_step(log_conf, log_priors)

    def soft_counts(self, posteriors: Any) -> Any:
        return self.index.soft_counts(posteriors)

    def normalise_rows(self, counts: Any, empty_row: Any = None) -> Any:
        torch = self.torch
        totals = counts.sum(dim=-1, keepdim=True)
        K = counts.shape[-1]
        fallback = torch.full((K,), 1.0 / K, dtype=counts.dtype, device=counts.device) if empty_row is None else empty_row
        safe = torch.where(totals > 0, totals, torch.ones_like(totals))
        return torch.where(totals > 0, counts / safe, fallback.expand_as(counts))

    def diagonal(self, x: Any) -> Any:
        return self.torch.diagonal(x, dim1=-2, dim2=-1).clone()

    def from_diagonal(self, diag: Any) -> Any:
        torch = self.torch
        K = diag.shape[-1]
        off = (1.0 - diag) / (K - 1)
        conf = off[..., :, None].expand(*diag.shape, K).clone()
        idx = torch.arange(K, device=diag.device)
        conf[..., idx, idx] = diag
        return conf

    def mean_rows(self, x: Any) -> Any:
        return x.mean(dim=0)


def make_backend(data: CrowdData, device: Any = "auto", dtype: Any = None) -> NumpyBackend | TorchBackend:
    """numpy on the CPU, torch on CUDA (or on the CPU with ``device="torch-cpu"``): :func:`crowd.device.aggregator_device`."""
    resolved = aggregator_device(device)
    if resolved is None:
        return NumpyBackend(data)
    return TorchBackend(data, resolved, dtype)
