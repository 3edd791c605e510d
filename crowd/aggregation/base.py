"""Shared estimator API of the feature-blind aggregators (crowd-kit style).

``fit(data)`` accepts a :class:`~crowd.data.CrowdData`, crowd-kit's long DataFrame
(``task``, ``worker``, ``label``) or peerannot's ``answers.json`` (path or dict).
Inside, everything is integer coded; the API boundary decodes, as crowd-kit does:
``fit_predict`` returns a Series named ``agg_label`` of the *original* labels (strings,
ints or floats as they came in) indexed by task id (index named ``task``);
``fit_predict_proba`` a DataFrame indexed by task id with one column per original label
(columns named ``label``). Fitted attributes end in ``_``: every aggregator sets ``probas_``
(n_tasks, n_classes), ``labels_`` (n_tasks,) label *codes*, ``classes_`` (the original label
of each code) and ``data_`` (the CrowdData it was fitted on).

The checks of parameters every aggregator shares live here (``check_*``): a bad value is
refused when the estimator is built, with the parameter's name.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from crowd.data import CrowdData, as_crowd_data


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= minimum (bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_tol(name: str, value: Any, allow_none: bool = True) -> float | None:
    """A finite tolerance >= 0 (``None`` or ``0``: run every iteration)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ValueError(f"{name} must be a finite number >= 0{' or None' if allow_none else ''}, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0{' or None' if allow_none else ''}, got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: Any) -> float:
    """A finite real >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_seed(value: Any) -> Any:
    """None, an integer >= 0 or a numpy Generator."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    return check_int("seed", value, minimum=0)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; use one of {', '.join(map(repr, choices))}")
    return value


class Aggregator:
    """Base class: subclasses implement ``_fit(data)`` and set ``probas_`` (and optionally ``labels_``)."""

    probas_: np.ndarray
    labels_: np.ndarray
    data_: CrowdData

    def _fit(self, data: CrowdData) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, data: Any, **data_kwargs: Any) -> "Aggregator":
        """Fit on a CrowdData, a crowd-kit DataFrame or an answers.json (``data_kwargs``: ``classes=``,
        ``n_classes=``, ``class_names=`` of the converters)."""
        data = as_crowd_data(data, **data_kwargs)
        data.require_all_tasks_answered()
        self.data_ = data
        if hasattr(self, "labels_"):
            del self.labels_
        self._fit(data)
        if not hasattr(self, "labels_"):
            self.labels_ = np.argmax(self.probas_, axis=1)
        self.classes_ = data.classes
        return self

    def _task_index(self) -> pd.Index:
        return pd.Index(self.data_.task_ids, name="task")

    def predict(self) -> pd.Series:
        """The fitted labels as original labels, indexed by task id (crowd-kit's ``agg_labels_``)."""
        return pd.Series(self.data_.decode(self.labels_), index=self._task_index(), name="agg_label")

    def predict_proba(self) -> pd.DataFrame:
        """The fitted posteriors, one column per original label, indexed by task id."""
        return pd.DataFrame(self.probas_, index=self._task_index(), columns=pd.Index(self.data_.classes, name="label"))

    def fit_predict(self, data: Any, **data_kwargs: Any) -> pd.Series:
        return self.fit(data, **data_kwargs).predict()

    def fit_predict_proba(self, data: Any, **data_kwargs: Any) -> pd.DataFrame:
        return self.fit(data, **data_kwargs).predict_proba()

    def accuracy(self, gold: np.ndarray | None = None) -> float:
        """Share of tasks with a known gold label (code >= 0) whose aggregated label is right."""
        gold = self.data_.gold if gold is None else np.asarray(gold)
        if gold is None:
            raise ValueError("no gold labels: pass gold or fit on data that has them")
        known = gold >= 0
        return float(np.mean(self.labels_[known] == gold[known]))

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
