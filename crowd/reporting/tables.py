"""Reproduced tables built from the package's pieces (used by the notebooks, tested on their own)."""

from __future__ import annotations

from typing import Callable, Mapping

import pandas as pd

from crowd.data import CrowdData

AggregatorFactory = Callable[[], object]


def mmlc_feature_blind_methods() -> dict[str, AggregatorFactory]:
    """MMLC Table 1's feature-blind aggregators with the settings of the authors' code (REPLICATION_NOTES)."""
    from crowd.aggregation import DawidSkene, FastDawidSkene, HomogeneousDawidSkene, MajorityVote

    return {
        # MMLC's code reads labels as strings, so its "smallest label" on ties is the smallest as text ("10" < "2")
        "MV": lambda: MajorityVote(tie_break="string"),
        "DS": lambda: DawidSkene(init="diagonal", init_diagonal=0.7, n_iter=10, tol=None),
        "FDS": lambda: FastDawidSkene(),
        "HDS": lambda: HomogeneousDawidSkene(),
    }


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
