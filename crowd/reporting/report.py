"""Published numbers side by side with reproduced ones, result files and the gathered report.

Paper values: ``data/paper_values/<paper>_<table>.csv``, long format with columns
``source, dataset, method, metric, value, std, tolerance`` (``tolerance`` empty = max(2 std, 1)).
Reproduced tables: DataFrames with ``dataset, method, metric, value`` (+ ``std``, ``n_runs``, ``note``),
written by :func:`save_result` to ``results/<NN>_<table>_<mode>.csv``.
"""

from __future__ import annotations

import platform
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from crowd import paths

KEYS = ["dataset", "method", "metric"]
DEFAULT_MIN_TOLERANCE = 1.0


def paper_table(name: str) -> pd.DataFrame:
    """The published numbers of one table (e.g. ``"mmlc_table1"``)."""
    path = paths.PAPER_VALUES_DIR / f"{name}.csv"
    if not path.is_file():
        known = sorted(p.stem for p in paths.PAPER_VALUES_DIR.glob("*.csv"))
        raise FileNotFoundError(f"no paper values {name!r} in {paths.PAPER_VALUES_DIR}; known: {known}")
    table = pd.read_csv(path, comment="#")
    missing = set(KEYS + ["source", "value"]) - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks column(s) {sorted(missing)}")
    for col in ("std", "tolerance"):
        if col not in table.columns:
            table[col] = np.nan
    return table


def compare(reproduced: pd.DataFrame, paper_name: str, min_tolerance: float = DEFAULT_MIN_TOLERANCE,
            methods: list[str] | None = None) -> pd.DataFrame:
    """Paper vs reproduced vs difference, one row per paper entry.

    ``status`` is ``within`` when |difference| <= tolerance (the CSV's, else max(2 std, min_tolerance)),
    ``outside`` otherwise, and ``not run`` (with the reason from ``note``) when the reproduced value is missing.
    ``methods`` keeps only those rows of the paper's table.
    """
    missing = set(KEYS + ["value"]) - set(reproduced.columns)
    if missing:
        raise ValueError(f"reproduced table lacks column(s) {sorted(missing)}")
    paper = paper_table(paper_name)
    if methods is not None:  # a notebook that reproduces only part of a table compares only those rows
        paper = paper[paper["method"].isin(methods)]
    rep = reproduced.rename(columns={"value": "reproduced", "std": "reproduced_std"})
    if "reproduced_std" not in rep.columns:
        rep = rep.assign(reproduced_std=np.nan)
    keep = [c for c in ["reproduced", "reproduced_std", "n_runs", "note"] if c in rep.columns]
    merged = paper.rename(columns={"value": "paper", "std": "paper_std"}).merge(rep[KEYS + keep], on=KEYS, how="left")
    merged["difference"] = merged["reproduced"] - merged["paper"]
    tol = merged["tolerance"].astype(float)
    merged["tolerance"] = tol.fillna(np.maximum(2 * merged["paper_std"].astype(float).fillna(0), min_tolerance))
    status = np.where(merged["difference"].abs() <= merged["tolerance"], "within", "outside")
    merged["status"] = np.where(merged["reproduced"].isna(), "not run", status)
    cols = ["source", *KEYS, "paper", "paper_std", "reproduced", "reproduced_std", "difference", "tolerance", "status"]
    cols += [c for c in ("n_runs", "note") if c in merged.columns]
    return merged[cols]


def result_path(notebook: str, table: str, mode: str) -> Path:
    if mode not in ("smoke", "full"):
        raise ValueError(f"mode must be 'smoke' or 'full', got {mode!r}")
    return paths.RESULTS_DIR / f"{notebook}_{table}_{mode}.csv"


def save_result(df: pd.DataFrame, notebook: str, table: str, mode: str) -> Path:
    """Write a reproduced (or compared) table to ``results/<notebook>_<table>_<mode>.csv``."""
    target = result_path(notebook, table, mode)
    target.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(target, index=False)
    return target


def versions() -> pd.DataFrame:
    """Versions of Python and the main packages, for the last cell of every notebook."""
    import importlib.metadata as md

    rows = [("python", platform.python_version()), ("platform", platform.platform())]
    for pkg in ["crowd-replicate", "numpy", "pandas", "scipy", "scikit-learn", "torch", "torchvision", "matplotlib",
                "seaborn", "papermill", "nbval"]:
        try:
            rows.append((pkg, md.version(pkg)))
        except md.PackageNotFoundError:
            rows.append((pkg, "not installed"))
    try:
        import torch

        rows.append(("device", "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"))
    except ImportError:  # pragma: no cover
        pass
    return pd.DataFrame(rows, columns=["package", "version"]).set_index("package")


_RESULT_RE = re.compile(r"^(\d\d)_(.+)_(smoke|full)\.csv$")


def build_report(mode: str = "full", output: Path | None = None) -> Path:
    """Gather every compared table of ``results/NN_*_<mode>.csv`` into ``results/REPORT.md``.

    A result file holding a ``status`` column is a comparison with the paper; others are listed as is.
    Falls back to the committed ``*_full.csv`` references for notebooks not run in ``mode``.
    """
    output = output or paths.RESULTS_DIR / "REPORT.md"
    files: dict[tuple[str, str], Path] = {}
    for path in sorted(paths.RESULTS_DIR.glob("*.csv")):
        m = _RESULT_RE.match(path.name)
        if not m:
            continue
        nb, table, file_mode = m.groups()
        if file_mode == mode or (nb, table) not in files:
            files[(nb, table)] = path
    lines = [f"# crowd-replicate: reproduced tables ({mode} mode)", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} by `make report` from `results/`. "
             "Each row: the paper's number, ours, the difference and whether it is within tolerance "
             "(the paper's 2 std, at least 1 point, unless the paper-values file says otherwise).", ""]
    totals = {"within": 0, "outside": 0, "not run": 0}
    totals["smoke only"] = 0
    for (nb, table), path in sorted(files.items()):
        df = pd.read_csv(path)
        lines += [f"## {nb} / {table}", "", f"Source file: `results/{path.name}`", ""]
        if not path.name.endswith(f"_{mode}.csv") and "status" in df.columns:
            # a smoke run is a plumbing check, not a replication: never count it as within or outside
            lines += [f"No {mode}-mode result here (see notebook {nb} for what its {mode} mode needs); "
                      f"the numbers below come from a smoke run and are not compared.", ""]
            df["status"] = "smoke only"
        if "status" in df.columns:
            for key in totals:
                totals[key] += int((df["status"] == key).sum())
        lines += [_markdown(df), ""]
    bench = paths.RESULTS_DIR / "bench.csv"
    if not bench.is_file():
        bench = paths.RESULTS_DIR / "bench_full.csv"
    if bench.is_file():  # the truth-inference benchmark of `make bench` (the committed reference otherwise)
        from benchmarks.bench import markdown_table

        lines += ["## Benchmark: truth inference speed (make bench)", "", f"Source file: `results/{bench.name}`", "",
                  markdown_table(pd.read_csv(bench)), ""]
    summary = ", ".join(f"{v} {k}" for k, v in totals.items())
    lines.insert(4, f"**Summary over compared rows:** {summary}.\n")
    output.write_text("\n".join(lines))
    return output


def _markdown(df: pd.DataFrame) -> str:
    """A Markdown table without the optional tabulate dependency."""
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.2f}"
        return str(v).replace("|", "/")
    header = "| " + " | ".join(df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


if __name__ == "__main__":  # python -m crowd.reporting.report [mode]
    print(build_report(sys.argv[1] if len(sys.argv) > 1 else "full"))
