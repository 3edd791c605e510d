"""make verify: a regenerated result equal to its reference passes; a perturbed reference fails, naming the rows.

The committed references are only read: every perturbation happens on a copy in tmp_path.
"""

import shutil

import nbformat
import pandas as pd
import pytest

from crowd import paths
from crowd.reporting import verify

REFERENCE = paths.PROJECT_ROOT / "results" / "00_mmlc_table1_full.csv"


def _perturbed_copy(tmp_path, row, column, change):
    df = pd.read_csv(REFERENCE)
    df.loc[row, column] = change(df.loc[row, column])
    copy = tmp_path / REFERENCE.name
    df.to_csv(copy, index=False)
    return copy, df.loc[row]


def test_the_committed_reference_equals_itself_and_a_faithful_copy(tmp_path):
    copy = tmp_path / REFERENCE.name
    shutil.copy(REFERENCE, copy)
    assert verify.compare_results(REFERENCE, REFERENCE) == []
    # re-written by pandas (the way save_result writes it): still identical, no float lost
    pd.read_csv(REFERENCE).to_csv(copy, index=False)
    assert verify.compare_results(REFERENCE, copy) == []


def test_a_number_moved_by_one_ulp_fails_naming_the_row(tmp_path):
    import numpy as np

    copy, row = _perturbed_copy(tmp_path, 4, "reproduced", lambda v: np.nextafter(v, np.inf))
    problems = verify.compare_results(copy, REFERENCE)
    assert len(problems) == 1
    assert f"dataset={row['dataset']} / method={row['method']} / metric=accuracy moved: reproduced" in problems[0]


def test_text_missing_and_extra_rows_and_columns_fail(tmp_path):
    copy, row = _perturbed_copy(tmp_path, 0, "status", lambda v: "outside")
    assert "status 'outside' -> 'within'" in verify.compare_results(copy, REFERENCE)[0]
    df = pd.read_csv(REFERENCE)
    df.iloc[1:].to_csv(copy, index=False)
    missing = verify.compare_results(REFERENCE, copy)
    assert missing == [f"{REFERENCE.name}: row dataset={df.loc[0, 'dataset']} / method={df.loc[0, 'method']} / "
                       "metric=accuracy missing from the new run"]
    assert "is new" in verify.compare_results(copy, REFERENCE)[0]
    df.drop(columns="note").to_csv(copy, index=False)
    assert "columns differ" in verify.compare_results(REFERENCE, copy)[0]


def test_a_subset_compares_only_its_rows(tmp_path):
    copy, row = _perturbed_copy(tmp_path, 0, "reproduced", lambda v: v + 1)  # a labelme row
    assert row["dataset"] == "labelme"
    assert verify.compare_results(REFERENCE, copy, rows={"dataset": ("music", "text")}) == []
    assert len(verify.compare_results(REFERENCE, copy, rows={"dataset": ("labelme",)})) == 1
    assert "no row matching" in verify.compare_results(REFERENCE, copy, rows={"dataset": ("cifar10h",)})[0]


def test_every_committed_reference_file_exists_for_its_check():
    for check in verify.CHECKS.values():
        assert (paths.PROJECT_ROOT / "notebooks" / check.notebook).is_file()
        for ref in check.references:
            assert (paths.PROJECT_ROOT / "results" / ref).is_file(), ref
    assert any(c.cheap for c in verify.CHECKS.values())


def _tiny_notebook(tmp_path, value):
    """A notebook that writes one result through save_result, as the real ones do (runs in seconds)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell('mode = "smoke"\nvalue = 0.0', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import pandas as pd\nfrom crowd.reporting import report\n"
            "df = pd.DataFrame({'dataset': ['d'], 'method': ['m'], 'metric': ['accuracy'], 'value': [value / 3]})\n"
            "report.save_result(df, '99', 'tiny', mode, seeds=[0])"),
    ]
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_run_check_executes_the_notebook_and_fails_on_a_perturbed_reference(tmp_path):
    notebook = _tiny_notebook(tmp_path, 0.0)
    refs = tmp_path / "refs"
    refs.mkdir()
    pd.DataFrame({"dataset": ["d"], "method": ["m"], "metric": ["accuracy"], "value": [2 / 3]}).to_csv(
        refs / "99_tiny_full.csv", index=False)
    check = verify.Check("tiny", str(notebook), {"mode": "full", "value": 2.0}, ("99_tiny_full.csv",))
    work = tmp_path / "work"
    assert verify.run_check(check, reference_dir=refs, workdir=work, log=lambda *_: None) == []
    assert (work / "results" / "99_tiny_full.meta.json").is_file()  # provenance written beside it
    assert not (paths.RESULTS_DIR / "99_tiny_full.csv").exists()  # the committed folder untouched
    perturbed = verify.Check("tiny", str(notebook), {"mode": "full", "value": 2.0000001}, ("99_tiny_full.csv",))
    problems = verify.run_check(perturbed, reference_dir=refs, workdir=tmp_path / "work2", log=lambda *_: None)
    assert len(problems) == 1 and "dataset=d / method=m / metric=accuracy moved: value 0.6666666666666666 ->" in problems[0]


def test_cli_compare_exit_status(tmp_path, capsys):
    copy, _ = _perturbed_copy(tmp_path, 2, "reproduced", lambda v: v - 0.01)
    assert verify.main(["compare", str(REFERENCE), str(REFERENCE)]) == 0
    assert verify.main(["compare", str(REFERENCE), str(copy)]) == 1
    assert "moved" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        verify.main(["no-such-check"])
