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


def test_save_result_writes_provenance_and_keeps_it_when_the_numbers_repeat(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    rep = pd.DataFrame({"dataset": ["labelme"], "method": ["DS"], "metric": ["accuracy"], "value": [79.8]})
    path = report.save_result(rep, "00", "t", "full", seeds=[0, 1], parameters={"datasets": ["labelme"]})
    meta = json.loads(report.meta_path(path).read_text())
    assert report.meta_path(path).name == "00_t_full.meta.json"
    assert meta["mode"] == "full" and meta["seeds"] == [0, 1] and meta["parameters"] == {"datasets": ["labelme"]}
    assert set(meta["versions"]) == {"python", "numpy", "torch", "pandas", "scikit-learn", "scipy"}
    assert len(meta["commit"]) == 40 and isinstance(meta["dirty"], bool)  # this checkout is a git clone
    assert meta["device"] and meta["threads"]["torch"] >= 1
    # the same numbers again: neither file is rewritten (the sidecar keeps the first producer)
    report.meta_path(path).write_text(json.dumps({**meta, "commit": "f" * 40}))
    report.save_result(rep, "00", "t", "full", seeds=[0, 1], parameters={"datasets": ["labelme"]})
    assert json.loads(report.meta_path(path).read_text())["commit"] == "f" * 40
    # other numbers (or other seeds): both rewritten
    report.save_result(rep.assign(value=80.0), "00", "t", "full", seeds=[0, 1], parameters={"datasets": ["labelme"]})
    assert json.loads(report.meta_path(path).read_text())["commit"] == meta["commit"]


def test_report_shows_provenance_unknown_and_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path)
    rep = pd.DataFrame({"dataset": ["labelme"], "method": ["DS"], "metric": ["accuracy"], "value": [79.5]})
    report.save_result(report.compare(rep, "mmlc_table1"), "00", "mmlc_table1", "full", seeds=[0])
    legacy = report.save_result(rep, "01", "legacy", "full")
    report.meta_path(legacy).unlink()  # a reference committed before sidecars existed
    edited = report.save_result(rep, "02", "edited", "full")
    edited.write_text(edited.read_text().replace("79.5", "80.5"))  # changed after its sidecar was written
    text = report.build_report("full").read_text()
    section = text.split("## 00 / mmlc_table1")[1].split("##")[0]
    assert "Provenance: commit `" in section and "mode full; seeds [0]" in section and "torch " in section
    legacy_section = text.split("## 01 / legacy")[1]
    assert "Provenance unknown: no `01_legacy_full.meta.json`" in legacy_section and "Not covered by `make verify`" in legacy_section
    assert "Provenance stale" in text.split("## 02 / edited")[1]


def test_committed_references_provenance_in_the_report():
    """Notebook 00's reference has a sidecar and is verified; older references say 'provenance unknown'."""
    results = paths.PROJECT_ROOT / "results"
    line = report.provenance_line(results / "00_mmlc_table1_full.csv")
    assert line.startswith("Provenance: commit `") and "mode full" in line and "check 00" in line
    for legacy in ("03_table5_full.csv", "01_table1_full.csv"):
        if not report.meta_path(results / legacy).is_file():
            assert report.provenance_line(results / legacy).startswith("Provenance unknown")
