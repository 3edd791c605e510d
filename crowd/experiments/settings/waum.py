"""Settings of the WAUM experiments (Lefort, Charlier, Joly, Salmon, TMLR 2024), as named presets.

Everything the paper (or, where it is silent, the authors' scripts) fixes lives here, and only
here: the Dawid-Skene settings, the strategies and prunings of each table, the simulation
trainings of Tables 1, 3, 4 (notebook 01), the CIFAR-10H setup of Table 2 (notebook 02) and the
LabelMe / Music setups of Tables 5-7 (notebook 03), each with its smoke variant and, in words,
every way it departs from the paper. The runner that executes them: :mod:`crowd.experiments.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from crowd.data import CrowdData
from crowd.experiments.runner import (NO_PRUNING, AggregateThenTrain, EndToEnd, ExperimentSetup, Method, Pruning,
                                      grid, with_alpha)

__all__ = [
    "DS_SETTINGS", "DS_SETTINGS_CIFAR10H", "aggregation_strategies", "deep_strategies", "strategies", "PRUNINGS",
    "SimulationSettings", "SIMULATION", "SIMULATION_REPETITIONS", "SIMULATION_ALPHAS", "table1_methods",
    "table3_methods", "table4_methods", "Experiment", "labelme_experiment", "music_experiment", "cifar10h_experiment",
    "check_mode",
]

# Dawid-Skene as run in the WAUM experiments (DS strategy, WDS, the WAUM trust scores): naive-soft
# initialisation, M-step first, stop when the log-likelihood changes by less than 1e-6, at most 100
# iterations; at most 50 on CIFAR-10H.
DS_SETTINGS: dict[str, Any] = {"init": "naive_soft", "tol": 1e-6, "n_iter": 100}
DS_SETTINGS_CIFAR10H: dict[str, Any] = {**DS_SETTINGS, "n_iter": 50}


def check_mode(mode: str) -> bool:
    """True for ``"full"``, False for ``"smoke"``, a clear error otherwise."""
    if mode not in ("smoke", "full"):
        raise ValueError(f"mode must be 'smoke' or 'full', got {mode!r}")
    return mode == "full"


# ------------------------------------------------------------------------------ strategies
def aggregation_strategies(ds: dict[str, Any] | None = None, glad: dict[str, Any] | None = None
                           ) -> dict[str, AggregateThenTrain]:
    """MV (hard labels, ties at random with the run's seed), NS, DS, GLAD, WDS, then the classifier."""
    from crowd.aggregation.dawid_skene import DawidSkene
    from crowd.aggregation.glad import GLAD
    from crowd.aggregation.majority_vote import MajorityVote, NaiveSoft
    from crowd.aggregation.wds import WDS

    ds = dict(DS_SETTINGS if ds is None else ds)
    glad = dict(glad or {})
    return {
        "MV": AggregateThenTrain("MV", lambda seed: MajorityVote(tie_break="random", seed=seed), hard=True),
        "NS": AggregateThenTrain("NS", lambda seed: NaiveSoft()),
        "DS": AggregateThenTrain("DS", lambda seed: DawidSkene(**ds)),
        "GLAD": AggregateThenTrain("GLAD", lambda seed: GLAD(**glad)),
        "WDS": AggregateThenTrain("WDS", lambda seed: WDS(ds_kwargs=ds)),
    }


def _learner_kwargs(setup: ExperimentSetup, seed: int) -> dict[str, Any]:
    """CrowdLayer and CoNAL train with the classifier's epochs, optimiser and schedule."""
    kw = setup.train_kwargs
    return dict(n_epochs=kw["epochs"], batch_size=kw.get("batch_size", 64), lr=kw.get("lr", 0.1),
                optimizer=kw.get("optimizer", "sgd"), momentum=kw.get("momentum", 0.9),
                weight_decay=kw.get("weight_decay", 5e-4), milestones=tuple(kw.get("milestones", ())),
                gamma=kw.get("gamma", 0.1), seed=seed, device=setup.device, progress=setup.progress,
                transform=setup.transform)


def _crowd_layer(setup: ExperimentSetup, seed: int):
    from crowd.learning.crowdlayer import CrowdLayer

    return CrowdLayer(setup.make_model, **_learner_kwargs(setup, seed))


def _conal(lambda_: float):
    def make(setup: ExperimentSetup, seed: int):
        from crowd.learning.conal import CoNAL

        return CoNAL(setup.make_model, lambda_=lambda_, **_learner_kwargs(setup, seed))

    return make


def deep_strategies() -> dict[str, EndToEnd]:
    """CrowdLayer and CoNAL with the WAUM paper's two lambdas (0 and 1e-4)."""
    return {"CrowdLayer": EndToEnd("CrowdLayer", _crowd_layer),
            "CoNAL(0)": EndToEnd("CoNAL(0)", _conal(0.0)),
            "CoNAL(1e-4)": EndToEnd("CoNAL(1e-4)", _conal(1e-4))}


def strategies(names: Sequence[str] | None = None, ds: dict[str, Any] | None = None) -> list[Any]:
    """The named strategies (default: all eight of Tables 5-7), in the given order."""
    known = {**aggregation_strategies(ds), **deep_strategies()}
    names = list(known) if names is None else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown strategy name(s) {unknown}; choose among {list(known)}")
    return [known[n] for n in names]


# Prunings of the real-data tables; the rows of Table 7 use the Pleiss (psi1) and top-2 (psi5) margins.
PRUNINGS: dict[str, Pruning] = {
    "none": NO_PRUNING,
    "AUMC": Pruning("AUMC", "aumc", "yang"),
    "WAUM": Pruning("WAUM", "waum", "yang"),
    "WAUM(psi1)": Pruning("WAUM(psi1)", "waum", "pleiss"),
    "WAUM(psi5)": Pruning("WAUM(psi5)", "waum", "yang_top2"),
}


# ----------------------------------------------------------------------------- simulations
@dataclass(frozen=True)
class SimulationSettings:
    """Training of the simulations (section 4, "Implementation details"): the (30, 20, 20) MLP,
    SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 64, 150 epochs with lr / 10 at 50 and
    100; AUMC / WAUM networks trained for T = 50 epochs of the same optimiser (no schedule)."""

    hidden: tuple[int, ...] = (30, 20, 20)
    epochs: int = 150
    milestones: tuple[int, ...] = (50, 100)
    identification_epochs: int = 50  # T of the AUMC / WAUM
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    ds_kwargs: dict = field(default_factory=lambda: dict(DS_SETTINGS))
    device: Any = None

    def setup(self, crowd: CrowdData, progress: bool = False) -> ExperimentSetup:
        """The runner's setup for a simulated crowd (its own test split)."""
        from crowd.learning.models import MLP

        d, k, hidden = crowd.features.shape[1], crowd.n_classes, self.hidden
        sgd = dict(batch_size=self.batch_size, optimizer="sgd", lr=self.lr, momentum=self.momentum,
                   weight_decay=self.weight_decay)
        test = crowd.splits["test"]
        return ExperimentSetup(crowd.name, lambda: MLP(d, k, hidden),
                               train_kwargs=dict(epochs=self.epochs, milestones=self.milestones, **sgd),
                               ident_kwargs=dict(epochs=self.identification_epochs, **sgd),
                               test=(test.features, test.labels), ds_kwargs=dict(self.ds_kwargs), device=self.device,
                               progress=progress)

    def strategies(self) -> dict[str, AggregateThenTrain]:
        return aggregation_strategies(self.ds_kwargs)

    def describe(self, mode: str, n_repetitions: int) -> str:
        return f"{mode}: {n_repetitions} repetition(s), {self.epochs} epochs, T={self.identification_epochs}"


# the paper's settings, and a smoke run of the same pipeline (about a minute on one core)
SIMULATION = {"full": SimulationSettings(),
              "smoke": SimulationSettings(epochs=30, milestones=(10, 20), identification_epochs=10)}
SIMULATION_REPETITIONS = {"full": 10, "smoke": 1}
SIMULATION_ALPHAS = (1e-3, 1e-2, 1e-1, 0.25)  # Fig. 5 and Table 3


def _wds_pruned(settings: SimulationSettings, score: str, alpha: float, name: str | None = None) -> Method:
    """WDS on the answers kept by a pruning at level alpha (the simulations' pruned strategies)."""
    base = {"aumc": "AUMC", "waum": "WAUM", "worker_wise": "worker-wise WAUM"}[score]
    pruning = with_alpha(Pruning(base, score, "yang"), alpha)
    return Method(settings.strategies()["WDS"], pruning, name)


def table1_methods(settings: SimulationSettings) -> list[Method]:
    """Table 1 (three_circles): MV, NS, DS, GLAD, WDS, WDS + AUMC (0.1), WDS + WAUM (0.01, 0.1, 0.25)."""
    return (grid(settings.strategies().values())
            + [_wds_pruned(settings, "aumc", 0.1)]
            + [_wds_pruned(settings, "waum", a) for a in (0.01, 0.1, 0.25)])


def table3_methods(settings: SimulationSettings, alphas: Sequence[float] = SIMULATION_ALPHAS) -> list[Method]:
    """Table 3 (two_moons): MV, NS, DS, GLAD and the worker-wise WAUM at each alpha (WDS on the kept answers)."""
    s = settings.strategies()
    return (grid([s["MV"], s["NS"], s["DS"], s["GLAD"]])
            + [_wds_pruned(settings, "worker_wise", a, f"worker-wise WAUM (alpha={a:g})") for a in alphas])


def table4_methods(settings: SimulationSettings) -> list[Method]:
    """Table 4 (150 workers): NS, DS, GLAD, worker-wise WAUM and WAUM at alpha = 0.1."""
    s = settings.strategies()
    return (grid([s["NS"], s["DS"], s["GLAD"]])
            + [_wds_pruned(settings, "worker_wise", 0.1, "worker-wise WAUM (alpha=0.1)"),
               _wds_pruned(settings, "waum", 0.1, "WAUM (alpha=0.1)")])


# ------------------------------------------------------------------------------ real data
@dataclass
class Experiment:
    """A dataset's experiment as the notebooks run it: the setup, the seeds, the methods and, in
    words, every way it departs from the paper."""

    setup: ExperimentSetup
    seeds: list[int]
    strategies: list[Any]
    prunings: list[Pruning]
    deviations: list[str]

    @property
    def methods(self) -> list[Method]:
        return grid(self.strategies, self.prunings)


def labelme_experiment(data: CrowdData, mode: str = "smoke", seed: int = 0, device: Any = None,
                       progress: bool = True) -> Experiment:
    """LabelMe (Table 5, Table 7, Figs. 3b, 8, 9, 10): Rodrigues' head on the VGG16 features of ``data``.

    Full mode: 5 repetitions (Table 7), alpha = 0.01, identification T = 500 epochs with Adam
    lr 5e-3 (section 4), training with Adam lr 5e-3, batch 64, 100 epochs, the epoch of best
    validation accuracy kept (500 validation images).
    """
    from crowd.learning.models import RodriguesHead

    full = check_mode(mode)
    d = int(np.prod(data.features.shape[1:]))
    adam = dict(batch_size=64, optimizer="adam", lr=5e-3, weight_decay=0.0)
    setup = ExperimentSetup(
        "labelme", lambda: RodriguesHead(d, data.n_classes),
        train_kwargs=dict(epochs=100 if full else 8, **adam),
        ident_kwargs=dict(epochs=500 if full else 8, **adam),
        test=(data.splits["test"].features, data.splits["test"].labels),
        valid=(data.splits["valid"].features, data.splits["valid"].labels),
        alpha=0.01, ds_kwargs=dict(DS_SETTINGS), device=device, progress=progress, percent=True)
    deviations = [
        data.meta.get("substitutes", ""),
        "identification network: Rodrigues' head on the same features (the paper: a pretrained ResNet-50 on the "
        "images, T = 500); no pretrained weights and no GPU offline",
        "training: 100 epochs on precomputed features, best validation epoch kept (the paper: 1100 epochs of a "
        "VGG-16 fine-tuned on augmented images, lr /10 at 1000 and 1050)",
    ]
    return Experiment(setup, list(range(seed, seed + (5 if full else 1))), strategies(),
                      list(PRUNINGS.values()), [x for x in deviations if x])


def music_experiment(data: CrowdData, mode: str = "smoke", seed: int = 0, device: Any = None,
                     progress: bool = True) -> Experiment:
    """Music (Table 6, Figs. 3c, 11): an MLP (Rodrigues' head) on the 124 standardised Marsyas features.

    Full mode: 3 repetitions (the paper's count for real datasets), alpha = 0.05, identification
    T = 1000 epochs with Adam lr 1e-3 (section 4), training with Adam lr 5e-3, batch 64, 100
    epochs with lr /10 at 68 and 91 (the authors' 1100-epoch schedule with milestones 750 and
    1000, scaled), last epoch kept.
    """
    from crowd.learning.models import MusicMLP
    from crowd.learning.transforms import standardize

    full = check_mode(mode)
    x_train, x_test = standardize(np.asarray(data.features, dtype=np.float32),
                                  np.asarray(data.splits["test"].features, dtype=np.float32))
    adam = dict(batch_size=64, optimizer="adam", weight_decay=0.0)
    setup = ExperimentSetup(
        "music", lambda: MusicMLP(x_train.shape[1], data.n_classes),
        train_kwargs=dict(epochs=100 if full else 8, lr=5e-3, milestones=(68, 91) if full else (), **adam),
        ident_kwargs=dict(epochs=1000 if full else 8, lr=1e-3, **adam),
        test=(x_test, data.splits["test"].labels), inputs=x_train, valid=None,
        alpha=0.05, ds_kwargs=dict(DS_SETTINGS), device=device, progress=progress, percent=True)
    deviations = [
        data.meta.get("substitutes", ""),
        "identification network: the same MLP (the paper: a pretrained ResNet-50 on spectrograms, T = 1000)",
        "training: 100 epochs, last epoch kept; the authors' code selects the epoch on the TEST set (it copies the "
        "test songs into its validation folder), which favours the paper's numbers",
        "test set: the 300 songs of music_genre_test.csv (the paper drops one corrupt file and uses 299)",
    ]
    return Experiment(setup, list(range(seed, seed + (3 if full else 1))), strategies(),
                      [PRUNINGS[p] for p in ("none", "AUMC", "WAUM")], [x for x in deviations if x])


def cifar10h_experiment(data: CrowdData, mode: str = "smoke", seed: int = 0, device: Any = None,
                        progress: bool = True, test: tuple[np.ndarray, np.ndarray] | None = None,
                        smoke_answers_per_task: int = 2, smoke_test_size: int = 300) -> tuple[Experiment, CrowdData]:
    """CIFAR-10H (Table 2, Figs. 3a, 7, 16). Returns the experiment and the training crowd.

    ``data``: :func:`crowd.data.datasets.load_cifar10h` with images as features. With all 10000 tasks
    (the raw file), training = tasks 0..9499 and validation = images 9500..9999 with their
    CIFAR-10 labels, as in the paper; otherwise (offline) training = the 500 tasks that have
    per-annotator answers and no validation.

    Full mode (the paper): ResNet-18 (3x3 stem for 32x32 images), SGD lr 0.1, momentum 0.9,
    weight decay 5e-4, batch 64, 150 epochs with lr /10 at 50 and 100; AUMC and WAUM with
    T = 50 epochs of the same optimiser; alpha = 0.01; DS at most 50 iterations; 3 repetitions;
    test = the 50000 CIFAR-10 training images (``test`` or :func:`crowd.data.cifar10.cifar10_train_set`).
    Smoke mode: the same pipeline with torchvision's ImageNet stem (16x fewer operations), one epoch,
    batch 128, at most ``smoke_answers_per_task`` answers per task, and the first ``smoke_test_size``
    CIFAR-10 test images that are not training tasks as the test set. Training tasks are the
    answered tasks below 9500 (all of them with the raw file).
    """
    from crowd.data.cifar10 import CIFAR10H_VALID_START, cifar10_train_set
    from crowd.data.datasets import cifar10_test_images
    from crowd.data.selection import cap_answers
    from crowd.learning.models import resnet18
    from crowd.learning.transforms import cifar10_to_tensor

    full = check_mode(mode)
    if data.features is None:
        raise ValueError("CIFAR-10H data without images: load it with datasets.load_cifar10h(images=True)")
    task_ids = np.asarray(data.task_ids, dtype=np.int64)
    has_all = bool((task_ids < CIFAR10H_VALID_START).any())
    deviations = []
    if has_all:
        train_codes = np.flatnonzero((task_ids < CIFAR10H_VALID_START) & (data.answers_per_task() > 0))
        valid_codes = np.flatnonzero(task_ids >= CIFAR10H_VALID_START)
        crowd = data.subset_tasks(train_codes)
        valid = (cifar10_to_tensor(data.features[valid_codes]), data.gold[valid_codes])
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
    setup = ExperimentSetup(
        "cifar10h", lambda: resnet18(data.n_classes, small_input=small),
        train_kwargs=dict(epochs=150 if full else 1, milestones=(50, 100) if full else (), **sgd),
        ident_kwargs=dict(epochs=50 if full else 1, **sgd),
        test=(cifar10_to_tensor(test[0]), np.asarray(test[1])),
        inputs=cifar10_to_tensor(crowd.features), valid=valid, alpha=0.01,
        ds_kwargs=dict(DS_SETTINGS_CIFAR10H), device=device, progress=progress, percent=True)
    seeds = list(range(seed, seed + (3 if full else 1)))
    return (Experiment(setup, seeds, list(aggregation_strategies(DS_SETTINGS_CIFAR10H).values()),
                       [PRUNINGS[p] for p in ("none", "AUMC", "WAUM")], [d for d in deviations if d]), crowd)
