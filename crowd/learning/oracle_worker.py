"""MMLC-owf: truth inference by the oracle worker of a fitted MMLC model (Han et al., AAAI 2025, eq. 8-9).

Every worker is taken as the oracle worker plus random error, so the oracle's projection vector is the
centre of the workers' vectors v(w) in the spectral space::

    v_oracle = tau(v(W)),        g(x) = argmax_k o(sum_e v_oracle,e u_e(x))_k

``tau`` is one of (paper, Figure 3):

* ``"kde"``: per coordinate, a 1-D Gaussian kernel density of the workers' values, evaluated on
  ``grid_size`` evenly spaced points between the coordinate's minimum and maximum; the densest point
  (first one on ties). Bandwidths of the authors' code: 0.05 LabelMe, 0.001 Text, 1 Music; grid: as many
  points as workers (LabelMe, Music), 100 (Text).
* ``"mean"``, ``"median"``: per coordinate.
* ``"kde-w"``, ``"mean-w"``, ``"median-w"``: the same with every worker weighted by his share of the
  labels (weighted KDE, weighted mean, weighted median: smallest value whose cumulative weight
  reaches half).

Every centre is renormalised to sum 1 (as the gate's softmax outputs do).

``"truth"`` is the paper's upper limit of any centre: experts and output module fixed, the one vector v
(on the simplex, v = softmax(theta)) fitted by cross-entropy on the TRUE labels of the items.

What differs from the authors' code: their "-W" variants (commented out in ``getOracleWorker.py``)
multiply each worker's vector by his weight and apply the unweighted centre to the scaled vectors; for
the mean this equals the weighted mean after renormalisation, for the median and the KDE it does not
(the KDE bandwidth no longer matches the scale). Here the weights enter the estimators.
``weighting="scale"`` reproduces their version. Their "Truth" script freezes the output layer and
fits nothing; here v is fitted, as the paper describes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["CENTRES", "kde_mode", "weighted_median", "oracle_vector", "label_shares", "OracleWorker",
           "fit_truth_vector", "owf_runs"]

CENTRES = ("kde", "kde-w", "mean", "mean-w", "median", "median-w")


def kde_mode(values: np.ndarray, bandwidth: float, grid_size: int | None = None,
             weights: np.ndarray | None = None) -> float:
    """Densest point of a 1-D Gaussian KDE of ``values`` on ``linspace(min, max, grid_size)``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("kde_mode needs at least one value")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    n_grid = values.size if grid_size is None else int(grid_size)
    if n_grid < 1:
        raise ValueError(f"grid_size must be >= 1, got {grid_size}")
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    grid = np.linspace(values.min(), values.max(), n_grid)
    # log-sum-exp over workers for each grid point (stable for tiny bandwidths such as Text's 0.001)
    z = -0.5 * ((grid[:, None] - values[None, :]) / bandwidth) ** 2 + np.log(np.maximum(w, 1e-300))[None, :]
    m = z.max(axis=1, keepdims=True)
    log_density = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))).ravel()
    return float(grid[int(np.argmax(log_density))])


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Smallest value whose cumulative weight reaches half of the total."""
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1] - 1e-12)])


def label_shares(data: Any) -> np.ndarray:
    """Each worker's share of the answers (the weights of the "-W" centres)."""
    counts = np.bincount(data.worker, minlength=data.n_workers).astype(np.float64)
    return counts / counts.sum()


def oracle_vector(embeddings: np.ndarray, method: str = "kde", *, bandwidth: float = 0.05,
                  grid_size: int | None = None, weights: np.ndarray | None = None,
                  weighting: str = "estimator") -> np.ndarray:
    """The oracle worker's projection vector: the centre ``method`` of the rows of ``embeddings``
    (n_workers, E), renormalised to sum 1. ``weights`` (n_workers,) are needed by the "-w" methods."""
    V = np.asarray(embeddings, dtype=np.float64)
    if V.ndim != 2 or len(V) == 0:
        raise ValueError(f"embeddings must be (n_workers, E) with at least one worker, got shape {V.shape}")
    if not np.all(np.isfinite(V)):
        raise ValueError("embeddings hold NaN or infinite values")
    method = method.lower()
    if method not in CENTRES:
        raise ValueError(f"unknown centre {method!r}; choose one of {CENTRES}")
    weighted = method.endswith("-w")
    base = method[:-2] if weighted else method
    w = None
    if weighted:
        if weights is None:
            raise ValueError(f"{method!r} needs weights (each worker's share of the labels: label_shares(data))")
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(V),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(V)} non-negative numbers with a positive sum")
        if weighting == "scale":  # the authors' variant: centre of the scaled vectors
            V, w = V * w[:, None], None
        elif weighting != "estimator":
            raise ValueError(f"weighting must be 'estimator' or 'scale', got {weighting!r}")
    if base == "mean":
        centre = V.mean(axis=0) if w is None else (w[:, None] * V).sum(axis=0) / w.sum()
    elif base == "median":
        centre = np.median(V, axis=0) if w is None else np.array([weighted_median(V[:, e], w) for e in range(V.shape[1])])
    else:
        centre = np.array([kde_mode(V[:, e], bandwidth, grid_size, w) for e in range(V.shape[1])])
    total = centre.sum()
    if not np.isfinite(total) or abs(total) < 1e-12:
        raise ValueError("the centre sums to 0 and cannot be renormalised")
    return centre / total


def fit_truth_vector(model: Any, labels: np.ndarray, inputs: Any = None, *, steps: int = 500, lr: float = 0.05,
                     seed: int = 0) -> np.ndarray:
    """The paper's "Truth" upper limit: v = softmax(theta) fitted by full-batch Adam on the cross-entropy
    of ``o(sum_e v_e u_e(x))`` against the true ``labels`` (items with label -1 ignored); experts and
    output module stay fixed."""
    model._check_fitted()
    labels = np.asarray(labels, dtype=np.int64)
    known = labels >= 0
    U = torch.as_tensor(model.expert_outputs(inputs)[known])
    y = torch.as_tensor(labels[known])
    if len(y) == 0:
        raise ValueError("no known labels to fit the truth vector on")
    net = model.net_.cpu()
    try:
        for p in net.parameters():
            p.requires_grad_(False)
        torch.manual_seed(int(seed))
        theta = torch.zeros(net.n_experts, requires_grad=True)
        opt = torch.optim.Adam([theta], lr=lr)
        for _ in range(int(steps)):
            loss = torch.nn.functional.cross_entropy(net.output(net.project(U, torch.softmax(theta, 0))), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p in net.parameters():
            p.requires_grad_(True)
        net.to(model.device_)
    return torch.softmax(theta.detach(), 0).numpy().astype(np.float64)


class OracleWorker:
    """MMLC-owf on a fitted :class:`~crowd.learning.mmlc.MMLC` model.

    ``fit(model, data=None)`` computes ``vector_`` (the oracle's projection) with ``method``; the "-w"
    methods take the label shares of ``data`` (default: the model's training data); ``"truth"`` fits
    the vector on ``data.gold``. Then ``predict_proba(inputs=None)`` / ``predict`` give o(U(x) v_oracle);
    ``labels_``, ``probas_`` hold them for the training items.
    """

    def __init__(self, method: str = "kde", bandwidth: float = 0.05, grid_size: int | None = None,
                 weighting: str = "estimator"):
        self.method = method
        self.bandwidth = bandwidth
        self.grid_size = grid_size
        self.weighting = weighting

    def fit(self, model: Any, data: Any = None) -> "OracleWorker":
        model._check_fitted()
        data = model.data_ if data is None else data
        self.model_ = model
        self.embeddings_ = model.worker_embeddings()
        if self.method.lower() == "truth":
            if data.gold is None:
                raise ValueError("the 'truth' upper limit needs gold labels")
            self.vector_ = fit_truth_vector(model, data.gold)
        else:
            weights = label_shares(data) if self.method.lower().endswith("-w") else None
            self.vector_ = oracle_vector(self.embeddings_, self.method, bandwidth=self.bandwidth,
                                         grid_size=self.grid_size, weights=weights, weighting=self.weighting)
        self.probas_ = model.predict_proba(None, worker=self.vector_)
        self.labels_ = self.probas_.argmax(axis=1)
        self.data_ = data
        return self

    def predict_proba(self, inputs: Any = None) -> np.ndarray:
        return self.model_.predict_proba(inputs, worker=self.vector_)

    def predict(self, inputs: Any = None) -> np.ndarray:
        return self.predict_proba(inputs).argmax(axis=1)

    def accuracy(self, gold: np.ndarray | None = None) -> float:
        gold = self.data_.gold if gold is None else np.asarray(gold)
        if gold is None:
            raise ValueError("no gold labels")
        known = gold >= 0
        return float(np.mean(self.labels_[known] == gold[known]))


def owf_runs(data: Any, preset: str, seeds: Any, *, methods: Any = ("kde",), smoke: bool = False,
             progress: bool = False, **overrides: Any) -> "pd.DataFrame":
    """Fit MMLC with the dataset's preset once per seed and score the oracle worker of each centre.

    Returns a long DataFrame: dataset, seed, method ("MMLC-owf (kde)", ..., "MMLC-owf (truth)"), metric
    ("accuracy", %), value, fit_seconds, epochs. ``smoke`` uses the preset's few smoke epochs.
    """
    import pandas as pd

    from crowd.experiments.settings.mmlc import mmlc_preset, owf_preset
    from crowd.learning.mmlc import MMLC

    rows = []
    for seed in seeds:
        params = {**mmlc_preset(preset, smoke=smoke), **overrides, "seed": int(seed), "progress": progress}
        model = MMLC(**params).fit(data)
        for method in methods:
            ow = OracleWorker(**{**owf_preset(preset), "method": method}).fit(model)
            rows.append({"dataset": data.name, "seed": int(seed), "method": f"MMLC-owf ({method})", "metric": "accuracy",
                         "value": 100 * ow.accuracy(), "fit_seconds": model.fit_seconds_, "epochs": params["epochs"]})
    return pd.DataFrame(rows)
