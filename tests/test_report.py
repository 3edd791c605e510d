"""Paper-vs-reproduced comparison and the report."""

import pandas as pd
import pytest

from crowd import paths
from crowd.reporting import report


def test_compare_flags_within_outside_and_not_run():
    rep = pd.DataFrame({"dataset": ["labelme", "music"], "method": ["MV", "MV"], "metric": ["accuracy"] * 2,
                        "value": [77.0, 78.3], "note": ["", "ties at random"]})
    cmp = report.compare(rep, "mmlc_table1").set_index(["dataset", "method"])
    assert cmp.loc[("labelme", "MV"), "status"] == "within"
    assert cmp.loc[("music", "MV"), "status"] == "outside"
    assert cmp.loc[("music", "MV"), "difference"] == pytest.approx(78.3 - 71.42)
    assert cmp.loc[("text", "MV"), "status"] == "not run"
    # default tolerance: twice the paper's std
    assert cmp.loc[("labelme", "CoNAL"), "tolerance"] == pytest.approx(2 * 0.49 if 2 * 0.49 > 1 else 1.0)


def test_unknown_table_and_mode():
    with pytest.raises(FileNotFoundError, match="no paper values"):
        report.paper_table("nope")
    with pytest.raises(ValueError, match="mode"):
        report.result_path("00", "t", "fast")


def test_build_report(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    rep = pd.DataFrame({"dataset": ["labelme"], "method": ["DS"], "metric": ["accuracy"], "value": [79.5]})
    report.save_result(report.compare(rep, "mmlc_table1"), "00", "mmlc_table1", "smoke")
    out = report.build_report("smoke")
    text = out.read_text()
    assert "00 / mmlc_table1" in text and "1 within" in text and "23 not run" in text
