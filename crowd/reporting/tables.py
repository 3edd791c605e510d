"""Reproduced tables built from the package's pieces (used by the notebooks, tested on their own)."""

from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd

from crowd.data import CrowdData

AggregatorFactory = Callable[[], object]


def mmlc_feature_blind_methods() -> dict[str, AggregatorFactory]:
    """MMLC Table 1's feature-blind aggregators with the settings of the authors' code: the named presets
    of :mod:`crowd.experiments.settings.mmlc` (MV ties to the smallest label as text, DS init diagonal
    0.7 and 10 iterations, FDS, HDS up to 20 iterations)."""
    from crowd.experiments.settings.mmlc import mmlc_aggregators

    return mmlc_aggregators()


def truth_inference_table(data: Mapping[str, CrowdData], methods: Mapping[str, AggregatorFactory],
                          notes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Accuracy (%) of each aggregator against the gold labels of the annotated tasks, long format.

    Columns: dataset, method, metric ("accuracy"), value, n_tasks, note (e.g. the substitute used).
    """
    rows = []
    for ds_name, ds in data.items():
        if ds.gold is None:
            raise ValueError(f"dataset {ds_name!r} has no gold labels to score against")
        for method, make in methods.items():
            agg = make().fit(ds)
            rows.append({"dataset": ds_name, "method": method, "metric": "accuracy", "value": 100 * agg.accuracy(),
                         "n_tasks": int((ds.gold >= 0).sum()), "note": (notes or {}).get(ds_name, "")})
    return pd.DataFrame(rows)
