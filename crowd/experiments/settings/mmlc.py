"""Settings of the MMLC experiments (Han et al., AAAI 2025)."""

from __future__ import annotations

from typing import Any

# ---------------------------------------------------------------------------------------------
# MMLC network and training (helper G). Paper-size configurations per dataset, from the paper
# ("16 expert modules ... 3 fully connected ReLU layers, output 32" for LabelMe; 10 experts of 3 and 2
# layers with outputs 32 and 16 for Text and Music) and the authors' code (Crowds24/MMLC):
#   LabelMe  Image/train/model.py, train.py: experts 16 x (D -> 500 -> 128 -> 32), gate Dense(59) ReLU,
#            output Dense(32) ReLU -> Dense(32) ReLU -> Dense(8); Adam 1e-3, 150 epochs, batch 32.
#   Text     Text/train/expert_gate_model_text.py, demo_BERT.py: experts 10 x (D -> 780 -> 128 -> 32),
#            output as LabelMe; Adam 1e-3, 300 epochs, batch 2048.
#   Music    Music/train/expert_gate_model_music.py, demo_music.py: experts 10 x (D -> 128 -> 16),
#            output Dense(16, linear) -> Dense(10); Adam 5e-3, 15000 epochs, batch 2042 (2945 answers:
#            two steps per epoch). Their Music gate ends in ReLU, not the softmax the paper describes:
#            "music" follows the paper (softmax), "music_code" the authors' code (ReLU gate).
# Seed 42, raw features (no normalisation), no weight penalty (the code has none), in all of them.
# Oracle worker (getOracleWorker/getOracleWorker.py): KDE bandwidth 0.05 / 0.001 / 1, grid of
# n_workers / 100 / n_workers points.
# Input dimensions follow the data: here LabelMe 512-d pooled VGG16 (paper 8192), Text 384-d MiniLM
# (paper 768-d BERT), Music 124 Marsyas (same).
# ---------------------------------------------------------------------------------------------

MMLC_PRESETS: dict[str, dict[str, Any]] = {
    "labelme": dict(n_experts=16, expert_hidden=(500, 128), expert_dim=32, gate_activation="softmax",
                    output_hidden=(32, 32), output_activation="relu", epochs=150, batch_size=32, lr=1e-3, seed=42),
    "text": dict(n_experts=10, expert_hidden=(780, 128), expert_dim=32, gate_activation="softmax",
                 output_hidden=(32, 32), output_activation="relu", epochs=300, batch_size=2048, lr=1e-3, seed=42),
    "music": dict(n_experts=10, expert_hidden=(128,), expert_dim=16, gate_activation="softmax",
                  output_hidden=(16,), output_activation="linear", epochs=15000, batch_size=2042, lr=5e-3, seed=42),
    "music_code": dict(n_experts=10, expert_hidden=(128,), expert_dim=16, gate_activation="relu",
                       output_hidden=(16,), output_activation="linear", epochs=15000, batch_size=2042, lr=5e-3,
                       seed=42),
}

OWF_PRESETS: dict[str, dict[str, Any]] = {
    "labelme": dict(method="kde", bandwidth=0.05, grid_size=None),
    "text": dict(method="kde", bandwidth=0.001, grid_size=100),
    "music": dict(method="kde", bandwidth=1.0, grid_size=None),
    "music_code": dict(method="kde", bandwidth=1.0, grid_size=None),
}

# Smoke runs (notebooks, tests): same networks, few epochs.
MMLC_SMOKE_EPOCHS = {"labelme": 3, "text": 2, "music": 100, "music_code": 100}


def mmlc_preset(name: str, smoke: bool = False) -> dict[str, Any]:
    """Keyword arguments of :class:`crowd.learning.mmlc.MMLC` for a dataset (a copy)."""
    key = name.lower()
    if key not in MMLC_PRESETS:
        raise ValueError(f"no MMLC preset {name!r}; available: {sorted(MMLC_PRESETS)}")
    params = dict(MMLC_PRESETS[key])
    if smoke:
        params["epochs"] = MMLC_SMOKE_EPOCHS[key]
    return params


def owf_preset(name: str) -> dict[str, Any]:
    """Keyword arguments of :class:`crowd.learning.oracle_worker.OracleWorker` for a dataset (a copy)."""
    key = name.lower()
    if key not in OWF_PRESETS:
        raise ValueError(f"no oracle-worker preset {name!r}; available: {sorted(OWF_PRESETS)}")
    return dict(OWF_PRESETS[key])


# ---------------------------------------------------------------------------------------------
# MMLC Table 1's feature-blind aggregators, with the settings of the authors' code
# (Crowds24/MMLC, aggregationMethod/; /work/shared/REPLICATION_NOTES.md):
#   MV   ties to the smallest label; the code reads labels as strings from a csv, so on the
#        13-class Text data "10" < "2" (tie_break="string"; numeric order for 10 classes or fewer).
#   DS   every worker starts at diagonal 0.7, off-diagonals (1 - 0.7)/(K - 1), uniform priors,
#        E-step first, exactly 10 EM iterations.
#   FDS  Sinha et al.'s fast DS: majority-vote start with random ties, hard E-step, stop when the
#        class marginals change by less than 1e-4 (L1) or after 100 iterations.
#   HDS  one accuracy per worker and true class, init diagonal 0.7, E-step first, stop when the
#        relative change of the log-likelihood is below 1e-4, at most 20 iterations.
# ---------------------------------------------------------------------------------------------

AGGREGATOR_PRESETS: dict[str, dict[str, Any]] = {
    "MV": dict(tie_break="string"),
    "DS": dict(init="diagonal", init_diagonal=0.7, n_iter=10, tol=None),
    "FDS": dict(n_iter=100, tol=1e-4, init_tie_break="random"),
    "HDS": dict(init="diagonal", init_diagonal=0.7, n_iter=20, tol=1e-4, stopping="relative"),
}


def aggregator_preset(name: str) -> dict[str, Any]:
    """Keyword arguments of MMLC's aggregator ``name`` ("MV", "DS", "FDS", "HDS"), a copy."""
    if name not in AGGREGATOR_PRESETS:
        raise ValueError(f"no MMLC aggregator preset {name!r}; available: {sorted(AGGREGATOR_PRESETS)}")
    return dict(AGGREGATOR_PRESETS[name])


def mmlc_aggregators() -> dict[str, Any]:
    """Factories (no argument -> a fresh estimator) of MMLC Table 1's MV, DS, FDS and HDS."""
    from crowd.aggregation import DawidSkene, FastDawidSkene, HomogeneousDawidSkene, MajorityVote

    classes = {"MV": MajorityVote, "DS": DawidSkene, "FDS": FastDawidSkene, "HDS": HomogeneousDawidSkene}
    return {name: (lambda cls=cls, kw=aggregator_preset(name): cls(**kw)) for name, cls in classes.items()}
