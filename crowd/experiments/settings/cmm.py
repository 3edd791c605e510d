"""Settings of Mena & Nanculef (CIARP 2019) as named presets: smoke (minutes on 2 CPU cores) and full.

From the paper (section 5) and the authors' scripts (run_simple_Tchange.py, run_CIFAR_Tchange.py,
run_LabelMe.py of FMena14/MixtureofGroups; REPLICATION_NOTES.md, CMM):

- every network fit stops when the relative change of its loss is <= 0.03 or after 50 epochs (non-EM
  methods), every EM when the relative change of the log-likelihood AND the mean relative change of the
  confusions are <= 0.03 or after 50 iterations; one epoch of Adam (lr 1e-3) per M-step;
- restarts of DL-EM and CMM: 20 (Setup 1, LabelMe), 15 (CIFAR-10); runs: 20 in the paper (the authors'
  Setup 1 script repeated 30 trainings on one crowd per T, their CIFAR script 5);
- nets: Setup 1 an MLP with one hidden layer of 16 ReLU and dropout 0.2 on standardised inputs, batch 64;
  CIFAR-10 the 3-block CNN (32, 64, 128 filters) on inputs / 255, batch 128; LabelMe the Rodrigues head
  (Dense 128 ReLU, dropout 0.5) on the VGG16 features, batch 64;
- T grid of Table 2: 100, 500, 1500, 3500, 6000, 10000; M = 3 (Setup 1, LabelMe), 4 (CIFAR-10).

Runs (our protocol, stated): run ``r`` draws a new crowd with seed ``r`` from the fixed scenario (points
and group matrices) and trains every method with seed ``r``; the paper's mean and std are over runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["CMMPreset", "PRESETS", "preset", "TABLE2_T_GRID", "SCALING_T_GRID", "TABLE2_METHODS", "TABLE3_METHODS"]

TABLE2_T_GRID = (100, 500, 1500, 3500, 6000, 10000)
# Figure 3 (the paper stops at T = 10,000; ours goes to 100,000 annotators)
SCALING_T_GRID = (100, 1000, 3500, 10_000, 30_000, 100_000)
TABLE2_METHODS = ("softMV", "hardMV", "DL-DS", "DL-EM", "CMM", "Ideal")
TABLE3_METHODS = ("softMV", "hardMV", "DL-DS", "DL-EM", "CMM", "Ideal")


@dataclass(frozen=True)
class CMMPreset:
    """One experiment's settings.

    n_runs : runs (new crowd and training seed each); n_restarts : EM restarts of DL-EM and CMM.
    max_iter, tol : EM stopping rule; max_epochs : the non-EM nets' epoch limit (same tol).
    model : network spec of :func:`crowd.learning.crowd_nets.build_network`; batch_size, lr : Adam.
    standardize : standardise the inputs (Setup 1). n_groups : M of CMM (``n_groups_grid``: the Ms tried
    on LabelMe, the one of highest log-likelihood kept). t_grid : the annotator counts of Table 2.
    """

    name: str
    n_runs: int
    n_restarts: int
    t_grid: tuple[int, ...] = TABLE2_T_GRID
    max_iter: int = 50
    tol: float = 0.03
    max_epochs: int = 50
    model: Any = None
    batch_size: int = 64
    lr: float = 1e-3
    standardize: bool = False
    n_groups: int = 3
    n_groups_grid: tuple[int, ...] = ()
    methods: tuple[str, ...] = TABLE2_METHODS
    extra: dict[str, Any] = field(default_factory=dict)

    def learner_kwargs(self) -> dict[str, Any]:
        return {"model": self.model, "batch_size": self.batch_size, "lr": self.lr, "standardize": self.standardize}


PRESETS: dict[str, CMMPreset] = {}


def _add(p: CMMPreset) -> CMMPreset:
    PRESETS[p.name] = p
    return p


SETUP1_FULL = _add(CMMPreset("setup1_full", n_runs=20, n_restarts=20, model="cmm_mlp", standardize=True,
                             extra={"scenario": {"centres": "code", "group_matrices": "authors"}}))
SETUP1_SMOKE = _add(replace(SETUP1_FULL, name="setup1_smoke", n_runs=1, n_restarts=1, max_iter=10, max_epochs=10,
                            t_grid=(100, 3500)))
# Setup (2): the paper's setting needs the 50,000 training images and a GPU (15 restarts, CNN)
SETUP2_FULL = _add(CMMPreset("setup2_full", n_runs=20, n_restarts=15, model="cifar_cnn", batch_size=128, n_groups=4,
                             extra={"scenario": {"source": "torchvision", "group_matrices": "authors"},
                                    "needs": "the 50,000 CIFAR-10 training images (torchvision) and a CUDA GPU"}))
# Setup (2) reduced for CPU: 8,000 of the 10,000 offline test images as points, 2,000 as test set
SETUP2_CPU = _add(replace(SETUP2_FULL, name="setup2_cpu", n_runs=2, n_restarts=2, max_iter=10, max_epochs=10,
                          t_grid=(100, 500, 1500),
                          extra={"scenario": {"source": "test10k", "n_train": 8000, "group_matrices": "authors"}}))
SETUP2_SMOKE = _add(replace(SETUP2_CPU, name="setup2_smoke", n_runs=1, n_restarts=1, max_iter=1, max_epochs=1,
                            t_grid=(100,), extra={"scenario": {"source": "test10k", "n_train": 500, "n_test": 500,
                                                               "group_matrices": "authors"}}))
LABELME_FULL = _add(CMMPreset("labelme_full", n_runs=20, n_restarts=20, model="rodrigues", n_groups=3,
                              n_groups_grid=(2, 3, 4), methods=TABLE3_METHODS, t_grid=()))
LABELME_SMOKE = _add(replace(LABELME_FULL, name="labelme_smoke", n_runs=1, n_restarts=1, max_iter=5, max_epochs=5,
                             n_groups_grid=(3,)))
SCALING_FULL = _add(CMMPreset("scaling_full", n_runs=3, n_restarts=1, t_grid=SCALING_T_GRID, max_iter=10,
                              model="cmm_mlp", standardize=True, methods=("CMM", "DL-EM", "DS", "GLAD"),
                              extra={"scenario": {"centres": "code", "group_matrices": "authors"}}))
SCALING_SMOKE = _add(replace(SCALING_FULL, name="scaling_smoke", n_runs=1, max_iter=2, t_grid=(100, 10_000, 100_000)))


def preset(name: str) -> CMMPreset:
    """The preset called ``name`` (e.g. ``"setup1_full"``, ``"labelme_smoke"``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown CMM preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]
