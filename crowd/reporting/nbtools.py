"""Notebook hygiene: strip outputs except the result cells nbval checks, and lint the conventions.

``python -m crowd.reporting.nbtools refresh NOTEBOOK`` runs a notebook in smoke mode and stores the outputs of its
tagged cells (the reference nbval checks). ``python -m crowd.reporting.nbtools strip notebooks/*.ipynb`` keeps the outputs of cells tagged
``keep_output`` (those nbval compares under ``--nbval-lax``; they carry ``nbval-check-output`` too)
and clears every other output and execution count.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

KEEP_TAGS = {"keep_output", "nbval-check-output"}


def strip(path: str | Path) -> bool:
    """Strip one notebook in place; returns True when it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        if tags & KEEP_TAGS:
            cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | KEEP_TAGS)
            for out in cell.outputs:  # keep text results only: images and widget state don't compare
                out.get("metadata", {}).clear()
        else:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    after = nbformat.writes(nb)
    if after != before:
        Path(path).write_text(after + ("\n" if not after.endswith("\n") else ""))
        return True
    return False


def refresh(path: str | Path, timeout: int = 1800) -> None:
    """Execute a notebook with its default (smoke) parameters and store the tagged outputs back, stripped.

    The stored outputs are what nbval compares under ``--nbval-lax``.
    """
    import tempfile

    import papermill

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / path.name
        papermill.execute_notebook(str(path), str(executed), cwd=str(path.parent), execution_timeout=timeout,
                                   progress_bar=False)
        ran = nbformat.read(executed, as_version=4)
    source = nbformat.read(path, as_version=4)
    if len(ran.cells) != len(source.cells):
        raise RuntimeError(f"{path}: executed notebook has {len(ran.cells)} cells, source {len(source.cells)}")
    for cell, done in zip(source.cells, ran.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = done.outputs, done.execution_count
    nbformat.write(source, path)
    strip(path)


def problems(path: str | Path) -> list[str]:
    """Conventions every notebook follows (checked by the test suite)."""
    nb = nbformat.read(path, as_version=4)
    found = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    if len(params) != 1:
        found.append(f"needs exactly one cell tagged 'parameters', has {len(params)}")
    elif 'mode = "smoke"' not in params[0].source:
        found.append("parameters cell must default to mode = \"smoke\"")
    for i, cell in enumerate(code):
        tags = set(cell.metadata.get("tags", []))
        if cell.outputs and not tags & KEEP_TAGS:
            found.append(f"code cell {i} has outputs but no keep_output tag (run make strip)")
    if code and "versions()" not in code[-1].source:
        found.append("last code cell must record versions (crowd.reporting.report.versions())")
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("strip", "check", "refresh"):
        print("usage: python -m crowd.reporting.nbtools strip|check|refresh NOTEBOOK...", file=sys.stderr)
        return 2
    status = 0
    for path in argv[1:]:
        if argv[0] == "strip":
            print(f"{path}: {'stripped' if strip(path) else 'clean'}")
        elif argv[0] == "refresh":
            refresh(path)
            print(f"{path}: executed, tagged outputs stored")
        else:
            for problem in problems(path):
                print(f"{path}: {problem}")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
