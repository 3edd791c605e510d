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
