"""Paths anchored to the package, never to the working directory."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
RESULTS_DIR = Path(os.environ.get("CROWD_RESULTS_DIR", PROJECT_ROOT / "results"))
FIGURES_DIR = Path(os.environ.get("CROWD_FIGURES_DIR", PROJECT_ROOT / "figures"))
PAPER_VALUES_DIR = PROJECT_ROOT / "data" / "paper_values"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
