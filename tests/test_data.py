"""CrowdData: encoding, converters and the errors bad input must raise."""

import json

import numpy as np
import pandas as pd
import pytest

from crowd.data import CrowdData, as_crowd_data


def small_frame():
    return pd.DataFrame({"task": ["t2", "t1", "t1", "t3"], "worker": ["w9", "w9", "w1", "w1"],
                         "label": ["dog", "cat", "dog", "bird"]})


def test_from_dataframe_encodes_sorted_ids_and_class_names():
    ds = CrowdData.from_dataframe(small_frame())
    assert ds.class_names == ["bird", "cat", "dog"]
    assert list(ds.task_ids) == ["t1", "t2", "t3"] and list(ds.worker_ids) == ["w1", "w9"]
    assert (ds.n_tasks, ds.n_workers, ds.n_classes, ds.n_answers) == (3, 2, 3, 4)
    back = ds.answers
    # the answers come back with the original ids and labels, one row per input row
    np.testing.assert_array_equal(ds.label, [2, 1, 2, 0])
    original = small_frame()
    pd.testing.assert_frame_equal(back.sort_values(["task", "worker"]).reset_index(drop=True),
                                  original.sort_values(["task", "worker"]).reset_index(drop=True), check_dtype=False)


def test_vote_counts_and_loads():
    ds = CrowdData.from_dataframe(small_frame())
    np.testing.assert_array_equal(ds.vote_counts(), [[0, 1, 1], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(ds.answers_per_task(), [2, 1, 1])
    np.testing.assert_array_equal(ds.answers_per_worker(), [2, 2])


def test_answers_json_round_trip(tmp_path):
    ds = CrowdData.from_dataframe(pd.DataFrame({"task": [0, 0, 1, 10], "worker": [3, 5, 3, 5], "label": [1, 0, 1, 2]}))
    path = tmp_path / "answers.json"
    ds.to_answers_json(path)
    again = CrowdData.from_answers_json(path, n_classes=3)
    assert json.loads(path.read_text()) == {"0": {"3": 1, "5": 0}, "1": {"3": 1}, "10": {"5": 2}}
    # integer-like ids keep their numeric order (10 after 1, not between 1 and 2)
    assert list(again.task_ids) == [0, 1, 10]
    np.testing.assert_array_equal(again.vote_counts(), ds.vote_counts())


def test_answers_json_keeps_unanswered_tasks_visible():
    ds = CrowdData.from_answers_json({"0": {"1": 0}, "1": {}}, n_classes=2)
    assert ds.n_tasks == 2
    with pytest.raises(ValueError, match="no answer"):
        ds.require_all_tasks_answered()


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"task": [0, 0], "worker": [1, 1], "label": [0, 1]}), "duplicated"),
    (pd.DataFrame({"task": [], "worker": [], "label": []}), "empty"),
    (pd.DataFrame({"task": [0], "worker": [1]}), "lacks column"),
    (pd.DataFrame({"task": [0, None], "worker": [1, 2], "label": [0, 1]}), "missing values"),
])
def test_bad_frames_are_refused(frame, message):
    with pytest.raises(ValueError, match=message):
        CrowdData.from_dataframe(frame)


def test_unknown_label_named():
    with pytest.raises(ValueError, match="unknown label.*'fish'"):
        CrowdData.from_dataframe(small_frame().assign(label=["dog", "cat", "fish", "bird"]), class_names=["bird", "cat", "dog"])
    with pytest.raises(ValueError, match="unknown label"):
        CrowdData(np.array([0, 1]), np.array([0, 0]), np.array([0, 3]), 2, 1, 3)


def test_codes_out_of_range_and_wrong_types():
    with pytest.raises(ValueError, match="worker id out of range"):
        CrowdData(np.array([0, 1]), np.array([0, 2]), np.array([0, 1]), 2, 2, 2)
    with pytest.raises(TypeError, match="integer codes"):
        CrowdData(np.array(["a", "b"]), np.array([0, 1]), np.array([0, 1]), 2, 2, 2)
    with pytest.raises(TypeError, match="cannot read"):
        as_crowd_data([1, 2, 3])
    with pytest.raises(ValueError, match="gold"):
        CrowdData(np.array([0]), np.array([0]), np.array([0]), 1, 1, 2, gold=np.array([5]))


def test_subsets_keep_codes_consistent():
    ds = CrowdData.from_dataframe(pd.DataFrame({"task": [0, 0, 1, 2, 2], "worker": [0, 1, 1, 0, 1], "label": [1, 1, 0, 2, 2]}),
                                  gold=np.array([1, 0, 2]))
    sub = ds.subset_tasks(np.array([2, 0]))
    assert list(sub.task_ids) == [2, 0] and list(sub.gold) == [2, 1]
    np.testing.assert_array_equal(sub.vote_counts(), ds.vote_counts()[[2, 0]])
    half = ds.subset_answers(ds.worker == 0)
    assert half.n_answers == 2 and half.n_tasks == ds.n_tasks
