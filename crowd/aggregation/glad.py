"""GLAD (Whitehill, Ruvolo, Wu, Bergsma & Movellan, NIPS 2009), multiclass.

Model: worker ``j`` has ability ``alpha_j`` (any real; negative = adversarial), task ``i``
has inverse difficulty ``beta_i = exp(b_i) > 0``. The answer is right with probability

    p(y_ij = z_i | alpha_j, beta_i) = sigma(alpha_j * beta_i),

and a wrong answer is uniform over the K - 1 other labels. Priors, as in the paper's code:
``alpha_j ~ N(mu_alpha, var_alpha)``, ``b_i = log beta_i ~ N(mu_b, var_b)``, both (1, 1) by
default (crowd-kit's defaults too); class priors ``rho`` fixed (uniform unless given) or
learnt (``learn_priors=True``).

EM (MAP), on the flat answers, in log space, O(n_answers) per step:

* E-step: with ``s_ij = alpha_j beta_i`` and ``log sigma(s) - log(1 - sigma(s)) = s``,
  ``log T_ik = log rho_k + sum_{j} [log(1 - sigma(s_ij)) - log(K - 1)]
  + sum_{j: y_ij = k} [s_ij + log(K - 1)] - log Z_i``: one scatter-add of a scalar per answer.
* M-step: maximise ``Q = sum_answers [w_ij log sigma(s_ij) + (1 - w_ij)(log(1 - sigma(s_ij)) - log(K-1))]
  + log prior`` where ``w_ij = T_{i, y_ij}`` (posterior that the answer is right), by
  ``m_step_iter`` steps of Fisher scoring (diagonal: every alpha_j and every b_i has its
  own curvature ``sum sigma(1 - sigma) (ds/dtheta)^2 + 1/var``) with step halving whenever Q
  would decrease, so every M-step increases Q and the log-posterior never decreases
  (generalised EM). Whitehill et al. and crowd-kit use conjugate gradient instead
  (crowd-kit: scipy CG, at most 25 steps, tol 1e-2), so the iterates differ slightly.

``loglik_history_`` records the observed-data log-likelihood plus the log prior of
alpha and b (the MAP objective EM climbs), one value per E-step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crowd.data import CrowdData
from crowd.aggregation._em import logsumexp_rows
from crowd.aggregation.base import Aggregator, check_int, check_nonnegative, check_tol
from crowd.device import aggregator_device

__all__ = ["GLAD"]


class _NumpyOps:
    name = "numpy"

    def __init__(self, data: CrowdData) -> None:
        self.task, self.worker, self.label = data.task, data.worker, data.label
        self.n_tasks, self.n_workers, self.K = data.n_tasks, data.n_workers, data.n_classes
        self.task_label = data.task * data.n_classes + data.label

    def array(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def scatter(self, index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
        return np.bincount(index, weights=weights, minlength=size)

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)

    @staticmethod
    def softplus(x: np.ndarray) -> np.ndarray:
        """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable and faster than np.logaddexp."""
        out = np.abs(x)
        np.negative(out, out=out)
        np.exp(out, out=out)
        np.log1p(out, out=out)
        out += np.maximum(x, 0.0)
        return out

    logsumexp_rows = staticmethod(logsumexp_rows)

    @staticmethod
    def item(x: Any) -> float:
        return float(x)


class _TorchOps:
    name = "torch"

    def __init__(self, data: CrowdData, device: Any, dtype: Any) -> None:
        import torch

        self.torch = torch
        self.device, self.dtype = device, dtype
        self.n_tasks, self.n_workers, self.K = data.n_tasks, data.n_workers, data.n_classes
        self.task = torch.as_tensor(data.task, device=device)
        self.worker = torch.as_tensor(data.worker, device=device)
        self.label = torch.as_tensor(data.label, device=device)
        self.task_label = self.task * data.n_classes + self.label

    def array(self, x: Any) -> Any:
        return self.torch.as_tensor(np.asarray(x), dtype=self.dtype, device=self.device)

    def numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy().astype(np.float64)

    def scatter(self, index: Any, weights: Any, size: int) -> Any:
        out = self.torch.zeros(size, dtype=weights.dtype, device=weights.device)
        return out.index_add_(0, index, weights)

    def exp(self, x: Any) -> Any:
        return self.torch.exp(x)

    def log(self, x: Any) -> Any:
        return self.torch.log(self.torch.as_tensor(x, dtype=self.dtype, device=self.device))

    def softplus(self, x: Any) -> Any:
        return self.torch.nn.functional.softplus(x, beta=1.0, threshold=30.0)

    def logsumexp_rows(self, a: Any) -> Any:
        return self.torch.logsumexp(a, dim=1)

    @staticmethod
    def item(x: Any) -> float:
        return float(x)


class GLAD(Aggregator):
    """GLAD (Whitehill et al. 2009), multiclass, EM with a Fisher-scoring M-step (see module docstring).

    Parameters
    ----------
    n_iter, tol : EM iterations and stopping threshold on the change of the MAP objective per
        answer (``tol=None`` or 0 runs exactly n_iter).
    m_step_iter : Fisher-scoring steps per M-step; m_step_tol: stop them when Q improves by
        less than this per answer.
    alpha_prior, log_beta_prior : (mean, variance) of the Gaussian priors on alpha_j and b_i = log beta_i.
    priors : class priors rho (uniform if None); learn_priors: update rho in the M-step.
    device : "auto" (numpy on the CPU, torch on CUDA), "cpu", "cuda", "torch-cpu" (torch on the CPU) or a
        torch.device (:func:`crowd.device.aggregator_device`); dtype: torch dtype (float64).

    Fitted: ``alphas_`` (n_workers,), ``betas_`` (n_tasks,) = exp(b), ``probas_``, ``labels_``,
    ``priors_``, ``loglik_history_``, ``n_iter_``.
    """

    def __init__(
        self,
        n_iter: int = 100,
        tol: float | None = 1e-6,
        m_step_iter: int = 5,
        m_step_tol: float = 1e-7,
        alpha_prior: tuple[float, float] = (1.0, 1.0),
        log_beta_prior: tuple[float, float] = (1.0, 1.0),
        priors: np.ndarray | None = None,
        learn_priors: bool = False,
        device: Any = "auto",
        dtype: Any = None,
        progress: bool = False,
    ) -> None:
        self.n_iter = check_int("n_iter", n_iter)
        self.tol = check_tol("tol", tol)
        self.m_step_iter = check_int("m_step_iter", m_step_iter)
        self.m_step_tol = check_nonnegative("m_step_tol", m_step_tol)
        for name, prior in (("alpha_prior", alpha_prior), ("log_beta_prior", log_beta_prior)):
            try:
                mean, var = (float(v) for v in prior)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name} must be a (mean, variance) pair, got {prior!r}") from err
            if not (np.isfinite(mean) and np.isfinite(var) and var > 0):
                raise ValueError(f"{name} must have a finite mean and a positive finite variance, got {prior!r}")
        self.alpha_prior = alpha_prior
        self.log_beta_prior = log_beta_prior
        self.priors = priors
        self.learn_priors = learn_priors
        self.device = device
        self.dtype = dtype
        self.progress = progress

    # ------------------------------------------------------------------ pieces
    def _log_prior(self, ops: Any, alpha: Any, b: Any) -> float:
        (ma, va), (mb, vb) = self.alpha_prior, self.log_beta_prior
        return -0.5 * (ops.item(((alpha - ma) ** 2).sum()) / va + ops.item(((b - mb) ** 2).sum()) / vb)

    def _e_step(self, ops: Any, alpha: Any, b: Any, log_rho: Any) -> tuple[Any, float]:
        K = ops.K
        log_k1 = float(np.log(K - 1))
        s = alpha[ops.worker] * ops.exp(b)[ops.task]
        log_wrong = -ops.softplus(s) - log_k1  # log p(y = l | z = k), l != k: log(1 - sigma(s)) - log(K - 1)
        base = ops.scatter(ops.task, log_wrong, ops.n_tasks)  # every class pays the "wrong" price
        bonus = ops.scatter(ops.task_label, s + log_k1, ops.n_tasks * K).reshape(ops.n_tasks, K)
        log_t = bonus + base[:, None] + log_rho[None, :]
        log_z = ops.logsumexp_rows(log_t)
        posteriors = ops.exp(log_t - log_z[:, None])
        return posteriors, ops.item(log_z.sum()) + self._log_prior(ops, alpha, b)

    def _q(self, ops: Any, s: Any, w_right: Any, alpha: Any, b: Any) -> tuple[float, Any]:
        """Expected complete log-likelihood + log prior, and softplus(-s) = -log sigma(s) for reuse.

        With softplus(s) = softplus(-s) + s:  w log sigma(s) + (1 - w)(log(1 - sigma(s)) - log(K - 1))
        = -softplus(-s) - (1 - w) s - (1 - w) log(K - 1).
        """
        log_k1 = float(np.log(ops.K - 1))
        sp_neg = ops.softplus(-s)
        wrong = 1.0 - w_right
        value = -ops.item(sp_neg.sum()) - ops.item((wrong * s).sum()) - log_k1 * ops.item(wrong.sum())
        return value + self._log_prior(ops, alpha, b), sp_neg

    def _m_step(self, ops: Any, posteriors: Any, alpha: Any, b: Any, n_answers: int) -> tuple[Any, Any]:
        (ma, va), (mb, vb) = self.alpha_prior, self.log_beta_prior
        w_right = posteriors.reshape(-1)[ops.task_label]  # T_{i, y_ij}
        beta = ops.exp(b)
        s = alpha[ops.worker] * beta[ops.task]
        q, sp_neg = self._q(ops, s, w_right, alpha, b)
        for _ in range(self.m_step_iter):
            sig = ops.exp(-sp_neg)  # sigma(s)
            resid = w_right - sig
            curv = sig * (1.0 - sig)
            beta_t = beta[ops.task]
            grad_a = ops.scatter(ops.worker, resid * beta_t, ops.n_workers) - (alpha - ma) / va
            fisher_a = ops.scatter(ops.worker, curv * beta_t * beta_t, ops.n_workers) + 1.0 / va
            grad_b = ops.scatter(ops.task, resid * s, ops.n_tasks) - (b - mb) / vb
            fisher_b = ops.scatter(ops.task, curv * s * s, ops.n_tasks) + 1.0 / vb
            step_a, step_b = grad_a / fisher_a, grad_b / fisher_b
            t = 1.0
            for _halving in range(30):
                new_alpha, new_b = alpha + t * step_a, b + t * step_b
                new_beta = ops.exp(new_b)
                new_s = new_alpha[ops.worker] * new_beta[ops.task]
                new_q, new_sp_neg = self._q(ops, new_s, w_right, new_alpha, new_b)
                if new_q >= q:
                    break
                t *= 0.5
            else:  # no ascent direction left: at the optimum up to rounding
                break
            improvement = new_q - q
            alpha, b, beta, s, q, sp_neg = new_alpha, new_b, new_beta, new_s, new_q, new_sp_neg
            if improvement / n_answers < self.m_step_tol:
                break
        return alpha, b

    # ------------------------------------------------------------------ fit
    def _fit(self, data: CrowdData) -> None:
        if data.n_classes == 1:  # nothing to infer: every task has the only class
            self.probas_ = np.ones((data.n_tasks, 1))
            self.alphas_ = np.full(data.n_workers, float(self.alpha_prior[0]))
            self.betas_ = np.full(data.n_tasks, float(np.exp(self.log_beta_prior[0])))
            self.priors_, self.loglik_history_, self.n_iter_, self.backend_ = np.ones(1), [0.0], 0, "none"
            return
        device = aggregator_device(self.device)
        if device is None:
            ops: Any = _NumpyOps(data)
        else:
            import torch

            ops = _TorchOps(data, device, torch.float64 if self.dtype is None else self.dtype)
        K = data.n_classes
        rho = np.full(K, 1.0 / K) if self.priors is None else np.asarray(self.priors, dtype=float)
        if rho.shape != (K,) or (rho <= 0).any() or not np.isclose(rho.sum(), 1.0):
            raise ValueError(f"priors must be a positive distribution over the {K} classes")
        log_rho = ops.array(np.log(rho))
        alpha = ops.array(np.full(data.n_workers, self.alpha_prior[0]))
        b = ops.array(np.full(data.n_tasks, self.log_beta_prior[0]))

        history: list[float] = []
        iterator = range(self.n_iter)
        if self.progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="GLAD")
        for _ in iterator:
            posteriors, objective = self._e_step(ops, alpha, b, log_rho)
            history.append(objective)
            if len(history) > 1 and self.tol and abs(history[-1] - history[-2]) / data.n_answers < self.tol:
                break
            alpha, b = self._m_step(ops, posteriors, alpha, b, data.n_answers)
            if self.learn_priors:
                log_rho = ops.log(posteriors.mean(0))
        self.probas_ = ops.numpy(posteriors)
        self.alphas_ = ops.numpy(alpha)
        self.betas_ = np.exp(ops.numpy(b))
        self.priors_ = np.exp(ops.numpy(log_rho))
        self.loglik_history_ = history
        self.n_iter_ = len(history)
        self.backend_ = ops.name
