"""One helper to save every figure: PNG (and PDF) in ``figures/``, named after the notebook."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from crowd import paths


def save_figure(fig: "matplotlib.figure.Figure", name: str, formats: tuple[str, ...] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.<fmt>``; ``name`` starts with the notebook prefix, e.g. ``00_fig15_answers_per_task``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name {name!r} must be a plain file stem like '00_fig15_answers_per_task'")
    paths.FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = paths.FIGURES_DIR / f"{name}.{fmt}"
        fig.savefig(target, dpi=dpi, bbox_inches="tight")
        written.append(target)
    return written
