"""Evaluation metrics of the WAUM paper: top-k accuracy and expected calibration error.

Every function takes predicted class probabilities ``probas`` of shape (n, K) (numpy or
torch) and integer labels ``labels`` of shape (n,). ``accuracy`` also accepts hard
predictions of shape (n,).

ECE (Guo et al. 2017, as in Lefort et al. TMLR 2024, appendix C, eq. 12): with M = 15
equal-width bins I_m = ((m-1)/M, m/M] of the top-1 confidence sigma_[1](x),

    ECE = sum_m |B_m| / n * | acc(B_m) - conf(B_m) |,

where B_m holds the samples whose confidence falls in I_m, acc(B_m) is the share of them
whose argmax is right and conf(B_m) their mean confidence. The paper reports 1 - ECE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["accuracy", "top_k_accuracy", "ece", "one_minus_ece", "calibration_bins", "evaluate"]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check(probas: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _to_numpy(probas).astype(np.float64, copy=False)
    y = _to_numpy(labels)
    if p.ndim != 2:
        raise ValueError(f"probas must be (n_samples, n_classes), got shape {p.shape}")
    if y.ndim != 1 or len(y) != len(p):
        raise ValueError(f"labels must be 1-d with {len(p)} entries, got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("no samples to evaluate")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integer class codes, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= p.shape[1]:
        bad = np.unique(y[(y < 0) | (y >= p.shape[1])])[:5].tolist()
        raise ValueError(f"unknown label(s) {bad}: not in [0, {p.shape[1]})")
    return p, y.astype(np.int64)


def accuracy(predictions: Any, labels: Any) -> float:
    """Share of right predictions; ``predictions`` are probabilities (n, K) or hard labels (n,)."""
    pred = _to_numpy(predictions)
    if pred.ndim == 2:
        pred, y = _check(pred, labels)
        pred = pred.argmax(axis=1)
    else:
        y = _to_numpy(labels)
        if pred.shape != y.shape:
            raise ValueError(f"predictions {pred.shape} and labels {y.shape} differ in shape")
        if len(y) == 0:
            raise ValueError("no samples to evaluate")
    return float(np.mean(pred == y))


def top_k_accuracy(probas: Any, labels: Any, k: int = 2) -> float:
    """Share of samples whose label is among the ``k`` most probable classes.

    Ties are broken by class index, as ``argmax`` does for top-1 (so top-1 equals accuracy):
    the label's 0-based rank is the number of classes more probable than it plus the tied
    classes with a smaller index. Giving ties to the label instead would count every
    zero-probability class as "in the top k" of a one-hot prediction.
    """
    p, y = _check(probas, labels)
    if not 1 <= k <= p.shape[1]:
        raise ValueError(f"k must be in [1, {p.shape[1]}], got {k}")
    p_label = p[np.arange(len(y)), y]
    before = np.arange(p.shape[1])[None, :] < y[:, None]
    rank = (p > p_label[:, None]).sum(axis=1) + ((p == p_label[:, None]) & before).sum(axis=1)
    return float(np.mean(rank < k))


def calibration_bins(probas: Any, labels: Any, n_bins: int = 15) -> pd.DataFrame:
    """Per-bin count, accuracy and mean confidence (bins ((m-1)/M, m/M] of the top-1 confidence)."""
    p, y = _check(probas, labels)
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # right-closed bins: a confidence exactly m/M goes to bin m; 0 goes to the first bin
    bin_index = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bin_index, minlength=n_bins)
    acc_sum = np.bincount(bin_index, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(bin_index, weights=conf, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "lower": np.arange(n_bins) / n_bins,
            "upper": np.arange(1, n_bins + 1) / n_bins,
            "count": count,
            "accuracy": np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan),
            "confidence": np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan),
        })


def ece(probas: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins (Guo et al. 2017; 15 in the paper)."""
    bins = calibration_bins(probas, labels, n_bins)
    filled = bins["count"] > 0
    weights = bins.loc[filled, "count"] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins.loc[filled, "accuracy"] - bins.loc[filled, "confidence"])))


def one_minus_ece(probas: Any, labels: Any, n_bins: int = 15) -> float:
    """1 - ECE, the calibration score the WAUM paper reports (higher is better)."""
    return 1.0 - ece(probas, labels, n_bins)


def evaluate(probas: Any, labels: Any, n_bins: int = 15) -> dict[str, float]:
    """The paper's metrics at once: accuracy, top-2 accuracy (when K > 2), ECE and 1 - ECE."""
    p, y = _check(probas, labels)
    out = {"accuracy": accuracy(p, y), "ece": ece(p, y, n_bins)}
    out["one_minus_ece"] = 1.0 - out["ece"]
    if p.shape[1] > 2:
        out["top2_accuracy"] = top_k_accuracy(p, y, 2)
    return out


# ----------------------------------------------------------------------------- confusion matrices (CMM paper)
# Mena & Nanculef (CIARP 2019), section 5 and Table 4; definitions as the authors' code computes them
# (FMena14/MixtureofGroups code/utils.py: JS_confmatrixs, Entropy_confmatrix; REPLICATION_NOTES.md, CMM).

JS_CLIP = 1e-7


def _as_conf(x: Any, name: str) -> np.ndarray:
    a = _to_numpy(x).astype(np.float64, copy=False)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name} must hold square confusion matrices (..., K, K), got shape {a.shape}")
    if (a < 0).any() or not np.isfinite(a).all():
        raise ValueError(f"{name} holds negative or non-finite entries")
    return a


def _row_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row (natural log), each row normalised first as scipy.stats.entropy does."""
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    return np.sum(p * np.log(p / q), axis=-1)


def confusion_js(estimated: Any, true: Any, clip: float = JS_CLIP) -> np.ndarray | float:
    """Jensen-Shannon divergence between confusion matrices, log base 2 (so in [0, 1]), averaged over rows.

    For rows ``p`` (estimated) and ``q`` (true), both clipped to ``[clip, 1]``, ``m = (p + q) / 2``:
    ``JS = (KL(p || m) + KL(q || m)) / (2 ln 2)``, every distribution renormalised after clipping
    (the authors' ``JS_confmatrixs``); the result is the mean over the K rows. Inputs (..., K, K):
    a float for one pair of matrices, an array of the leading shape otherwise.
    """
    p, q = _as_conf(estimated, "estimated"), _as_conf(true, "true")
    if p.shape[-2:] != q.shape[-2:]:
        raise ValueError(f"confusion matrices differ in size: {p.shape[-2:]} vs {q.shape[-2:]}")
    p, q = np.clip(p, clip, 1.0), np.clip(q, clip, 1.0)
    m = 0.5 * p + 0.5 * q
    js = ((0.5 * _row_kl(p, m) + 0.5 * _row_kl(q, m)) / np.log(2)).mean(axis=-1)
    return float(js) if js.ndim == 0 else js


def individual_js(estimated: Any, true: Any, clip: float = JS_CLIP) -> float:
    """I-JS: the mean over annotators of :func:`confusion_js` between each annotator's estimated and true
    confusion (both (n_annotators, K, K), unweighted mean as the paper's tables)."""
    p, q = _as_conf(estimated, "estimated"), _as_conf(true, "true")
    if p.ndim != 3 or p.shape != q.shape:
        raise ValueError(f"need two (n_annotators, K, K) arrays of the same shape, got {p.shape} and {q.shape}")
    return float(np.mean(confusion_js(p, q, clip)))


def global_js(estimated: Any, true: Any, clip: float = JS_CLIP) -> float:
    """G-JS: :func:`confusion_js` between the estimated and the true global confusion (K, K)."""
    p, q = _as_conf(estimated, "estimated"), _as_conf(true, "true")
    if p.ndim != 2 or q.ndim != 2:
        raise ValueError(f"global confusions are (K, K) matrices, got shapes {p.shape} and {q.shape}")
    return float(confusion_js(p, q, clip))


def global_confusion(truth: Any, task: Any, label: Any, n_classes: int | None = None) -> np.ndarray:
    """Global confusion of a crowd: row-normalised ``sum_i t_i^T r_i`` over the answers (K, K).

    ``truth`` is the (n_tasks,) true class codes (the true global matrix of the notes), or (n_tasks, K)
    class probabilities (e.g. soft MV, giving MV's estimate); ``task``, ``label`` are the flat answer
    arrays. Cost O(n_answers K); a class without mass gets a uniform row.
    """
    t = _to_numpy(truth)
    task, label = _to_numpy(task).astype(np.int64), _to_numpy(label).astype(np.int64)
    if task.shape != label.shape or task.ndim != 1:
        raise ValueError("task and label must be 1-d arrays of the same length")
    if t.ndim == 1:
        K = int(n_classes if n_classes is not None else max(t.max(), label.max()) + 1)
        counts = np.bincount(t[task].astype(np.int64) * K + label, minlength=K * K).reshape(K, K).astype(np.float64)
    elif t.ndim == 2:
        K = t.shape[1]
        counts = np.zeros((K, K))
        for j in range(K):  # column j: sum of the task distributions of the answers labelled j
            counts[:, j] = t[task[label == j]].sum(axis=0)
    else:
        raise ValueError(f"truth must be (n_tasks,) codes or (n_tasks, K) probabilities, got shape {t.shape}")
    empty = counts.sum(axis=1) == 0
    counts[empty] = 1.0
    return counts / counts.sum(axis=1, keepdims=True)


def confusion_entropy(confusion: Any) -> np.ndarray | float:
    """H of the paper's Table 4: the mean over rows of the Shannon entropy (natural log) of each row,
    rows renormalised; log K for a uniform (spammer) matrix, 0 for a permutation."""
    c = _as_conf(confusion, "confusion")
    c = c / c.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(c > 0, c * np.log(c), 0.0).sum(axis=-1).mean(axis=-1)
    return float(h) if h.ndim == 0 else h


def identity_similarity(confusion: Any, clip: float = JS_CLIP) -> np.ndarray | float:
    """I_sim of the paper's Table 4: ``1 - JS(confusion, identity)`` with :func:`confusion_js` (base-2 JS,
    so I_sim is in [0, 1]: 1 for the identity, near 0 for a matrix that never gives the true class)."""
    c = _as_conf(confusion, "confusion")
    sim = 1.0 - confusion_js(c, np.broadcast_to(np.eye(c.shape[-1]), c.shape), clip)
    return float(sim) if np.ndim(sim) == 0 else sim


def group_matrix_table(alphas: Any, confusions: Any) -> pd.DataFrame:
    """Table 4 of the CMM paper: per group, its prior alpha_m, I_sim and H."""
    a = _to_numpy(alphas).astype(np.float64)
    c = _as_conf(confusions, "confusions")
    if c.ndim != 3 or len(a) != len(c):
        raise ValueError(f"need M alphas and (M, K, K) confusions, got {a.shape} and {c.shape}")
    return pd.DataFrame({"group": np.arange(1, len(a) + 1), "alpha": a,
                         "I_sim": np.atleast_1d(identity_similarity(c)), "H": np.atleast_1d(confusion_entropy(c))})


__all__ += ["confusion_js", "individual_js", "global_js", "global_confusion", "confusion_entropy",
            "identity_similarity", "group_matrix_table"]
