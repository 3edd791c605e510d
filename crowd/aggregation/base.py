"""Shared estimator API of the feature-blind aggregators (crowd-kit style).

``fit(data)`` accepts a :class:`~crowd.data.CrowdData`, crowd-kit's long DataFrame
(``task``, ``worker``, ``label``) or peerannot's ``answers.json`` (path or dict).
``fit_predict`` returns a Series of label codes indexed by task id; ``fit_predict_proba``
a DataFrame indexed by task id with one column per class code. Fitted attributes end
in ``_``: every aggregator sets ``probas_`` (n_tasks, n_classes), ``labels_`` (n_tasks,)
and ``data_`` (the CrowdData it was fitted on).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crowd.data import CrowdData, as_crowd_data


class Aggregator:
    """Base class: subclasses implement ``_fit(data)`` and set ``probas_`` (and optionally ``labels_``)."""

    probas_: np.ndarray
    labels_: np.ndarray
    data_: CrowdData

    def _fit(self, data: CrowdData) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, data: Any, **data_kwargs: Any) -> "Aggregator":
        data = as_crowd_data(data, **data_kwargs)
        data.require_all_tasks_answered()
        self.data_ = data
        if hasattr(self, "labels_"):
            del self.labels_
        self._fit(data)
        if not hasattr(self, "labels_"):
            self.labels_ = np.argmax(self.probas_, axis=1)
        return self

    def fit_predict(self, data: Any, **data_kwargs: Any) -> pd.Series:
        self.fit(data, **data_kwargs)
        return pd.Series(self.labels_, index=pd.Index(self.data_.task_ids, name="task"), name="agg_label")

    def fit_predict_proba(self, data: Any, **data_kwargs: Any) -> pd.DataFrame:
        self.fit(data, **data_kwargs)
        return pd.DataFrame(self.probas_, index=pd.Index(self.data_.task_ids, name="task"),
                            columns=pd.Index(range(self.data_.n_classes), name="label"))

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
