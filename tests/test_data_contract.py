"""The data contract: labels in = labels out (as crowd-kit 1.4.2), and bad or odd input.

One table of cases: each builds something from a bad or odd input and expects either a clear
error (type and message) or a stated result. Then fit_predict / fit_predict_proba against
crowd-kit on string, int and float labels (values, index name and dtype, Series name, columns).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from crowd.aggregation import (GLAD, WDS, DawidSkene, FastDawidSkene, HomogeneousDawidSkene, MajorityVote, NaiveSoft,
                               OneCoinDawidSkene, WeightedMajorityVote)
from crowd.data import CrowdData, as_crowd_data
from crowd.simulation.confusion import simulate_crowd


@dataclass
class Raises:
    error: type[BaseException]
    match: str


def frame(task, worker, label) -> pd.DataFrame:
    return pd.DataFrame({"task": task, "worker": worker, "label": label})


def three_tasks(labels) -> pd.DataFrame:
    """Tasks a, b, c answered by workers x, y (label list of length 6, row-major by task)."""
    return frame(["a", "a", "b", "b", "c", "c"], ["x", "y"] * 3, labels)


def one_class(n=6) -> pd.DataFrame:
    return frame(list(range(n)), ["w"] * n, ["only"] * n)


def json_file(tmp_path, content: str):
    path = tmp_path / "answers.json"
    path.write_text(content)
    return path


def readonly_cache_fetch(tmp_path, monkeypatch):
    from crowd.data import registry

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be: nothing can be written under it")
    monkeypatch.setenv("CROWD_DATA_DIR", str(tmp_path / "empty_mirror"))
    monkeypatch.setenv("CROWD_CACHE_DIR", str(blocker))
    return registry.fetch("fmenat+MixtureofGroups/LabelMe/answers.txt", download=True)


def cache_write_on_readonly(tmp_path, monkeypatch):
    from crowd.data.datasets import save_to_cache

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    emb = np.arange(6.0).reshape(2, 3)
    with pytest.warns(RuntimeWarning, match="not cached: cannot write .*minilm_x.npy"):
        saved = save_to_cache(blocker / "features" / "minilm_x.npy", emb, what="sentence embeddings")
    return saved, emb


def mv_random_rows(seed: int) -> pd.Series:
    """Every task tied 1-1 between 'u' and 'v'; ids mix ints and strings; rows shuffled by ``seed``."""
    tasks = [1, 2, "a", "b", 10, "c", 3, "d"] * 2
    workers = ["w1"] * 8 + ["w2"] * 8
    labels = ["u"] * 8 + ["v"] * 8
    df = frame(tasks, workers, labels).sample(frac=1.0, random_state=seed)
    return MajorityVote(tie_break="random", seed=0).fit_predict(df)


def first(series: pd.Series) -> Any:
    return series.iloc[0]


# (case id, thunk(tmp_path, monkeypatch) -> result, expected: Raises or predicate on the result)
CASES: list[tuple[str, Callable[..., Any], Any]] = [
    # ------------------------------------------------------------- labels in = labels out
    ("string labels come back as strings",
     lambda t, m: DawidSkene().fit_predict(three_tasks(["cat", "dog", "dog", "dog", "cat", "cat"])),
     lambda r: r.dtype == "str" and set(r) <= {"cat", "dog"} and r.loc["b"] == "dog"),
    ("int labels come back as ints",
     lambda t, m: DawidSkene().fit_predict(three_tasks([3, 7, 7, 7, 3, 3])),
     lambda r: r.dtype == np.int64 and r.loc["b"] == 7),
    ("float labels come back as floats",
     lambda t, m: MajorityVote().fit_predict(three_tasks([0.5, 0.5, 2.5, 2.5, 0.5, 0.5])),
     lambda r: r.dtype == np.float64 and r.tolist() == [0.5, 2.5, 0.5]),
    ("proba columns are the original labels",
     lambda t, m: OneCoinDawidSkene().fit_predict_proba(three_tasks(["cat", "dog", "dog", "dog", "cat", "cat"])),
     lambda r: r.columns.tolist() == ["cat", "dog"] and r.columns.name == "label" and r.index.name == "task"),
    ("label 10**6 allocates nothing big (one class, fast)",
     lambda t, m: (lambda s: (DawidSkene().fit_predict(frame(range(6), ["w"] * 6, [10**6] * 6)), time.perf_counter() - s))(
         time.perf_counter()),
     lambda r: r[0].tolist() == [10**6] * 6 and r[1] < 5),
    ("classes are the observed labels, not range(max + 1)",
     lambda t, m: CrowdData.from_dataframe(frame([0, 1], [0, 0], [0, 10**6])),
     lambda r: r.n_classes == 2 and r.classes.tolist() == [0, 10**6]),
    ("1 and 1.0 are one class",
     lambda t, m: CrowdData.from_dataframe(frame([0, 1, 2], [0, 0, 0], pd.Series([1, 1.0, 2], dtype=object))),
     lambda r: r.n_classes == 2 and r.label.tolist() == [0, 0, 1]),
    ("'1' and 1 mixed are refused",
     lambda t, m: CrowdData.from_dataframe(frame([0, 1], [0, 0], pd.Series(["1", 1], dtype=object))),
     Raises(ValueError, "mix strings and numbers")),
    ("float copy of int labels gives the same aggregation",
     lambda t, m: (lambda d: (DawidSkene().fit_predict(d).to_numpy(),
                              DawidSkene().fit_predict(d.assign(label=d["label"].astype(float))).to_numpy()))(
         simulate_crowd(300, 20, 13, 4, spammer_share=0.3, seed=1).answers),
     lambda r: np.array_equal(r[0], r[1].astype(np.int64)) and r[1].dtype == np.float64),
    ("explicit classes keep an unused class's column",
     lambda t, m: NaiveSoft().fit_predict_proba(three_tasks(list("ababab")), classes=["a", "b", "z"]),
     lambda r: r.columns.tolist() == ["a", "b", "z"] and (r["z"] == 0).all()),
    ("a label outside classes=",
     lambda t, m: CrowdData.from_dataframe(three_tasks(list("ababaq")), classes=["a", "b"]),
     Raises(ValueError, r"unknown label\(s\) \['q'\]")),
    ("classes= with duplicates",
     lambda t, m: CrowdData.from_dataframe(three_tasks(list("ababab")), classes=["a", "b", "a"]),
     Raises(ValueError, "classes holds duplicates")),
    ("classes= of another type than the labels",
     lambda t, m: CrowdData.from_dataframe(three_tasks(list("ababab")), classes=[0, 1]),
     Raises(ValueError, "labels are strings but classes are numbers")),
    ("n_classes with string labels",
     lambda t, m: CrowdData.from_dataframe(three_tasks(list("ababab")), n_classes=2),
     Raises(ValueError, "n_classes applies to integer label codes")),
    ("n_classes with a code out of range",
     lambda t, m: CrowdData.from_dataframe(three_tasks([0, 1, 0, 1, 0, 5]), n_classes=3),
     Raises(ValueError, r"unknown label\(s\) \[5\] not in \[0, 3\)")),
    ("n_classes with a non-integer code",
     lambda t, m: CrowdData.from_dataframe(three_tasks([0, 1, 0, 1, 0, 1.5]), n_classes=3),
     Raises(ValueError, "not integer class codes")),
    ("n_classes keeps unused codes",
     lambda t, m: CrowdData.from_dataframe(three_tasks([0, 1, 0, 1, 0, 1]), n_classes=4),
     lambda r: r.n_classes == 4 and r.classes.tolist() == [0, 1, 2, 3]),
    ("infinite label", lambda t, m: CrowdData.from_dataframe(three_tasks([0, 1, 0, 1, 0, np.inf])),
     Raises(ValueError, "infinite")),
    ("missing label", lambda t, m: CrowdData.from_dataframe(three_tasks([0, 1, 0, 1, 0, np.nan])),
     Raises(ValueError, "missing values")),
    ("a list is no label", lambda t, m: CrowdData.from_dataframe(frame([0, 1], [0, 0], pd.Series([[1], 2], dtype=object))),
     Raises(ValueError, "labels must be strings or numbers, got list")),
    ("bool labels stay bools", lambda t, m: MajorityVote().fit_predict(three_tasks([True, True, False, False, True, True])),
     lambda r: r.dtype == bool and r.tolist() == [True, False, True]),
    ("missing column", lambda t, m: CrowdData.from_dataframe(frame([0], [0], [0]).drop(columns="worker")),
     Raises(ValueError, r"lacks column\(s\) \['worker'\]")),
    ("empty frame", lambda t, m: CrowdData.from_dataframe(frame([], [], [])), Raises(ValueError, "empty dataset")),
    ("not a table", lambda t, m: as_crowd_data([1, 2, 3]), Raises(TypeError, "cannot read crowd answers from list")),
    ("duplicate (task, worker) names the original ids",
     lambda t, m: CrowdData.from_dataframe(frame(["t1", "t1", "t2"], ["w1", "w1", "w1"], ["a", "b", "a"])),
     Raises(ValueError, r"1 pair\(s\) answered more than once, e\.g\. \(task 't1', worker 'w1'\)")),
    ("string task ids '1' and int 1 are two tasks",
     lambda t, m: CrowdData.from_dataframe(frame(["1", 1], [0, 0], [0, 1])),
     lambda r: r.n_tasks == 2 and r.task_ids.tolist() == [1, "1"]),
    ("integer codes in CrowdData come back as codes",
     lambda t, m: DawidSkene().fit_predict(CrowdData([0, 0, 1, 1], [0, 1, 0, 1], [2, 2, 0, 0], 2, 2, 3)),
     lambda r: r.tolist() == [2, 0] and r.dtype == np.int64),
    # ------------------------------------------------------------------------ answers.json
    ("json task keys '1', '01', '1.0' stay three tasks",
     lambda t, m: CrowdData.from_answers_json({"1": {"w": 0}, "01": {"w": 1}, "1.0": {"w": 1}}),
     lambda r: r.n_tasks == 3 and sorted(r.task_ids.tolist()) == ["01", "1", "1.0"]),
    ("json label 1.7 is an error, not 1",
     lambda t, m: CrowdData.from_answers_json({"0": {"w": 1.7}}),
     Raises(ValueError, r"task '0', worker 'w' is 1\.7, not an integer class code")),
    ("json label 2.0 is class 2",
     lambda t, m: CrowdData.from_answers_json({"0": {"w": 2.0}, "1": {"w": 2}}),
     lambda r: r.classes.tolist() == [2] and r.n_classes == 1),
    ("json wrongly nested (task -> list)",
     lambda t, m: CrowdData.from_answers_json(json_file(t, '{"0": [1, 2]}')),
     Raises(ValueError, r"task '0' maps to a list .*expected \{task: \{worker: label\}\}")),
    ("json top level is a list",
     lambda t, m: CrowdData.from_answers_json(json_file(t, '[{"0": {"1": 0}}]')),
     Raises(ValueError, r"answers\.json must hold an object")),
    ("json workers '7' and '007' are two workers",
     lambda t, m: CrowdData.from_answers_json({"0": {"7": 0, "007": 1}}),
     lambda r: r.n_workers == 2 and sorted(r.worker_ids.tolist()) == ["007", "7"]),
    ("json canonical integer keys are ints in numeric order",
     lambda t, m: CrowdData.from_answers_json({"10": {"3": 0}, "2": {"3": 1}, "1": {"3": 1}}),
     lambda r: r.task_ids.tolist() == [1, 2, 10] and r.worker_ids.tolist() == [3]),
    ("json label true is refused",
     lambda t, m: CrowdData.from_answers_json({"0": {"w": True}}),
     Raises(ValueError, "expected an integer class code or a class name")),
    ("json file that is not JSON names the file",
     lambda t, m: CrowdData.from_answers_json(json_file(t, "{'0': }")),
     Raises(ValueError, r"answers\.json is not valid JSON")),
    ("json without answers", lambda t, m: CrowdData.from_answers_json({}), Raises(ValueError, "empty dataset")),
    ("json string labels come back as strings",
     lambda t, m: MajorityVote().fit_predict({"0": {"a": "cat", "b": "cat"}, "1": {"a": "dog"}}),
     lambda r: r.tolist() == ["cat", "dog"] and r.index.tolist() == [0, 1]),
    ("json task without answers is refused at fit",
     lambda t, m: DawidSkene().fit({"0": {"1": 0}, "1": {}}),
     Raises(ValueError, r"1 task\(s\) have no answer, e\.g\. \[1\]")),
    ("json round trip keeps the original integer labels",
     lambda t, m: CrowdData.from_answers_json(CrowdData.from_dataframe(frame([5, 6], [1, 1], [40, 7])).to_answers_json()),
     lambda r: r.answers["label"].tolist() == [40, 7]),
    # ------------------------------------------------------------------- one-class data
    ("one class, DS init='diagonal'", lambda t, m: DawidSkene(init="diagonal").fit_predict(one_class()),
     lambda r: (r == "only").all()),
    ("one class, HomogeneousDawidSkene", lambda t, m: HomogeneousDawidSkene(init="diagonal").fit_predict(one_class()),
     lambda r: (r == "only").all()),
    ("one class, OneCoinDawidSkene", lambda t, m: OneCoinDawidSkene().fit_predict_proba(one_class()),
     lambda r: r.columns.tolist() == ["only"] and (r["only"] == 1.0).all()),
    ("one class, GLAD", lambda t, m: GLAD().fit_predict(one_class()), lambda r: (r == "only").all()),
    ("one class, FastDawidSkene", lambda t, m: FastDawidSkene().fit_predict(one_class()), lambda r: (r == "only").all()),
    ("one class, WDS", lambda t, m: WDS().fit_predict(one_class()), lambda r: (r == "only").all()),
    # ------------------------------------------------------------------- parameters
    ("DS tol=-1", lambda t, m: DawidSkene(tol=-1), Raises(ValueError, "tol must be a finite number >= 0")),
    ("DS tol=NaN", lambda t, m: DawidSkene(tol=float("nan")), Raises(ValueError, "tol must be a finite number")),
    ("HDS tol=inf", lambda t, m: HomogeneousDawidSkene(tol=float("inf")), Raises(ValueError, "tol must be")),
    ("GLAD tol=NaN", lambda t, m: GLAD(tol=np.nan), Raises(ValueError, "tol must be")),
    ("GLAD m_step_tol=-1", lambda t, m: GLAD(m_step_tol=-1), Raises(ValueError, "m_step_tol must be")),
    ("FDS tol=-1", lambda t, m: FastDawidSkene(tol=-1), Raises(ValueError, "tol must be")),
    ("DS n_iter=0", lambda t, m: DawidSkene(n_iter=0), Raises(ValueError, "n_iter must be an integer >= 1")),
    ("OneCoin n_iter=2.5", lambda t, m: OneCoinDawidSkene(n_iter=2.5), Raises(ValueError, "n_iter must be an integer")),
    ("GLAD m_step_iter=0", lambda t, m: GLAD(m_step_iter=0), Raises(ValueError, "m_step_iter must be")),
    ("DS init='random'", lambda t, m: DawidSkene(init="random"), Raises(ValueError, "unknown init 'random'")),
    ("DS stopping='never'", lambda t, m: DawidSkene(stopping="never"), Raises(ValueError, "unknown stopping")),
    ("DS smoothing=-1", lambda t, m: DawidSkene(smoothing=-1), Raises(ValueError, "smoothing must be")),
    ("DS init_diagonal=1", lambda t, m: DawidSkene(init_diagonal=1.0), Raises(ValueError, r"init_diagonal must be in \(0, 1\)")),
    ("GLAD prior variance 0", lambda t, m: GLAD(alpha_prior=(1.0, 0.0)), Raises(ValueError, "alpha_prior must have")),
    ("MV tie_break='largest'", lambda t, m: MajorityVote(tie_break="largest"), Raises(ValueError, "unknown tie_break")),
    ("MV seed=-1", lambda t, m: MajorityVote(seed=-1), Raises(ValueError, "seed must be an integer >= 0")),
    ("FDS tie order with a repeat", lambda t, m: FastDawidSkene(init_tie_break=[0, 0, 1]),
     Raises(ValueError, "distinct class codes")),
    ("WMV weights='expert'", lambda t, m: WeightedMajorityVote(weights="expert"), Raises(ValueError, "unknown weights")),
    ("WDS ds_kwargs not a dict", lambda t, m: WDS(ds_kwargs=[("n_iter", 3)]), Raises(ValueError, "ds_kwargs must be a dict")),
    ("unknown device", lambda t, m: DawidSkene(device="gpu9").fit(one_class() .assign(label=["a", "b"] * 3)),
     Raises(ValueError, "unknown device 'gpu9'")),
    # ------------------------------------------------------------- order, cache
    ("random MV tie-break ignores the row order with mixed-type ids",
     lambda t, m: [mv_random_rows(s) for s in range(4)],
     lambda r: all(x.index.tolist() == r[0].index.tolist() and x.tolist() == r[0].tolist() for x in r)
     and r[0].index.tolist()[:4] == [1, 2, 3, 10] and len(set(r[0])) == 2),
    ("read-only cache: the error names the file", readonly_cache_fetch,
     Raises(Exception, r"cache folder .*not_a_folder/fmenat\+MixtureofGroups/LabelMe cannot be created")),
    ("read-only cache: computed embeddings are returned with a warning", cache_write_on_readonly,
     lambda r: r[0] is False and r[1].shape == (2, 3)),
]


@pytest.mark.parametrize("name, make, expected", CASES, ids=[c[0] for c in CASES])
def test_data_contract(name, make, expected, tmp_path, monkeypatch):
    if isinstance(expected, Raises):
        with pytest.raises(expected.error, match=expected.match):
            make(tmp_path, monkeypatch)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # e.g. a division by zero on one-class data
            result = make(tmp_path, monkeypatch)
        assert expected(result), result


def test_the_table_is_long_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


# --------------------------------------------------------------------- against crowd-kit
def _crowd(kind: str) -> pd.DataFrame:
    """A crowd where every method agrees (strong workers, odd number of answers: no ties)."""
    df = simulate_crowd(150, 12, 3, 5, diag_low=0.8, diag_high=0.95, seed=3).answers
    values = {"str": np.array(["bird", "cat", "dog"], dtype=object), "int": np.array([3, 17, 40]),
              "float": np.array([0.5, 1.0, 2.25])}[kind]
    return df.assign(task=df["task"].map(lambda t: f"t{t:03d}"), label=values[df["label"].to_numpy()])


PAIRS = ["MajorityVote", "DawidSkene", "OneCoinDawidSkene", "GLAD"]


@pytest.mark.parametrize("kind", ["str", "int", "float"])
@pytest.mark.parametrize("method", PAIRS)
def test_fit_predict_matches_crowdkit(kind, method):
    ck = pytest.importorskip("crowdkit.aggregation")
    ours = {"MajorityVote": MajorityVote, "DawidSkene": DawidSkene, "OneCoinDawidSkene": OneCoinDawidSkene,
            "GLAD": GLAD}[method]()
    theirs = getattr(ck, method)()
    df = _crowd(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        expected = theirs.fit_predict(df)
        expected_proba = getattr(ck, method)().fit_predict_proba(df)
    got = ours.fit_predict(df)
    pd.testing.assert_series_equal(got, expected)  # values, dtype, name, index values, name and dtype
    proba = ours.fit_predict_proba(df)
    # the same labels as columns (ours sorted; crowd-kit's order follows its internal tables)
    pd.testing.assert_index_equal(proba.columns, expected_proba.columns.sort_values().rename("label"))
    assert proba.columns.dtype == expected_proba.columns.dtype
    pd.testing.assert_index_equal(proba.index, expected_proba.index)
    assert (proba.idxmax(axis=1) == expected_proba.idxmax(axis=1)).all()


def test_answers_property_returns_the_original_labels():
    df = _crowd("str")
    data = CrowdData.from_dataframe(df)
    back = data.answers.sort_values(["task", "worker"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, df.sort_values(["task", "worker"]).reset_index(drop=True), check_dtype=False)
    assert json.dumps(CrowdData.from_dataframe(_crowd("int")).to_answers_json())  # integer labels serialise
