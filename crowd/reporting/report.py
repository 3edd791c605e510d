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
# optional key columns: when both the paper's table and the reproduced one have them, rows are matched on them too
# (e.g. the number of annotators T of the CMM paper's Table 2, the Individual / Global setting of its Table 3)
EXTRA_KEYS = ["T", "setting"]
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
    keys = KEYS + [c for c in EXTRA_KEYS if c in paper.columns and c in rep.columns]
    merged = paper.rename(columns={"value": "paper", "std": "paper_std"}).merge(rep[keys + keep], on=keys, how="left")
    merged["difference"] = merged["reproduced"] - merged["paper"]
    tol = merged["tolerance"].astype(float)
    merged["tolerance"] = tol.fillna(np.maximum(2 * merged["paper_std"].astype(float).fillna(0), min_tolerance))
    status = np.where(merged["difference"].abs() <= merged["tolerance"], "within", "outside")
    merged["status"] = np.where(merged["reproduced"].isna(), "not run", status)
    # a paper cell without a number (e.g. "could not be executed") is never within or outside
    merged["status"] = np.where(merged["paper"].isna(), "no paper value", merged["status"])
    cols = ["source", *keys, "paper", "paper_std", "reproduced", "reproduced_std", "difference", "tolerance", "status"]
    cols += [c for c in ("n_runs", "note", "paper_note") if c in merged.columns]
    return merged[cols]


def result_path(notebook: str, table: str, mode: str) -> Path:
    if mode not in ("smoke", "full"):
        raise ValueError(f"mode must be 'smoke' or 'full', got {mode!r}")
    return paths.RESULTS_DIR / f"{notebook}_{table}_{mode}.csv"


def meta_path(result: Path) -> Path:
    """The provenance sidecar of a results file: ``results/NN_x_full.csv`` -> ``results/NN_x_full.meta.json``."""
    return Path(result).with_suffix(".meta.json")


PROVENANCE_PACKAGES = ["numpy", "torch", "pandas", "scikit-learn", "scipy"]


def _git(*args: str) -> str | None:
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(paths.PROJECT_ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def provenance(mode: str, seeds: list[int] | None = None, parameters: dict | None = None,
               device: str | None = None) -> dict:
    """What produced a result: commit (and whether the tree differed from it), mode, seeds, parameters,
    library versions, device and thread counts. Outputs (``results/``, ``figures/``) do not count as dirty."""
    import importlib.metadata as md
    import os

    head = _git("rev-parse", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=normal", "--", ".", ":(exclude)results", ":(exclude)figures")
    dirty_files = sorted(line[3:] for line in changed.splitlines() if line.strip()) if changed is not None else None
    lib = {"python": platform.python_version()}
    for pkg in PROVENANCE_PACKAGES:
        try:
            lib[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            lib[pkg] = "not installed"
    threads: dict[str, object] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if os.environ.get(k)}
    threads["cpu_count"] = os.cpu_count()
    try:
        import torch

        from crowd.device import resolve_device

        threads["torch"] = torch.get_num_threads()
        if device is None:
            resolved = resolve_device("auto")
            device = f"cuda: {torch.cuda.get_device_name(resolved)}" if resolved.type == "cuda" else str(resolved)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return {
        "commit": head.strip() if head else "unknown (not a git checkout)",
        "dirty": bool(dirty_files) if dirty_files is not None else None,
        "dirty_files": (dirty_files or [])[:30],
        "mode": mode, "seeds": None if seeds is None else [int(x) for x in seeds],
        "parameters": parameters or {},
        "versions": lib, "device": device or "cpu", "threads": threads,
        "platform": platform.platform(), "machine": platform.machine(),
        "crowd_device": os.environ.get("CROWD_DEVICE"),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def save_result(df: pd.DataFrame, notebook: str, table: str, mode: str, seeds: list[int] | None = None,
                parameters: dict | None = None, device: str | None = None) -> Path:
    """Write a reproduced (or compared) table to ``results/<notebook>_<table>_<mode>.csv`` and its provenance
    (:func:`provenance`) to the ``.meta.json`` sidecar beside it.

    When the file already holds exactly these bytes and its sidecar the same mode, seeds and parameters, neither
    is rewritten: the sidecar keeps naming the commit that first produced these numbers, and a run that
    reproduces them bit for bit leaves ``git status`` clean.
    """
    import hashlib
    import json

    target = result_path(notebook, table, mode)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = df.to_csv(index=False)
    meta = provenance(mode, seeds, parameters, device)
    meta["file"] = target.name
    meta["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    sidecar = meta_path(target)
    if target.is_file() and sidecar.is_file() and target.read_bytes() == text.encode():
        old = _read_meta(sidecar)
        if old and all(old.get(k) == meta[k] for k in ("mode", "seeds", "parameters", "sha256")):
            return target
    target.write_text(text)
    sidecar.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
    return target


def _read_meta(sidecar: Path) -> dict | None:
    import json

    try:
        return json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None


def provenance_line(result: Path) -> str:
    """One Markdown line saying what produced ``result`` (from its sidecar), or that nobody knows."""
    import hashlib

    from crowd.reporting.verify import CHECKS

    checks = [c.name for c in CHECKS.values() if result.name in c.references]
    verified = (f" `make verify` (check {', '.join(checks)}) regenerates it on the CPU and compares it bit for bit."
                if checks else " Not covered by `make verify`.")
    sidecar = meta_path(result)
    if not sidecar.is_file():
        return (f"Provenance unknown: no `{sidecar.name}` (the file was committed before provenance records "
                f"existed; re-running its notebook in full mode writes one).{verified}")
    meta = _read_meta(sidecar)
    if meta is None:
        return f"Provenance unreadable: `{sidecar.name}` is not valid JSON."
    if meta.get("sha256") != hashlib.sha256(result.read_bytes()).hexdigest():
        return (f"Provenance stale: `{result.name}` changed after `{sidecar.name}` was written "
                f"(it recorded commit {str(meta.get('commit'))[:12]}).")
    commit = str(meta.get("commit", "unknown"))
    state = {True: "dirty tree", False: "clean tree"}.get(meta.get("dirty"), "tree state unknown")
    if meta.get("dirty"):
        files = meta.get("dirty_files") or []
        state += f": {', '.join(files[:5])}" + (" ..." if len(files) > 5 else "")
    lib = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())
    threads = meta.get("threads") or {}
    thread_text = ", ".join(f"{k}={v}" for k, v in threads.items())
    seeds = meta.get("seeds")
    extra = f"; parameters {meta['parameters']}" if meta.get("parameters") else ""
    return (f"Provenance: commit `{commit[:12]}` ({state}); mode {meta.get('mode')}; "
            f"seeds {seeds if seeds is not None else 'not recorded'}{extra}; {lib}; device {meta.get('device')}; "
            f"threads {thread_text}; {meta.get('machine', '')} {meta.get('platform', '')}; written {meta.get('created')}."
            + verified)


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
        lines += [f"## {nb} / {table}", "", f"Source file: `results/{path.name}`", "", provenance_line(path), ""]
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
                  provenance_line(bench), "", markdown_table(pd.read_csv(bench)), ""]
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
