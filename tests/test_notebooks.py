"""Every notebook follows the conventions nbval and papermill rely on; the strip tool keeps tagged outputs only."""

import nbformat
import pytest

from crowd.reporting import nbtools
from crowd.paths import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS][:1] == ["00"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    assert nbtools.problems(path) == []


def test_strip_keeps_only_tagged_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    kept = nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["keep_output"]})
    kept.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    dropped = nbformat.v4.new_code_cell("print(2)", execution_count=3)
    dropped.outputs = [nbformat.v4.new_output("stream", text="2\n")]
    nb.cells = [kept, dropped]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert nbtools.strip(path) is True
    again = nbformat.read(path, as_version=4)
    assert again.cells[0].outputs[0]["text"] == "1\n" and "nbval-check-output" in again.cells[0].metadata["tags"]
    assert again.cells[1].outputs == [] and again.cells[1].execution_count is None
    assert nbtools.strip(path) is False  # idempotent
    assert any("parameters" in p for p in nbtools.problems(path))
