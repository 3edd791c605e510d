"""End-to-end WAUM experiments on real crowds (Lefort et al., TMLR 2024, section 4.2, Tables 2, 5-7).

For every repetition (seed):

1. **Identification** (once per seed, shared by all strategies):

   - AUMC: a network trained for T epochs on the majority-vote labels; AUM of the MV label (eq. 3).
   - WAUM: ONE network trained for T epochs on the stacked answers (one row per answer); AUM of
     each answer, trust ``s_j(x_i) = <diag(pi_j), sigma^(T)(x_i)>`` with the Dawid-Skene confusions
     of the full data, ``WAUM(x_i) = sum_j s_j AUM_ij / sum_j s_j`` (eq. 4-5).

   Every margin is recorded from the same training runs: ``yang`` (psi5, the paper's default),
   ``pleiss`` (psi1) and ``yang_top2`` (sigma_y - sigma_[3], the top-2 margin of appendix G).
2. **Pruning**: the ``ceil(alpha * n_tasks)`` tasks of lowest score are removed (algorithm 1,
   line 11). Prunings: ``none``, ``AUMC``, ``WAUM``, and for Table 7 ``WAUM(psi1)`` (Pleiss margin)
   and ``WAUM(psi5)`` (Yang & Koyejo top-2 margin).
3. **Re-aggregation on the pruned answers** with each strategy (MV, NS, DS, GLAD, WDS: DS is
   re-run on the kept answers), then training the classifier on the (soft) labels; or, for
   CrowdLayer and CoNAL, end-to-end training on the kept answers.
4. **Evaluation** on the test split: top-1 and top-2 accuracy (in %), ECE with 15 bins and
   1 - ECE (fractions), as the paper reports them.

What differs from the authors' scripts (peerannot ``datasets/*/run_all.sh``), on purpose:

* ``strategy + WAUM`` aggregates the pruned answers with that strategy; the authors' script
  trains every ``strategy + WAUM`` run on the same WDS labels of the pruned data.
* No test-set model selection: peerannot copies Music's test set into its validation folder
  and keeps the epoch with the lowest loss there. Here the epoch is chosen on a validation
  split when the dataset has one (LabelMe), otherwise the last epoch is kept (Music).
* AUMC is thresholded on the same margin its quantile is computed on.

The result is a long DataFrame (``dataset, method, strategy, pruning, seed, metric, value,
n_train_tasks``); :func:`summarize` turns it into the project's reproduced-table format
(mean, std over seeds, ``n_runs``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from crowd.data import CrowdData, as_crowd_data
from crowd.metrics import evaluate
from crowd.learning.trainer import predict_proba, seed_everything, train

__all__ = [
    "STRATEGIES", "AGGREGATION_STRATEGIES", "DEEP_STRATEGIES", "PRUNINGS", "WaumSetup", "Identification",
    "identify", "aggregate", "fit_strategy", "method_name", "run_seed", "run", "summarize", "standardize",
    "Experiment", "available_strategies", "labelme_experiment", "music_experiment", "confidence_intervals",
    "plot_forest", "worst_tasks", "plot_image_rows", "cap_answers", "cifar10h_experiment", "cifar10_train_set",
    "cifar10h_full_requirements", "images_to_tensor_normalised", "drop_idle_workers", "paired_differences",
    "pruned_tasks_summary",
]

AGGREGATION_STRATEGIES = ("MV", "NS", "DS", "GLAD", "WDS")
DEEP_STRATEGIES = ("CrowdLayer", "CoNAL(0)", "CoNAL(1e-4)")
STRATEGIES = AGGREGATION_STRATEGIES + DEEP_STRATEGIES
CONAL_LAMBDAS = {"CoNAL(0)": 0.0, "CoNAL(1e-4)": 1e-4}
# pruning name -> (score family, margin key)
PRUNINGS: dict[str, tuple[str, str] | None] = {
    "none": None,
    "AUMC": ("aumc", "yang"),
    "WAUM": ("waum", "yang"),
    "WAUM(psi1)": ("waum", "pleiss"),
    "WAUM(psi5)": ("waum", "yang_top2"),
}
MARGIN_KINDS = {"yang": ("yang", 1), "pleiss": ("pleiss", 1), "yang_top2": ("yang", 2)}
PERCENT_METRICS = ("accuracy", "top2_accuracy")


@dataclass
class WaumSetup:
    """Everything dataset-specific of an experiment.

    make_model : factory of the classifier trained on the (pruned) labels (also the CrowdLayer /
        CoNAL backbone).
    train_kwargs : arguments of :func:`crowd.learning.trainer.train` for that classifier (epochs,
        batch_size, optimizer, lr, weight_decay, milestones, ...). CrowdLayer and CoNAL use the
        same epochs / optimiser / schedule.
    make_ident_model, ident_kwargs : the identification network (AUMC and WAUM) and its training
        (``epochs`` = T). ``make_ident_model`` defaults to ``make_model``.
    alpha : share of tasks pruned.
    inputs : training inputs (n_tasks, ...); default ``data.features``.
    test, valid : (inputs, gold labels); ``valid`` selects the best epoch (accuracy) when given.
    ds_kwargs : Dawid-Skene settings for DS, WDS and the WAUM trust scores.
    glad_kwargs : GLAD settings.
    transform : batch augmentation for images (see :func:`crowd.learning.trainer.random_crop_flip`).
    device : None = CUDA when available.
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
    glad_kwargs: dict[str, Any] = field(default_factory=dict)
    transform: Callable | None = None
    device: str | torch.device | None = None
    progress: bool = True

    def train_inputs(self, data: CrowdData) -> Any:
        x = data.features if self.inputs is None else self.inputs
        if x is None:
            raise ValueError(f"{self.dataset}: no training inputs (the CrowdData has no features; set WaumSetup.inputs)")
        if len(x) != data.n_tasks:
            raise ValueError(f"{self.dataset}: inputs have {len(x)} rows for {data.n_tasks} tasks")
        return x


def standardize(train_x: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Zero mean, unit variance per feature with the training statistics (Music's Marsyas features)."""
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple(((x - mean) / std).astype(np.float32) for x in (train_x, *others))


def drop_idle_workers(data: CrowdData) -> CrowdData:
    """The same answers with workers re-coded 0..m-1 over those who answered at least once.

    Pruning tasks (``subset_tasks``) keeps every worker code, and a worker left without answers
    has no Dawid-Skene confusion (0/0); the aggregators and the WAUM trust scores see only
    the workers present.
    """
    used = np.flatnonzero(data.answers_per_worker() > 0)
    if len(used) == data.n_workers:
        return data
    new_code = np.full(data.n_workers, -1, dtype=np.int64)
    new_code[used] = np.arange(len(used))
    return CrowdData(data.task, new_code[data.worker], data.label, data.n_tasks, len(used), data.n_classes,
                     data.task_ids, data.worker_ids[used], data.class_names, data.gold, data.features, data.splits,
                     dict(data.meta), data.name)


def method_name(strategy: str, pruning: str) -> str:
    """Row name of the paper's tables: ``DS``, ``DS + WAUM``, ``CoNAL(0) + AUMC``..."""
    return strategy if pruning == "none" else f"{strategy} + {pruning}"


# ------------------------------------------------------------------ identification
class _MultiRecorder:
    """Several AUM recorders fed by the same training steps."""

    def __init__(self, recorders: dict[str, Any]):
        self.recorders = recorders

    def __call__(self, epoch: int, rows: torch.Tensor, logits: torch.Tensor) -> None:
        for rec in self.recorders.values():
            rec(epoch, rows, logits)


@dataclass
class Identification:
    """Scores of one identification run.

    aumc, waum : margin key -> (n_tasks,) scores; aum : margin key -> (n_answers,) AUM of each
    answer (stacked network); trust : (n_answers,) trust scores; confusions : the DS confusions;
    mv_labels : (n_tasks,) labels the AUMC network was trained on.
    """

    aumc: dict[str, np.ndarray]
    waum: dict[str, np.ndarray]
    aum: dict[str, np.ndarray]
    trust: np.ndarray
    confusions: np.ndarray
    mv_labels: np.ndarray

    def scores(self, pruning: str) -> np.ndarray:
        spec = PRUNINGS.get(pruning)
        if spec is None:
            raise ValueError(f"pruning {pruning!r} has no scores; choose among {[p for p in PRUNINGS if p != 'none']}")
        family, key = spec
        return getattr(self, family)[key]

    def keep_mask(self, pruning: str, alpha: float) -> np.ndarray:
        from crowd.identification.scores import prune_mask

        if pruning == "none":
            return np.ones(len(self.mv_labels), dtype=bool)
        return prune_mask(self.scores(pruning), alpha)


def _ds_confusions(data: CrowdData, ds_kwargs: dict[str, Any]) -> np.ndarray:
    from crowd.aggregation.dawid_skene import DawidSkene
    from crowd.aggregation.wds import WAUM_DS_SETTINGS

    ds = DawidSkene(**{**WAUM_DS_SETTINGS, **ds_kwargs}).fit(data)
    conf = ds.confusions_
    if hasattr(conf, "detach"):
        conf = conf.detach().cpu().numpy()
    return np.asarray(conf, dtype=np.float64)


def identify(data: CrowdData, setup: WaumSetup, seed: int = 0, margins: Sequence[str] = ("yang", "pleiss", "yang_top2"),
             confusions: np.ndarray | None = None) -> Identification:
    """AUMC and WAUM scores of every task for the given margin keys (two trainings of T epochs)."""
    from crowd.identification.scores import AUMRecorder, trust_scores, weighted_task_average

    data = drop_idle_workers(as_crowd_data(data))
    data.require_all_tasks_answered()
    x = setup.train_inputs(data)
    make = setup.make_ident_model or setup.make_model
    kwargs = {"device": setup.device, "transform": setup.transform, **setup.ident_kwargs}
    epochs = kwargs.pop("epochs")
    for key in margins:
        if key not in MARGIN_KINDS:
            raise ValueError(f"unknown margin key {key!r}; choose among {sorted(MARGIN_KINDS)}")

    def recorders(labels: np.ndarray) -> _MultiRecorder:
        return _MultiRecorder({k: AUMRecorder(labels, data.n_classes, *MARGIN_KINDS[k]) for k in margins})

    # AUMC: network on the MV labels (ties to the smallest label, as crowd.identification.AUMC)
    mv = np.argmax(data.vote_counts(), axis=1)
    seed_everything(seed)
    rec_c = recorders(mv)
    train(make(), x, mv, epochs=epochs, step_callback=rec_c, seed=seed, progress=setup.progress,
          desc=f"{setup.dataset} AUMC", **kwargs)
    # WAUM: one network on the stacked answers
    conf = _ds_confusions(data, setup.ds_kwargs) if confusions is None else np.asarray(confusions, dtype=np.float64)
    seed_everything(seed)
    rec_w = recorders(data.label)
    train(make(), x, data.label, input_index=data.task, epochs=epochs, step_callback=rec_w, seed=seed,
          progress=setup.progress, desc=f"{setup.dataset} WAUM", **kwargs)
    last = next(iter(rec_w.recorders.values())).last_probas.numpy()
    trust = trust_scores(conf, data.worker, last)
    aum = {k: r.aum for k, r in rec_w.recorders.items()}
    waum = {k: weighted_task_average(data.task, a, trust, data.n_tasks) for k, a in aum.items()}
    return Identification(aumc={k: r.aum for k, r in rec_c.recorders.items()}, waum=waum, aum=aum, trust=trust,
                          confusions=conf, mv_labels=mv)


# --------------------------------------------------------------- aggregation + training
def aggregate(strategy: str, data: CrowdData, seed: int = 0, ds_kwargs: dict[str, Any] | None = None,
              glad_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Training targets of a label-aggregation strategy: int labels (MV) or soft labels (n_tasks, K)."""
    from crowd.aggregation.majority_vote import MajorityVote, NaiveSoft
    from crowd.aggregation.wds import WAUM_DS_SETTINGS, WDS

    ds_settings = {**WAUM_DS_SETTINGS, **(ds_kwargs or {})}
    if strategy == "MV":
        return np.asarray(MajorityVote(tie_break="random", seed=seed).fit(data).labels_, dtype=np.int64)
    if strategy == "NS":
        model = NaiveSoft()
    elif strategy == "DS":
        from crowd.aggregation.dawid_skene import DawidSkene

        model = DawidSkene(**ds_settings)
    elif strategy == "GLAD":
        from crowd import aggregation

        if not hasattr(aggregation, "GLAD"):
            raise ImportError("GLAD is not available in crowd.aggregation yet")
        model = aggregation.GLAD(**(glad_kwargs or {}))
    elif strategy == "WDS":
        model = WDS(ds_kwargs=ds_kwargs)
    else:
        raise ValueError(f"unknown aggregation strategy {strategy!r}; choose among {AGGREGATION_STRATEGIES}")
    probas = model.fit(data).probas_
    if hasattr(probas, "detach"):
        probas = probas.detach().cpu().numpy()
    probas = np.asarray(probas, dtype=np.float64)
    return probas / probas.sum(axis=1, keepdims=True)


def _deep_learner(strategy: str, setup: WaumSetup, seed: int):
    from crowd.learning.deep_crowd import CoNAL, CrowdLayer

    kw = setup.train_kwargs
    common = dict(n_epochs=kw["epochs"], batch_size=kw.get("batch_size", 64), lr=kw.get("lr", 0.1),
                  optimizer=kw.get("optimizer", "sgd"), momentum=kw.get("momentum", 0.9),
                  weight_decay=kw.get("weight_decay", 5e-4), milestones=tuple(kw.get("milestones", ())),
                  gamma=kw.get("gamma", 0.1), seed=seed, device=setup.device, progress=setup.progress,
                  transform=setup.transform)
    if strategy == "CrowdLayer":
        return CrowdLayer(setup.make_model, **common)
    if strategy in CONAL_LAMBDAS:
        return CoNAL(setup.make_model, lambda_=CONAL_LAMBDAS[strategy], **common)
    raise ValueError(f"unknown strategy {strategy!r}; choose among {STRATEGIES}")


def fit_strategy(strategy: str, data: CrowdData, inputs: Any, setup: WaumSetup, seed: int = 0) -> np.ndarray:
    """Train with one strategy on ``data`` (already pruned) and return test-set probabilities."""
    test_x = setup.test[0]
    if strategy in AGGREGATION_STRATEGIES:
        targets = aggregate(strategy, data, seed, setup.ds_kwargs, setup.glad_kwargs)
        kwargs = {"device": setup.device, "transform": setup.transform, **setup.train_kwargs}
        epochs = kwargs.pop("epochs")
        seed_everything(seed)
        result = train(setup.make_model(), inputs, targets, epochs=epochs, valid=setup.valid,
                       keep_best=setup.valid is not None, seed=seed, progress=setup.progress,
                       desc=f"{setup.dataset} {strategy}", **kwargs)
        return predict_proba(result.model, test_x, device=result.device)
    seed_everything(seed)
    learner = _deep_learner(strategy, setup, seed)
    learner.fit(data, features=inputs, valid=setup.valid)
    return learner.predict_proba(test_x)


def run_seed(data: CrowdData, setup: WaumSetup, seed: int, strategies: Sequence[str] = STRATEGIES,
             prunings: Sequence[str] = ("none", "AUMC", "WAUM"), identification: Identification | None = None,
             ) -> tuple[pd.DataFrame, Identification | None]:
    """One repetition: identification, then every (strategy, pruning) pair. Returns long rows."""
    data = drop_idle_workers(as_crowd_data(data))
    for p in prunings:
        if p not in PRUNINGS:
            raise ValueError(f"unknown pruning {p!r}; choose among {list(PRUNINGS)}")
    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"unknown strategy {s!r}; choose among {list(STRATEGIES)}")
    x = setup.train_inputs(data)
    if identification is None and any(p != "none" for p in prunings):
        needed = sorted({PRUNINGS[p][1] for p in prunings if p != "none"})
        identification = identify(data, setup, seed, margins=needed)
    test_y = np.asarray(setup.test[1])
    rows = []
    pairs = [(p, s) for p in prunings for s in strategies]
    for pruning, strategy in tqdm(pairs, desc=f"{setup.dataset} seed {seed}", disable=not setup.progress, leave=False):
        keep = np.ones(data.n_tasks, dtype=bool) if pruning == "none" else identification.keep_mask(pruning, setup.alpha)
        kept = np.flatnonzero(keep)
        sub = drop_idle_workers(data.subset_tasks(kept)) if pruning != "none" else data
        probas = fit_strategy(strategy, sub, _take(x, kept) if pruning != "none" else x, setup, seed)
        for metric, value in evaluate(probas, test_y).items():
            rows.append({"dataset": setup.dataset, "method": method_name(strategy, pruning), "strategy": strategy,
                         "pruning": pruning, "seed": seed, "metric": metric,
                         "value": 100 * value if metric in PERCENT_METRICS else value, "n_train_tasks": len(kept)})
    return pd.DataFrame(rows), identification


def _take(x: Any, idx: np.ndarray) -> Any:
    if isinstance(x, torch.Tensor):
        return x.index_select(0, torch.as_tensor(idx, device=x.device))
    return np.asarray(x)[idx]


def run(data: Any, setup: WaumSetup, seeds: Sequence[int] = (0, 1, 2), strategies: Sequence[str] = STRATEGIES,
        prunings: Sequence[str] = ("none", "AUMC", "WAUM")) -> tuple[pd.DataFrame, dict[int, Identification]]:
    """All repetitions; returns the long per-seed results and the identification of each seed."""
    data = as_crowd_data(data)
    frames, idents = [], {}
    for seed in seeds:
        frame, ident = run_seed(data, setup, seed, strategies, prunings)
        frames.append(frame)
        if ident is not None:
            idents[seed] = ident
    return pd.concat(frames, ignore_index=True), idents


def summarize(raw: pd.DataFrame, note: str = "") -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) over seeds: the project's reproduced-table format."""
    keys = ["dataset", "method", "metric"]
    order = {m: i for i, m in enumerate(dict.fromkeys(raw["method"]))}
    g = raw.groupby(keys, sort=False)["value"]
    out = g.agg(value="mean", std="std", n_runs="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["note"] = note
    out["_order"] = out["method"].map(order)
    return out.sort_values(["dataset", "_order", "metric"], kind="stable").drop(columns="_order").reset_index(drop=True)


# ---------------------------------------------------------------------- diagnostics
def paired_differences(raw: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Per strategy and pruning: mean and std over seeds of (pruned - unpruned) for the same seed.

    The same seed gives the same initialisation and shuffling, so the paired difference isolates the
    effect of pruning from the seed-to-seed spread.
    """
    sub = raw[raw["metric"] == metric]
    wide = sub.pivot_table(index=["dataset", "strategy", "seed"], columns="pruning", values="value", sort=False)
    if "none" not in wide.columns:
        raise ValueError("paired differences need the unpruned runs (pruning 'none')")
    diffs = wide.drop(columns="none").sub(wide["none"], axis=0)
    long = diffs.stack().rename("difference").reset_index()
    out = long.groupby(["dataset", "strategy", "pruning"], sort=False)["difference"].agg(["mean", "std", "count"])
    return out.reset_index().rename(columns={"count": "n_runs"})


def pruned_tasks_summary(data: CrowdData, identification: Identification, alpha: float,
                         prunings: Sequence[str] = ("AUMC", "WAUM")) -> pd.DataFrame:
    """What the pruning removes: number of tasks, accuracy of the majority vote on them (vs all tasks,
    needs gold labels) and answers per task."""
    if data.gold is None:
        raise ValueError("pruned_tasks_summary needs gold labels")
    mv = np.argmax(data.vote_counts(), axis=1)
    known = data.gold >= 0
    apt = data.answers_per_task()
    rows = []
    for pruning in prunings:
        pruned = ~identification.keep_mask(pruning, alpha)
        sel = pruned & known
        rows.append({"pruning": pruning, "n_pruned": int(pruned.sum()),
                     "mv_accuracy_pruned": float(np.mean(mv[sel] == data.gold[sel])) if sel.any() else np.nan,
                     "mv_accuracy_all": float(np.mean(mv[known] == data.gold[known])),
                     "answers_per_task_pruned": float(apt[pruned].mean()), "answers_per_task_all": float(apt.mean())})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------- paper settings
@dataclass
class Experiment:
    """A dataset's experiment as run by the notebooks: the setup, the seeds, what is compared,
    and, in words, every way it departs from the paper."""

    setup: WaumSetup
    seeds: list[int]
    strategies: list[str]
    prunings: list[str]
    deviations: list[str]


def available_strategies() -> list[str]:
    """STRATEGIES, without GLAD when crowd.aggregation does not provide it."""
    from crowd import aggregation

    return [s for s in STRATEGIES if s != "GLAD" or hasattr(aggregation, "GLAD")]


def labelme_experiment(data: CrowdData, mode: str = "smoke", seed: int = 0, device: Any = None,
                       progress: bool = True) -> Experiment:
    """LabelMe (Table 5, Table 7, Figs. 3b, 8, 9, 10): Rodrigues' head on the pooled VGG16 features.

    Full mode: 5 repetitions (Table 7), alpha = 0.01, identification T = 500 epochs with Adam
    lr 5e-3 (section 4), training with Adam lr 5e-3, batch 64, 100 epochs, the epoch of best
    validation accuracy kept (500 validation images).
    """
    from crowd.learning.models import RodriguesHead

    full = _check_mode(mode)
    d = data.features.shape[1]
    adam = dict(batch_size=64, optimizer="adam", lr=5e-3, weight_decay=0.0)
    setup = WaumSetup(
        "labelme", lambda: RodriguesHead(d, data.n_classes),
        train_kwargs=dict(epochs=100 if full else 8, **adam),
        ident_kwargs=dict(epochs=500 if full else 8, **adam),
        test=(data.splits["test"].features, data.splits["test"].labels),
        valid=(data.splits["valid"].features, data.splits["valid"].labels),
        alpha=0.01, device=device, progress=progress)
    deviations = [
        data.meta.get("substitutes", ""),
        "identification network: Rodrigues' head on the same features (the paper: a pretrained ResNet-50 on the "
        "images, T = 500); no pretrained weights and no GPU offline",
        "training: 100 epochs on precomputed features, best validation epoch kept (the paper: 1100 epochs of a "
        "VGG-16 fine-tuned on augmented images, lr /10 at 1000 and 1050)",
    ]
    return Experiment(setup, list(range(seed, seed + (5 if full else 1))), available_strategies(),
                      list(PRUNINGS), [x for x in deviations if x])


def music_experiment(data: CrowdData, mode: str = "smoke", seed: int = 0, device: Any = None,
                     progress: bool = True) -> Experiment:
    """Music (Table 6, Figs. 3c, 11): an MLP (Rodrigues' head) on the 124 standardised Marsyas features.

    Full mode: 3 repetitions (the paper's count for real datasets), alpha = 0.05, identification
    T = 1000 epochs with Adam lr 1e-3
    (section 4), training with Adam lr 5e-3, batch 64, 100 epochs with lr /10 at 68 and 91 (the
    authors' 1100-epoch schedule with milestones 750 and 1000, scaled), last epoch kept.
    """
    from crowd.learning.models import MusicMLP

    full = _check_mode(mode)
    x_train, x_test = standardize(np.asarray(data.features, dtype=np.float32),
                                  np.asarray(data.splits["test"].features, dtype=np.float32))
    adam = dict(batch_size=64, optimizer="adam", weight_decay=0.0)
    setup = WaumSetup(
        "music", lambda: MusicMLP(x_train.shape[1], data.n_classes),
        train_kwargs=dict(epochs=100 if full else 8, lr=5e-3, milestones=(68, 91) if full else (), **adam),
        ident_kwargs=dict(epochs=1000 if full else 8, lr=1e-3, **adam),
        test=(x_test, data.splits["test"].labels), inputs=x_train, valid=None,
        alpha=0.05, device=device, progress=progress)
    deviations = [
        data.meta.get("substitutes", ""),
        "identification network: the same MLP (the paper: a pretrained ResNet-50 on spectrograms, T = 1000)",
        "training: 100 epochs, last epoch kept; the authors' code selects the epoch on the TEST set (it copies the "
        "test songs into its validation folder), which favours the paper's numbers",
        "test set: the 300 songs of music_genre_test.csv (the paper drops one corrupt file and uses 299)",
    ]
    return Experiment(setup, list(range(seed, seed + (3 if full else 1))), available_strategies(),
                      ["none", "AUMC", "WAUM"], [x for x in deviations if x])


CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10H_VALID_START = 9500  # tasks 9500..9999 are the paper's validation images


def cap_answers(data: CrowdData, max_per_task: int, seed: int = 0) -> CrowdData:
    """Keep at most ``max_per_task`` answers per task, drawn uniformly at random (seeded)."""
    if max_per_task < 1:
        raise ValueError(f"max_per_task must be >= 1, got {max_per_task}")
    keys = np.random.default_rng(seed).random(data.n_answers)
    order = np.lexsort((keys, data.task))  # by task, random within a task
    first = np.searchsorted(data.task[order], data.task[order], side="left")
    rank = np.empty(data.n_answers, dtype=np.int64)
    rank[order] = np.arange(data.n_answers) - first
    return data.subset_answers(rank < max_per_task)


def cifar10_train_set(root: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The 50000 CIFAR-10 training images (the paper's CIFAR-10H test set) through torchvision.

    They exist in no offline mirror: torchvision downloads them (170 MB) into the cache folder.
    """
    from torchvision.datasets import CIFAR10

    from crowd.data.registry import cache_dir

    root = cache_dir() / "torchvision" if root is None else root
    try:
        train_set = CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # no internet: say what is needed
        raise FileNotFoundError(
            "the CIFAR-10 training images (the WAUM paper's CIFAR-10H test set) are not available offline; "
            f"torchvision could not download them into {root}: {exc}") from exc
    return np.asarray(train_set.data), np.asarray(train_set.targets, dtype=np.int64)


def cifar10h_full_requirements() -> dict[str, bool]:
    """What the full CIFAR-10H experiment needs, and whether this machine has it."""
    from crowd.data.datasets import CIFAR10H_RAW
    from crowd.data.registry import is_available

    return {"cifar10h-raw.zip (per-annotator answers of all 10000 images)": is_available(CIFAR10H_RAW),
            "a CUDA GPU (ResNet-18, 150 epochs)": torch.cuda.is_available()}


def cifar10h_experiment(data: CrowdData, mode: str = "smoke", seed: int = 0, device: Any = None, progress: bool = True,
                        test: tuple[np.ndarray, np.ndarray] | None = None, smoke_answers_per_task: int = 2,
                        smoke_test_size: int = 300) -> tuple[Experiment, CrowdData]:
    """CIFAR-10H (Table 2, Figs. 3a, 7, 16). Returns the experiment and the training crowd.

    ``data``: :func:`crowd.data.datasets.load_cifar10h` with images as features. With all 10000 tasks
    (the raw file), training = tasks 0..9499 and validation = images 9500..9999 with their
    CIFAR-10 labels, as in the paper; otherwise (offline) training = the 500 tasks that have
    per-annotator answers and no validation.

    Full mode (the paper): ResNet-18 (3x3 stem for 32x32 images), SGD lr 0.1, momentum 0.9,
    weight decay 5e-4, batch 64, 150 epochs with lr /10 at 50 and 100; AUMC and WAUM with
    T = 50 epochs of the same optimiser; alpha = 0.01; DS at most 50 iterations; 3 repetitions;
    test = the 50000 CIFAR-10 training images (``test`` or :func:`cifar10_train_set`).
    Smoke mode: the same pipeline with torchvision's ImageNet stem (16x fewer operations), one epoch,
    batch 128, at most ``smoke_answers_per_task`` answers per task, and the first ``smoke_test_size``
    CIFAR-10 test images that are not training tasks as the test set. Training tasks are the
    answered tasks below 9500 (all of them with the raw file).
    """
    from crowd.data.datasets import cifar10_test_images
    from crowd.learning.models import resnet18

    full = _check_mode(mode)
    if data.features is None:
        raise ValueError("CIFAR-10H data without images: load it with datasets.load_cifar10h(images=True)")
    task_ids = np.asarray(data.task_ids, dtype=np.int64)
    has_all = bool((task_ids < CIFAR10H_VALID_START).any())
    deviations = []
    if has_all:
        train_codes = np.flatnonzero((task_ids < CIFAR10H_VALID_START) & (data.answers_per_task() > 0))
        valid_codes = np.flatnonzero(task_ids >= CIFAR10H_VALID_START)
        crowd = data.subset_tasks(train_codes)
        valid = (images_to_tensor_normalised(data.features[valid_codes]), data.gold[valid_codes])
    else:
        crowd, valid = data, None
        deviations.append(data.meta.get("substitutes", "") + "; training on those 500 tasks, no validation split")
    if not full:
        crowd = cap_answers(crowd, smoke_answers_per_task, seed)
        deviations.append(f"smoke: at most {smoke_answers_per_task} answers per task, 1 epoch, ImageNet-stem ResNet-18")
    if test is None:
        if full:
            test = cifar10_train_set()
        else:
            images, labels = cifar10_test_images()
            used = np.asarray(crowd.task_ids, dtype=np.int64)
            if valid is not None:
                used = np.concatenate([used, task_ids[valid_codes]])
            keep = np.flatnonzero(~np.isin(np.arange(len(images)), used))[:smoke_test_size]
            test = (images[keep], labels[keep])
            deviations.append(f"test: {len(keep)} CIFAR-10 test images outside the training tasks (the paper: the "
                              "50000 CIFAR-10 training images, not available offline)")
    sgd = dict(batch_size=64 if full else 128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4)
    small = full  # the 3x3 stem costs 16x more: smoke keeps the ImageNet stem
    setup = WaumSetup(
        "cifar10h", lambda: resnet18(data.n_classes, small_input=small),
        train_kwargs=dict(epochs=150 if full else 1, milestones=(50, 100) if full else (), **sgd),
        ident_kwargs=dict(epochs=50 if full else 1, **sgd),
        test=(images_to_tensor_normalised(test[0]), np.asarray(test[1])),
        inputs=images_to_tensor_normalised(crowd.features), valid=valid, alpha=0.01,
        ds_kwargs={"n_iter": 50}, device=device, progress=progress)
    seeds = list(range(seed, seed + (3 if full else 1)))
    strategies = [s for s in available_strategies() if s in AGGREGATION_STRATEGIES]
    return Experiment(setup, seeds, strategies, ["none", "AUMC", "WAUM"], [d for d in deviations if d]), crowd


def images_to_tensor_normalised(images: Any) -> torch.Tensor:
    """uint8 CIFAR images (N, 32, 32, 3) -> float (N, 3, 32, 32) standardised per channel."""
    from crowd.learning.trainer import images_to_tensor

    return images_to_tensor(images, CIFAR10_MEAN, CIFAR10_STD)


def _check_mode(mode: str) -> bool:
    if mode not in ("smoke", "full"):
        raise ValueError(f"mode must be 'smoke' or 'full', got {mode!r}")
    return mode == "full"


# --------------------------------------------------------------------------- figures
def confidence_intervals(raw: pd.DataFrame, metric: str, z: float = 1.96) -> pd.DataFrame:
    """Mean and Gaussian 95% half-width (z * std / sqrt(n)) per (strategy, pruning), as in the paper's
    forest plots (Figs. 8 and 11)."""
    sub = raw[raw["metric"] == metric]
    g = sub.groupby(["strategy", "pruning"], sort=False)["value"]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["half_width"] = z * out["std"].fillna(0.0) / np.sqrt(out["n"])
    return out


def plot_forest(raw: pd.DataFrame, metric: str, ax, paper: pd.DataFrame | None = None,
                prunings: Sequence[str] = ("none", "AUMC", "WAUM"), title: str = "") -> None:
    """Forest plot: one row per strategy, one marker per pruning (mean +- 95% CI over seeds); the
    paper's mean +- 1.96 std / sqrt(3) as hollow grey markers when ``paper`` (a paper table) is given."""
    ci = confidence_intervals(raw, metric)
    strategies = list(dict.fromkeys(ci["strategy"]))
    offsets = np.linspace(-0.25, 0.25, len(prunings))
    colours = {"none": "C0", "AUMC": "C1", "WAUM": "C2", "WAUM(psi1)": "C3", "WAUM(psi5)": "C4"}
    for off, pruning in zip(offsets, prunings):
        part = ci[ci["pruning"] == pruning].set_index("strategy").reindex(strategies)
        y = np.arange(len(strategies)) + off
        ax.errorbar(part["mean"], y, xerr=part["half_width"], fmt="o", color=colours.get(pruning, "k"),
                    label=f"ours, {'no pruning' if pruning == 'none' else pruning}", capsize=2, ms=4)
        if paper is not None:
            rows = paper[paper["metric"] == metric].set_index("method")
            names = [method_name(s, pruning) for s in strategies]
            vals = rows["value"].reindex(names).astype(float).to_numpy()
            err = 1.96 * rows["std"].reindex(names).astype(float).fillna(0).to_numpy() / np.sqrt(3)
            ax.errorbar(vals, y + 0.06, xerr=err, fmt="o", mfc="none", color=colours.get(pruning, "k"), alpha=0.5,
                        capsize=2, ms=4, label=f"paper, {'no pruning' if pruning == 'none' else pruning}")
    ax.set_yticks(np.arange(len(strategies)), strategies)
    ax.invert_yaxis()
    ax.set_xlabel({"accuracy": "test accuracy (%)", "one_minus_ece": "1 - ECE", "top2_accuracy": "top-2 accuracy (%)"}
                  .get(metric, metric))
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)


def worst_tasks(scores: np.ndarray, groups: np.ndarray, n: int = 10) -> dict[int, np.ndarray]:
    """For each group (e.g. class), the ``n`` task codes of lowest score, lowest first."""
    scores, groups = np.asarray(scores), np.asarray(groups)
    out = {}
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        out[int(g)] = idx[np.argsort(scores[idx], kind="stable")[:n]]
    return out


def plot_image_rows(rows: dict[str, np.ndarray], image_of: Callable[[int], np.ndarray], scores: np.ndarray | None = None,
                    size: float = 1.3):
    """A grid: one row of images per entry of ``rows`` (name -> task codes), the score under each image."""
    import matplotlib.pyplot as plt

    n_cols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(size * n_cols, size * 1.15 * len(rows)), squeeze=False)
    for r, (name, tasks) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c >= len(tasks):
                continue
            ax.imshow(image_of(int(tasks[c])))
            if scores is not None:
                ax.set_xlabel(f"{scores[tasks[c]]:.2f}", fontsize=7, labelpad=1)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.2)
    return fig
