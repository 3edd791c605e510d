"""One benchmark run in its own process (started by :mod:`benchmarks.bench`).

Usage: ``python _bench_child.py IMPL DATA.npz OUT.json N_ITER``

Standalone on purpose: the peers run it with ``.venv-bench/bin/python``, where the
``crowd`` package is not installed; only ``ours_*`` implementations import ``crowd``.
Timed: the fit alone (the conversion of the answers to each library's input format is
done before the clock starts). Peak memory: the process's maximum resident set size,
which includes the interpreter, the libraries and the loaded answers.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any, Callable

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


# ----------------------------------------------------------------------- ours
def _crowd_data(z: dict[str, np.ndarray]) -> Any:
    from crowd.data import CrowdData

    n_tasks, n_workers, n_classes = (int(z[k]) for k in ("n_tasks", "n_workers", "n_classes"))
    return CrowdData(z["task"], z["worker"], z["label"], n_tasks, n_workers, n_classes)


def _ours(name: str) -> tuple[Callable, Callable]:
    def prepare(z: dict[str, np.ndarray]) -> Any:
        # imports happen here, before the clock starts
        from crowd.aggregation import GLAD, DawidSkene, MajorityVote, OneCoinDawidSkene

        if name.endswith("_torch"):
            import torch

            torch.set_num_threads(1)  # the benchmark compares single-threaded work
        factories = {
            "ours_mv": lambda n: MajorityVote(tie_break="random", seed=0),
            "ours_ds": lambda n: DawidSkene(n_iter=n, tol=None),
            "ours_ds_torch": lambda n: DawidSkene(n_iter=n, tol=None, device="auto"),
            "ours_ds_conv": lambda n: DawidSkene(n_iter=100, tol=1e-6),
            "ours_onecoin": lambda n: OneCoinDawidSkene(n_iter=n, tol=None),
            "ours_glad": lambda n: GLAD(n_iter=n, tol=None),
            "ours_glad_torch": lambda n: GLAD(n_iter=n, tol=None, device="auto"),
            "ours_glad_conv": lambda n: GLAD(n_iter=100, tol=1e-6),
        }
        return factories[name], _crowd_data(z)

    def fit(prepared: Any, n_iter: int) -> tuple[np.ndarray, int | None]:
        factory, data = prepared
        model = factory(n_iter).fit(data)
        return np.asarray(model.labels_), getattr(model, "n_iter_", None)

    return prepare, fit


OURS = ("ours_mv", "ours_ds", "ours_ds_torch", "ours_ds_conv", "ours_onecoin", "ours_glad", "ours_glad_torch",
        "ours_glad_conv")


# ------------------------------------------------------------------- crowd-kit
def _crowdkit(cls_name: str, iterative: bool) -> tuple[Callable, Callable]:
    def prepare(z: dict[str, np.ndarray]) -> Any:
        import crowdkit.aggregation  # noqa: F401 (imported before the clock starts)
        import pandas as pd

        return pd.DataFrame({"task": z["task"], "worker": z["worker"], "label": z["label"]}), int(z["n_tasks"])

    def fit(prepared: Any, n_iter: int) -> tuple[np.ndarray, int | None]:
        import crowdkit.aggregation as ca

        df, n_tasks = prepared
        # tol=-inf: crowd-kit stops when the loss change is below tol, so it runs all n_iter iterations
        model = getattr(ca, cls_name)(n_iter=n_iter, tol=-np.inf) if iterative else getattr(ca, cls_name)()
        labels = model.fit_predict(df)
        pred = labels.reindex(range(n_tasks)).fillna(-1).to_numpy().astype(np.int64)
        done = len(getattr(model, "loss_history_", [])) or None
        return pred, done

    return prepare, fit


# ------------------------------------------------------------------- peerannot
def _peerannot(kind: str) -> tuple[Callable, Callable]:
    def prepare(z: dict[str, np.ndarray]) -> Any:
        import peerannot.models  # noqa: F401 (imported before the clock starts)

        answers: dict[int, dict[int, int]] = {}
        for t, w, lab in zip(z["task"].tolist(), z["worker"].tolist(), z["label"].tolist()):
            answers.setdefault(t, {})[w] = lab
        return answers, int(z["n_classes"]), int(z["n_workers"]), int(z["n_tasks"])

    def fit(prepared: Any, n_iter: int) -> tuple[np.ndarray, int | None]:
        # peerannot 0.0.1.post43 API; building each model's dense arrays is part of its cost
        answers, K, W, n_tasks = prepared
        if kind == "mv":
            from peerannot.models import MajorityVoting

            model = MajorityVoting(answers, n_classes=K)
            return np.asarray(model.get_answers()).astype(np.int64), None
        if kind == "ds":
            from peerannot.models import DawidSkene

            model = DawidSkene(answers, n_workers=W, n_classes=K)
            # epsilon=0: stops only if the log-likelihood repeats exactly, so it runs all n_iter iterations
            _, done = model.run(epsilon=0.0, maxiter=n_iter)
            return np.asarray(model.get_answers()).astype(np.int64), done
        if kind == "glad":
            import tempfile
            from pathlib import Path

            from peerannot.models import GLAD

            with tempfile.TemporaryDirectory() as tmp:  # GLAD.run saves abilities/difficulties there
                model = GLAD(answers, n_classes=K, n_workers=W, dataset=Path(tmp))
                # one E+M step before its loop, then up to maxiter more: n_iter in all (epsilon<0 never stops)
                model.run(epsilon=-1.0, maxiter=n_iter - 1)
                return np.asarray(model.get_answers()).astype(np.int64), n_iter
        raise ValueError(kind)

    return prepare, fit


def runners() -> dict[str, tuple[Callable, Callable]]:
    table = {name: _ours(name) for name in OURS}
    table.update({
        "crowdkit_mv": _crowdkit("MajorityVote", iterative=False),
        "crowdkit_ds": _crowdkit("DawidSkene", iterative=True),
        "crowdkit_onecoin": _crowdkit("OneCoinDawidSkene", iterative=True),
        "crowdkit_glad": _crowdkit("GLAD", iterative=True),
        "peerannot_mv": _peerannot("mv"),
        "peerannot_ds": _peerannot("ds"),
        "peerannot_glad": _peerannot("glad"),
    })
    return table


def main(argv: list[str]) -> int:
    impl, data_path, out_path, n_iter = argv[0], argv[1], argv[2], int(argv[3])
    prepare, fit = runners()[impl]
    with np.load(data_path) as npz:
        z = {k: npz[k] for k in npz.files}
    prepared = prepare(z)
    rss_before = _peak_mb()
    start = time.perf_counter()
    pred, done = fit(prepared, n_iter)
    wall = time.perf_counter() - start
    gold = z["gold"]
    result = {
        "impl": impl, "status": "ok", "wall_s": wall, "n_iter": done,
        "accuracy": float(np.mean(pred == gold)), "peak_rss_mb": _peak_mb(), "rss_before_fit_mb": rss_before,
    }
    if impl == "ours_ds":
        # per-iteration cost without the one-off setup: a second fit with a single iteration
        start = time.perf_counter()
        fit(prepared, 1)
        one = time.perf_counter() - start
        result["per_iter_s"] = (wall - one) / max(n_iter - 1, 1)
        result["setup_s"] = max(one - result["per_iter_s"], 0.0)
    with open(out_path, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
