"""``make verify``: regenerate the committed reference results on the CPU and compare them, bit for bit.

Every committed reference (``results/NN_x_full.csv``) is listed in :data:`CHECKS` with the notebook and the
papermill parameters that regenerate it, or a stated subset of it (``rows``: the reference rows that subset
reproduces). :func:`run_check` executes the notebook into a scratch folder (``CROWD_RESULTS_DIR`` and
``CROWD_FIGURES_DIR`` point there, so the committed files are never touched) and :func:`compare_results`
compares what it wrote with the committed file.

The rule is exact equality, with no tolerance: in every compared row, every number is the same float64
(both files parsed exactly, NaN equal to NaN) and every text field the same string, and
the compared rows are the same set of keys. That is what a CPU run promises with the same pinned packages
and the same thread count (``requirements.txt``; the notebooks fix torch to one thread). GPU runs (cuDNN,
atomics in reductions) are only statistically reproducible and are not verified here: the runs are forced
onto the CPU (``CROWD_DEVICE=cpu``).

``python -m crowd.reporting.verify`` runs every check, ``--cheap`` only those CI runs (``make test``),
``NAME ...`` the named ones; ``python -m crowd.reporting.verify compare REFERENCE PRODUCED`` compares two files.
Exit status 1 lists the rows that moved.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crowd import paths

DEFAULT_KEY = ("source", "dataset", "method", "metric")


@dataclass(frozen=True)
class Check:
    """How to regenerate committed references (or a stated subset of them) and which rows to compare."""

    name: str
    notebook: str  # a file in notebooks/ (or an absolute path)
    parameters: dict  # papermill parameters, mode included
    references: tuple[str, ...]  # files in results/ the run writes under the same names
    rows: dict[str, tuple] = field(default_factory=dict)  # a subset run: only rows whose column takes these values
    key: tuple[str, ...] = DEFAULT_KEY  # the columns naming a row (those present in the file are used)
    cheap: bool = False  # run by `make test` on every change (CI)
    minutes: float = float("nan")  # measured on the 2-core CPU machine, for the help text
    what: str = ""  # what the check covers, when a subset


# One entry per way of regenerating references. Notebook 01 needs a `tables` parameter (e.g. tables=["table4"]) before
# a one-line entry can check one of its tables in full mode alone:
#   Check("01-table4", "01_waum_simulations.ipynb", {"mode": "full", "tables": ["table4"]}, ("01_table4_full.csv",)),
# Notebook 03's Music table and its 512-d LabelMe tables (*_avg_full.csv) come from an older version of the code and
# have no check yet (see the README's reproducibility section).
CHECKS: dict[str, Check] = {check.name: check for check in [
    Check("00", "00_lecture_crowdsourcing.ipynb", {"mode": "full"}, ("00_mmlc_table1_full.csv",), cheap=True,
          minutes=0.7, what="notebook 00 in full mode: MMLC Table 1, feature-blind rows"),
    Check("03-labelme-seed0", "03_waum_labelme_music.ipynb",
          {"mode": "full", "n_seeds": 1, "run_datasets": ["labelme"]},
          ("03_table5_full.csv", "03_table7_full.csv", "raw/03_waum_runs_full.csv"), minutes=31,
          what="notebook 03, LabelMe on the 8192-d features, seed 0 (the committed reference is that one seed; "
               "computing the features first takes ~20 min more on a fresh machine)"),
]}


class VerificationError(AssertionError):
    """A regenerated result differs from its committed reference (the message lists the rows that moved)."""


def _read(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise FileNotFoundError(f"no results file {path}")
    return pd.read_csv(path)  # pandas 3 parses floats exactly (round trip); float_precision= is deprecated


def _select(df: pd.DataFrame, rows: dict[str, tuple], where: str) -> pd.DataFrame:
    for column, values in rows.items():
        if column not in df.columns:
            raise ValueError(f"{where}: no column {column!r} to select the rows {rows}")
        df = df[df[column].isin(list(values))]
    return df


def _same(a: object, b: object) -> bool:
    """Exact equality: NaN (or an empty field) equals only NaN, numbers compare as float64, the rest as text."""
    a_missing, b_missing = bool(pd.isna(a)), bool(pd.isna(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return float(a) == float(b)
    return str(a) == str(b)


def compare_results(reference: Path, produced: Path, rows: dict[str, tuple] | None = None,
                    key: tuple[str, ...] = DEFAULT_KEY) -> list[str]:
    """Rows of ``produced`` that differ from ``reference`` (empty list: identical), by the rule of the module.

    ``rows`` restricts both files to a subset; ``key`` names the columns that identify a row (those present).
    Each message names the row by its key and gives every column that moved, reference -> produced.
    """
    ref, new = _read(reference), _read(produced)
    name = Path(reference).name
    if list(ref.columns) != list(new.columns):
        return [f"{name}: columns differ: reference {list(ref.columns)}, produced {list(new.columns)}"]
    rows = rows or {}
    ref, new = _select(ref, rows, str(reference)), _select(new, rows, str(produced))
    if ref.empty:
        return [f"{name}: the reference has no row matching {rows}: nothing to compare"]
    key_cols = [c for c in key if c in ref.columns] or list(ref.columns)
    problems = []
    for label, df in (("reference", ref), ("produced", new)):
        dup = df[df.duplicated(key_cols, keep=False)]
        if not dup.empty:
            problems.append(f"{name}: the {label} has {len(dup)} rows sharing a key {key_cols}; add columns to the key")
    if problems:
        return problems
    def where(k: tuple) -> str:
        return " / ".join(f"{c}={v}" for c, v in zip(key_cols, k) if c != "source")

    def by_key(df: pd.DataFrame) -> dict[tuple, dict]:
        return {tuple(str(r[c]) for c in key_cols): r for r in df.to_dict("records")}

    ref_rows, new_rows = by_key(ref), by_key(new)
    for k in ref_rows.keys() - new_rows.keys():
        problems.append(f"{name}: row {where(k)} missing from the new run")
    for k in new_rows.keys() - ref_rows.keys():
        problems.append(f"{name}: row {where(k)} is new (not in the reference)")
    value_cols = [c for c in ref.columns if c not in key_cols]
    for k, a in ref_rows.items():
        if k in new_rows:
            b = new_rows[k]
            moved = [f"{c} {a[c]!r} -> {b[c]!r}" for c in value_cols if not _same(a[c], b[c])]
            if moved:
                problems.append(f"{name}: row {where(k)} moved: {'; '.join(moved)}")
    return problems


def run_check(check: Check, reference_dir: Path | None = None, workdir: Path | None = None,
              timeout: int = 3600, log=print) -> list[str]:
    """Execute ``check``'s notebook into ``workdir`` and compare its results with those in ``reference_dir``
    (default: the committed ``results/``). Returns the list of differences (empty: verified)."""
    import papermill

    reference_dir = Path(reference_dir or paths.RESULTS_DIR)
    notebook = Path(check.notebook)
    notebook = notebook if notebook.is_absolute() else paths.NOTEBOOKS_DIR / notebook
    with tempfile.TemporaryDirectory(prefix=f"verify_{check.name}_") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = {"CROWD_RESULTS_DIR": str(work / "results"), "CROWD_FIGURES_DIR": str(work / "figures"),
               "CROWD_DEVICE": "cpu"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # the kernel inherits them: the notebook writes into the scratch folder
        started = time.time()
        try:
            papermill.execute_notebook(str(notebook), str(work / notebook.name), parameters=check.parameters,
                                       cwd=str(notebook.parent), execution_timeout=timeout, progress_bar=False,
                                       log_output=False)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        log(f"verify {check.name}: {notebook.name} {check.parameters} ran in {time.time() - started:.0f} s")
        problems = []
        for ref in check.references:
            produced = work / "results" / ref
            if not produced.is_file():
                problems.append(f"{ref}: the run wrote no {produced.name} (wrote: "
                                f"{sorted(p.name for p in (work / 'results').glob('*.csv'))})")
                continue
            problems += compare_results(reference_dir / ref, produced, check.rows, check.key)
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crowd.reporting.verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"checks to run (default: all): {', '.join(CHECKS)}; or "
                                                 "'compare REFERENCE PRODUCED'")
    parser.add_argument("--cheap", action="store_true", help="only the checks CI runs on every change")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args(argv)
    if args.names[:1] == ["compare"]:
        if len(args.names) != 3:
            parser.error("usage: compare REFERENCE PRODUCED")
        problems = compare_results(Path(args.names[1]), Path(args.names[2]))
        print("\n".join(problems) or "identical")
        return 1 if problems else 0
    unknown = [n for n in args.names if n not in CHECKS]
    if unknown:
        parser.error(f"unknown check(s) {unknown}; known: {list(CHECKS)}")
    checks = [CHECKS[n] for n in args.names] if args.names else [c for c in CHECKS.values() if c.cheap or not args.cheap]
    if args.list:
        for c in CHECKS.values():
            print(f"{c.name:8s} {'CI ' if c.cheap else '   '} ~{c.minutes:g} min  {', '.join(c.references)}  {c.what}")
        print("(CI: run by `make test` on every change)")
        return 0
    failed = 0
    for check in checks:
        problems = run_check(check)
        if problems:
            failed += 1
            print(f"verify {check.name}: FAILED, {len(problems)} difference(s) from the committed reference:")
            print("\n".join(f"  {p}" for p in problems))
        else:
            print(f"verify {check.name}: identical to {', '.join(check.references)}"
                  + (f" (rows {check.rows})" if check.rows else ""))
    if failed:
        print(f"{failed} of {len(checks)} check(s) failed: the code no longer produces the committed references. "
              "Regenerate them in the same change (see README, Reproducibility) or find what moved them.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
