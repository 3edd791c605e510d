"""The one experiment runner: methods (strategy x pruning) x seeds -> a tidy results table.

Vocabulary
----------
- A **strategy** learns a classifier from a crowd and returns test probabilities. Two kinds:

  * :class:`AggregateThenTrain`: an aggregator (MV, NS, DS, GLAD, WDS, ...) gives training
    targets (hard labels when ``hard=True``, else soft labels), then the setup's classifier is
    trained on them with :func:`crowd.learning.trainer.train`. Aggregation is dispatched here
    and only here: the strategy holds a factory ``seed -> aggregator`` (any object whose
    ``fit(data)`` sets ``labels_`` or ``probas_``), so a paper's aggregator settings live in
    that paper's settings module (:mod:`crowd.experiments.settings`), not in this runner.
  * :class:`EndToEnd`: a learner trained on the answers themselves (CrowdLayer, CoNAL, and the
    CMM / MMLC models): ``make(setup, seed)`` returns an object with ``fit(data, inputs,
    valid=None)`` and ``predict_proba(X)``.

- A **pruning** (:class:`Pruning`) removes the ``ceil(alpha * n_tasks)`` tasks of lowest
  identification score (AUMC, WAUM, worker-wise WAUM; Lefort et al., TMLR 2024, algorithm 1)
  before the strategy runs; :data:`NO_PRUNING` keeps every task.
- A **method** (:class:`Method`) is one (strategy, pruning) pair with the name of its row in
  the paper's table (default ``"DS"``, ``"DS + WAUM"``). :func:`grid` builds the product.

For each seed, the identification networks are trained at most once (lazily, only for the
score families the methods need; :class:`Identification`) and shared by every method.

Rules (one of each, for every notebook)
---------------------------------------
- **AUMC labels and ties.** AUMC is the AUM of the majority-vote label, the SAME majority vote
  as the ``MV`` strategy: ties broken uniformly at random with the run's seed
  (``MajorityVote(tie_break="random", seed=seed)``), so no class is favoured. The alpha-quantile
  threshold and the pruning use the same margin (the pruning's ``margin``; peerannot computes
  the AUMC quantile on one margin and thresholds another). Exactly ``ceil(alpha * n)`` tasks
  are pruned; equal scores at the threshold are pruned in task order (lowest task code first),
  :func:`crowd.identification.scores.prune_mask`.
- **Re-aggregation.** After pruning, the kept tasks are re-coded, workers left without an
  answer are dropped (:func:`crowd.data.selection.drop_idle_workers`) and the strategy runs on
  the kept answers only (DS is re-fitted on them).
- **Seeds.** Seed ``s`` seeds the identification networks, the MV tie-break and every training
  (:func:`crowd.learning.trainer.seed_everything` right before each model is built, and the
  shuffling generator of ``train``): the results of a method do not depend on which other
  methods run, nor in what order; on the CPU they are bit-identical between runs.
- **Summary** (:func:`summarize`): mean and sample standard deviation (ddof = 1) over seeds;
  with a single run the standard deviation is undefined and is reported as NaN (never 0, which
  would claim a spread of zero).

Output of :func:`run`: one row per (seed, method) with columns ``dataset, seed, method,
strategy, pruning, alpha, n_train_tasks`` then the metrics (``accuracy, ece, one_minus_ece``,
``top2_accuracy`` when K > 2, ``train_accuracy`` when the crowd has gold labels). Accuracies
are fractions unless the setup says ``percent=True`` (the WAUM paper's real-data tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from crowd import metrics as _metrics
from crowd.data import CrowdData, as_crowd_data
from crowd.data.selection import drop_idle_workers
from crowd.learning.trainer import predict_proba, seed_everything, train

__all__ = [
    "ExperimentSetup", "Strategy", "AggregateThenTrain", "EndToEnd", "Pruning", "NO_PRUNING", "Method", "grid",
    "MARGIN_KINDS", "SCORE_FAMILIES", "Identification", "identify", "MethodResult", "run_method", "run",
    "Results", "summarize", "with_alpha", "METRICS", "PERCENT_METRICS",
]

METRICS = ("accuracy", "top2_accuracy", "ece", "one_minus_ece", "train_accuracy")
PERCENT_METRICS = ("accuracy", "top2_accuracy", "train_accuracy")
# margin key -> (margin kind of crowd.identification.scores.margins, top_k)
MARGIN_KINDS = {"yang": ("yang", 1), "pleiss": ("pleiss", 1), "yang_top2": ("yang", 2)}
SCORE_FAMILIES = ("aumc", "waum", "worker_wise")


# --------------------------------------------------------------------------------- setup
@dataclass
class ExperimentSetup:
    """Everything dataset-specific of an experiment (built by a paper's settings module).

    make_model : factory of the classifier trained on the (pruned) labels; also the backbone
        of end-to-end learners and, unless ``make_ident_model`` is given, the identification
        network.
    train_kwargs : arguments of :func:`crowd.learning.trainer.train` (``epochs`` required;
        batch_size, optimizer, lr, momentum, weight_decay, milestones, ...).
    test : (inputs, labels) of the test split.
    ident_kwargs : training of the identification networks (``epochs`` = T, optimiser...).
    alpha : share of tasks pruned when a :class:`Pruning` gives none.
    inputs : training inputs (n_tasks, ...); default ``data.features``.
    valid : (inputs, labels); when given, the epoch of best validation accuracy is kept.
    ds_kwargs : Dawid-Skene settings of the WAUM trust scores (the confusions pi_j).
    transform : batch augmentation (e.g. :func:`crowd.learning.trainer.random_crop_flip`).
    device : None (= ``"auto"``, see :mod:`crowd.device`) or a device.
    percent : report accuracies in % (the WAUM paper's Tables 2, 5-7) instead of fractions.
    """

    dataset: str
    make_model: Callable[[], nn.Module]
    train_kwargs: dict[str, Any]
    test: tuple[Any, Any]
    ident_kwargs: dict[str, Any] = field(default_factory=lambda: {"epochs": 50})
    make_ident_model: Callable[[], nn.Module] | None = None
    alpha: float = 0.01
    inputs: Any = None
    valid: tuple[Any, Any] | None = None
    ds_kwargs: dict[str, Any] = field(default_factory=dict)
    transform: Callable | None = None
    device: Any = None
    progress: bool = True
    percent: bool = False

    def train_inputs(self, data: CrowdData) -> Any:
        x = data.features if self.inputs is None else self.inputs
        if x is None:
            raise ValueError(f"{self.dataset}: no training inputs (the CrowdData has no features; set the setup's inputs)")
        if len(x) != data.n_tasks:
            raise ValueError(f"{self.dataset}: inputs have {len(x)} rows for {data.n_tasks} tasks")
        return x

    def training(self, kwargs: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(epochs, the other arguments of ``train``) from ``train_kwargs`` or ``ident_kwargs``."""
        out = {"device": self.device, "transform": self.transform, **kwargs}
        if "epochs" not in out:
            raise ValueError(f"{self.dataset}: training settings need 'epochs', got {sorted(kwargs)}")
        return out.pop("epochs"), out


# ------------------------------------------------------------------------------ strategies
class Strategy(Protocol):
    """A named way to learn from a crowd: ``fit_predict`` returns (test probabilities, training
    targets or None, a callable giving probabilities on any inputs)."""

    name: str

    def fit_predict(self, data: CrowdData, inputs: Any, setup: ExperimentSetup, seed: int) -> "Fitted": ...


@dataclass
class Fitted:
    test_probas: np.ndarray
    targets: np.ndarray | None  # (n_kept, K) soft labels, or (n_kept,) hard labels; None for end-to-end
    predict: Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class AggregateThenTrain:
    """Aggregate the answers, then train ``setup.make_model`` on the targets.

    aggregator : ``seed -> unfitted aggregator``; ``fit(data)`` must set ``labels_`` (``hard``)
        or ``probas_`` (soft labels, rows summing to 1).
    hard : train on the aggregated labels (cross-entropy on one class) instead of soft labels.
    """

    name: str
    aggregator: Callable[[int], Any]
    hard: bool = False

    def targets(self, data: CrowdData, seed: int = 0) -> np.ndarray:
        """(n_tasks,) int labels when ``hard``, else (n_tasks, K) soft labels."""
        model = self.aggregator(seed).fit(data)
        if self.hard:
            return np.asarray(model.labels_, dtype=np.int64)
        return np.asarray(model.probas_, dtype=np.float64)  # the aggregators return numpy on every device

    def fit_predict(self, data: CrowdData, inputs: Any, setup: ExperimentSetup, seed: int) -> Fitted:
        targets = self.targets(data, seed)
        epochs, kwargs = setup.training(setup.train_kwargs)
        seed_everything(seed)
        result = train(setup.make_model(), inputs, targets, epochs=epochs, valid=setup.valid,
                       keep_best=setup.valid is not None, seed=seed, progress=setup.progress,
                       desc=f"{setup.dataset} {self.name}", **kwargs)

        def predict(x: Any) -> np.ndarray:
            return predict_proba(result.model, x, device=result.device)

        return Fitted(predict(setup.test[0]), targets, predict)


@dataclass(frozen=True)
class EndToEnd:
    """A learner trained on the answers: ``make(setup, seed)`` returns an object with
    ``fit(data, inputs, valid=None)`` (inputs: one row per task of ``data``, the kept tasks after a
    pruning) and ``predict_proba(X)`` (CrowdLayer, CoNAL, CMM, MMLC: :class:`crowd.learning.base.CrowdLearner`)."""

    name: str
    make: Callable[[ExperimentSetup, int], Any]

    def fit_predict(self, data: CrowdData, inputs: Any, setup: ExperimentSetup, seed: int) -> Fitted:
        seed_everything(seed)
        learner = self.make(setup, seed)
        learner.fit(data, inputs, valid=setup.valid)  # the inputs positionally: CrowdLearner's ``inputs``
        return Fitted(np.asarray(learner.predict_proba(setup.test[0])), None, learner.predict_proba)


# ------------------------------------------------------------------------------- prunings
@dataclass(frozen=True)
class Pruning:
    """Remove the ``ceil(alpha * n_tasks)`` tasks of lowest ``score`` (``"aumc"``, ``"waum"`` or
    ``"worker_wise"``) computed with ``margin`` (a key of :data:`MARGIN_KINDS`); ``alpha=None``
    takes the setup's alpha. ``score=None`` is no pruning."""

    name: str
    score: str | None = None
    margin: str = "yang"
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.score is not None and self.score not in SCORE_FAMILIES:
            raise ValueError(f"pruning {self.name!r}: unknown score {self.score!r}; choose among {SCORE_FAMILIES}")
        if self.margin not in MARGIN_KINDS:
            raise ValueError(f"pruning {self.name!r}: unknown margin {self.margin!r}; choose among {sorted(MARGIN_KINDS)}")
        if self.alpha is not None and not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"pruning {self.name!r}: alpha must be in [0, 1), got {self.alpha}")

    @property
    def prunes(self) -> bool:
        return self.score is not None


NO_PRUNING = Pruning("none")


@dataclass(frozen=True)
class Method:
    """One row of a results table: a strategy, a pruning and the row's name
    (default ``strategy.name``, or ``"<strategy> + <pruning>"`` when it prunes)."""

    strategy: Any
    pruning: Pruning = NO_PRUNING
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return self.strategy.name if not self.pruning.prunes else f"{self.strategy.name} + {self.pruning.name}"


def grid(strategies: Iterable[Any], prunings: Iterable[Pruning] = (NO_PRUNING,)) -> list[Method]:
    """Every strategy under every pruning, pruning-major (the order of the papers' tables)."""
    strategies = list(strategies)
    return [Method(s, p) for p in prunings for s in strategies]


# ------------------------------------------------------------------------- identification
class _MultiRecorder:
    """Several AUM recorders fed by the same training steps (one training, every margin)."""

    def __init__(self, recorders: dict[str, Any]):
        self.recorders = recorders

    def __call__(self, epoch: int, rows: torch.Tensor, logits: torch.Tensor) -> None:
        for rec in self.recorders.values():
            rec(epoch, rows, logits)


class Identification:
    """AUMC, WAUM and worker-wise WAUM scores of one crowd for one seed, computed on first use.

    ``aumc``, ``waum``, ``worker_wise``: margin key -> (n_tasks,) scores; ``aum`` /
    ``worker_wise_aum``: margin key -> (n_answers,) AUM of each answer (stacked / per-worker
    networks); ``trust`` / ``worker_wise_trust``: (n_answers,) trust scores; ``confusions``:
    the DS confusions of the trust scores; ``mv_labels``: the labels the AUMC network learns.
    Each family trains its network(s) once and records every margin in ``margins``.
    """

    def __init__(self, data: CrowdData, setup: ExperimentSetup, seed: int = 0,
                 margins: Sequence[str] = ("yang",), inputs: Any = None):
        for key in margins:
            if key not in MARGIN_KINDS:
                raise ValueError(f"unknown margin key {key!r}; choose among {sorted(MARGIN_KINDS)}")
        self.data = drop_idle_workers(as_crowd_data(data))
        self.data.require_all_tasks_answered()
        self.setup, self.seed = setup, seed
        self.inputs = setup.train_inputs(self.data) if inputs is None else inputs
        self.margins = [k for k in dict.fromkeys(margins) if MARGIN_KINDS[k][1] < self.data.n_classes]
        self.aumc: dict[str, np.ndarray] = {}
        self.waum: dict[str, np.ndarray] = {}
        self.worker_wise: dict[str, np.ndarray] = {}
        self.aum: dict[str, np.ndarray] = {}
        self.worker_wise_aum: dict[str, np.ndarray] = {}
        self.trust: np.ndarray | None = None
        self.worker_wise_trust: np.ndarray | None = None
        self._confusions: np.ndarray | None = None
        self._mv: np.ndarray | None = None

    # the labels and confusions every family shares
    @property
    def mv_labels(self) -> np.ndarray:
        from crowd.aggregation.majority_vote import MajorityVote

        if self._mv is None:
            self._mv = np.asarray(MajorityVote(tie_break="random", seed=self.seed).fit(self.data).labels_, dtype=np.int64)
        return self._mv

    @property
    def confusions(self) -> np.ndarray:
        from crowd.aggregation.dawid_skene import DawidSkene

        if self._confusions is None:
            conf = DawidSkene(**self.setup.ds_kwargs).fit(self.data).confusions_
            self._confusions = np.asarray(conf, dtype=np.float64)
        return self._confusions

    def scores(self, pruning: Pruning) -> np.ndarray:
        """(n_tasks,) scores of a pruning, training the networks of its family if needed."""
        if not pruning.prunes:
            raise ValueError(f"pruning {pruning.name!r} has no scores")
        family = getattr(self, pruning.score)
        if pruning.margin not in family:
            if pruning.margin not in self.margins:
                self.margins.append(pruning.margin)
                if family:  # the family was trained without this margin: train again, recording all margins
                    family.clear()
            {"aumc": self._fit_aumc, "waum": self._fit_waum, "worker_wise": self._fit_worker_wise}[pruning.score]()
        return family[pruning.margin]

    def keep_mask(self, pruning: Pruning, alpha: float | None = None) -> np.ndarray:
        """Tasks kept: all but the ``ceil(alpha * n_tasks)`` lowest scores (ties pruned in task order)."""
        from crowd.identification.scores import prune_mask

        if not pruning.prunes:
            return np.ones(self.data.n_tasks, dtype=bool)
        alpha = pruning.alpha if alpha is None else alpha
        return prune_mask(self.scores(pruning), self.setup.alpha if alpha is None else alpha)

    def _recorders(self, labels: np.ndarray) -> _MultiRecorder:
        from crowd.identification.scores import AUMRecorder

        return _MultiRecorder({k: AUMRecorder(labels, self.data.n_classes, *MARGIN_KINDS[k]) for k in self.margins})

    def _train(self, labels: np.ndarray, recorder: Any, desc: str, input_index: Any = None) -> None:
        make = self.setup.make_ident_model or self.setup.make_model
        epochs, kwargs = self.setup.training(self.setup.ident_kwargs)
        seed_everything(self.seed)
        train(make(), self.inputs, labels, epochs=epochs, step_callback=recorder, input_index=input_index,
              seed=self.seed, progress=self.setup.progress, desc=f"{self.setup.dataset} {desc}", **kwargs)

    def _fit_aumc(self) -> None:
        rec = self._recorders(self.mv_labels)
        self._train(self.mv_labels, rec, "AUMC")
        self.aumc.update({k: r.aum for k, r in rec.recorders.items()})

    def _fit_waum(self) -> None:
        from crowd.identification.scores import trust_scores, weighted_task_average

        d = self.data
        conf = self.confusions
        rec = self._recorders(d.label)
        self._train(d.label, rec, "WAUM", input_index=d.task)
        last = next(iter(rec.recorders.values())).last_probas.numpy()
        self.trust = trust_scores(conf, d.worker, last)
        self.aum.update({k: r.aum for k, r in rec.recorders.items()})
        self.waum.update({k: weighted_task_average(d.task, self.aum[k], self.trust, d.n_tasks) for k in self.margins})

    def _fit_worker_wise(self) -> None:
        from crowd.identification.scores import WorkerWiseWAUM

        make = self.setup.make_ident_model or self.setup.make_model
        epochs, kwargs = self.setup.training(self.setup.ident_kwargs)
        for key in self.margins:  # one network per worker and margin (algorithm 4)
            kind, top_k = MARGIN_KINDS[key]
            seed_everything(self.seed)
            model = make()
            ww = WorkerWiseWAUM(epochs=epochs, margin=kind, top_k=top_k, confusions=self.confusions, seed=self.seed,
                                progress=self.setup.progress, **kwargs).fit(self.data, model, self.inputs)
            self.worker_wise[key], self.worker_wise_aum[key] = ww.waum_, ww.aum_
            self.worker_wise_trust = ww.trust_


def identify(data: Any, setup: ExperimentSetup, seed: int = 0, margins: Sequence[str] = ("yang",),
             families: Sequence[str] = ("aumc", "waum")) -> Identification:
    """The identification of one seed with the given families already computed (others on demand)."""
    ident = Identification(data, setup, seed, margins)
    for family in families:
        if family not in SCORE_FAMILIES:
            raise ValueError(f"unknown score family {family!r}; choose among {SCORE_FAMILIES}")
        for key in ident.margins:
            ident.scores(Pruning(family, family, key))
    return ident


# ---------------------------------------------------------------------------------- runs
@dataclass
class MethodResult:
    """One method on one crowd and seed: the kept tasks, the training targets (NaN rows for
    pruned tasks; None for end-to-end learners), test and training probabilities, metrics."""

    method: str
    keep: np.ndarray
    targets: np.ndarray | None
    test_probas: np.ndarray
    train_probas: np.ndarray
    metrics: dict[str, float]


def _take(x: Any, idx: np.ndarray) -> Any:
    if isinstance(x, torch.Tensor):
        return x.index_select(0, torch.as_tensor(idx, device=x.device))
    return np.asarray(x)[idx]


def _full_targets(targets: np.ndarray | None, keep: np.ndarray, n_classes: int) -> np.ndarray | None:
    if targets is None:
        return None
    out = np.full((len(keep), n_classes), np.nan)
    out[keep] = np.eye(n_classes)[targets] if targets.ndim == 1 else targets
    return out


def run_method(data: Any, method: Method, setup: ExperimentSetup, seed: int = 0,
               identification: Identification | None = None) -> MethodResult:
    """Prune (when the method prunes), fit the strategy on the kept answers, evaluate on ``setup.test``."""
    data = drop_idle_workers(as_crowd_data(data))
    x = setup.train_inputs(data)
    pruning = method.pruning
    if pruning.prunes:
        if identification is None:
            identification = Identification(data, setup, seed, (pruning.margin,), inputs=x)
        elif identification.seed != seed or identification.data.n_tasks != data.n_tasks:
            raise ValueError(f"the identification was computed for seed {identification.seed} on "
                             f"{identification.data.n_tasks} tasks, not seed {seed} on {data.n_tasks}")
        keep = identification.keep_mask(pruning)
        kept = np.flatnonzero(keep)
        sub, sub_x = drop_idle_workers(data.subset_tasks(kept)), _take(x, kept)
    else:
        keep = np.ones(data.n_tasks, dtype=bool)
        sub, sub_x = data, x
    fitted = method.strategy.fit_predict(sub, sub_x, setup, seed)
    test_y = np.asarray(setup.test[1])
    out = _metrics.evaluate(fitted.test_probas, test_y)
    train_probas = np.asarray(fitted.predict(x))
    if data.gold is not None and np.any(data.gold >= 0):
        known = data.gold >= 0
        out["train_accuracy"] = _metrics.accuracy(train_probas[known], data.gold[known])
    if setup.percent:
        out = {k: 100 * v if k in PERCENT_METRICS else v for k, v in out.items()}
    return MethodResult(method.label, keep, _full_targets(fitted.targets, keep, data.n_classes), fitted.test_probas,
                        train_probas, out)


@dataclass
class Results:
    """What :func:`run` returns: the tidy ``table`` (one row per seed and method), the
    identification of every (repetition, seed) and, for crowds of at most 10 workers, the
    workers' own test accuracy per repetition (``workers``: repetition, dataset, worker, accuracy)."""

    table: pd.DataFrame
    identifications: dict[int, Identification]
    workers: pd.DataFrame


def _needed_margins(methods: Sequence[Method]) -> list[str]:
    return list(dict.fromkeys(m.pruning.margin for m in methods if m.pruning.prunes))


def run(data: Any, methods: Sequence[Method], setup: ExperimentSetup | Callable[[CrowdData], ExperimentSetup],
        seeds: Sequence[int] = (0,), progress: bool | None = None) -> Results:
    """Every method for every seed.

    ``data`` is a crowd (the same crowd for every seed: the WAUM paper's protocol, which varies
    only the training seed) or a callable ``seed -> crowd`` (a new crowd per seed). ``setup``
    is an :class:`ExperimentSetup` or a callable ``crowd -> setup`` (for crowds that carry
    their own test split, e.g. the simulations).
    """
    names = [m.label for m in methods]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two methods share the row name(s) {dup}; give them distinct Method(name=...)")
    rows, idents, worker_rows = [], {}, []
    seeds = list(seeds)
    fixed = None if callable(data) and not isinstance(data, CrowdData) else drop_idle_workers(as_crowd_data(data))
    for seed in seeds:
        crowd = fixed if fixed is not None else drop_idle_workers(as_crowd_data(data(seed)))
        s = setup(crowd) if callable(setup) and not isinstance(setup, ExperimentSetup) else setup
        show = s.progress if progress is None else progress
        ident = Identification(crowd, s, seed, _needed_margins(methods)) if any(m.pruning.prunes for m in methods) else None
        for m in tqdm(methods, desc=f"{s.dataset} seed {seed}", disable=not show, leave=False):
            res = run_method(crowd, m, s, seed, ident)
            pruning = m.pruning
            alpha = (pruning.alpha if pruning.alpha is not None else s.alpha) if pruning.prunes else 0.0
            rows.append({"dataset": s.dataset, "seed": seed, "method": res.method, "strategy": m.strategy.name,
                         "pruning": pruning.name, "alpha": alpha, "n_train_tasks": int(res.keep.sum()), **res.metrics})
        if ident is not None:
            idents[seed] = ident
        names_w = crowd.meta.get("workers") if crowd.meta else None
        if names_w is not None and len(names_w) <= 10 and "worker_test_accuracy" in crowd.meta:
            for w, acc in zip(names_w, crowd.meta["worker_test_accuracy"]):
                worker_rows.append({"seed": seed, "dataset": s.dataset, "worker": w, "accuracy": float(acc)})
    table = pd.DataFrame(rows)
    metric_cols = [c for c in METRICS if c in table.columns]
    table = table[[c for c in table.columns if c not in metric_cols] + metric_cols]
    return Results(table, idents, pd.DataFrame(worker_rows, columns=["seed", "dataset", "worker", "accuracy"]))


def summarize(table: pd.DataFrame, metrics: Sequence[str] | None = None, note: str = "") -> pd.DataFrame:
    """The project's reproduced-table format: ``dataset, method, metric, value, std, n_runs, note``.

    ``value`` is the mean over seeds, ``std`` the sample standard deviation (ddof = 1), NaN when
    there is a single run; rows keep the order of the methods in ``table``.
    """
    metrics = [m for m in (METRICS if metrics is None else metrics) if m in table.columns]
    if not metrics:
        raise ValueError(f"none of the metrics {list(METRICS) if metrics is None else metrics} is in the table")
    long = table.melt(id_vars=["dataset", "method", "seed"], value_vars=metrics, var_name="metric",
                      value_name="v").dropna(subset=["v"])
    out = (long.groupby(["dataset", "method", "metric"], sort=False)["v"]
           .agg(value="mean", std="std", n_runs="count").reset_index())  # pandas std: ddof=1, NaN for one value
    order = {m: i for i, m in enumerate(dict.fromkeys(table["method"]))}
    metric_order = {m: i for i, m in enumerate(metrics)}
    out = out.assign(_m=out["method"].map(order), _k=out["metric"].map(metric_order))
    out = out.sort_values(["dataset", "_m", "_k"], kind="stable").drop(columns=["_m", "_k"]).reset_index(drop=True)
    out["note"] = note
    return out


def with_alpha(pruning: Pruning, alpha: float, name: str | None = None) -> Pruning:
    """The same pruning at another level (its name defaults to ``"<name> (alpha=<alpha>)"``)."""
    return replace(pruning, alpha=alpha, name=name or f"{pruning.name} (alpha={alpha:g})")
