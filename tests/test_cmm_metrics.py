"""I-JS, G-JS, H and I_sim (Mena & Nanculef 2019, section 5 and Table 4) on hand-computed examples."""

import math

import numpy as np
import pytest

from crowd import metrics

IDENTITY2 = np.eye(2)
UNIFORM2 = np.full((2, 2), 0.5)
SWAP2 = np.array([[0.0, 1.0], [1.0, 0.0]])

# (tolerances 1e-5: the 1e-7 clip moves a JS by ~1e-6)
# rows p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4);
# KL(p||m) = log2(4/3) = 0.415037, KL(q||m) = 1/2 log2(2/3) + 1/2 log2(2) = 0.207519; JS = their mean
JS_ONEHOT_UNIFORM = 0.5 * (math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5)


def test_js_hand_computed():
    assert JS_ONEHOT_UNIFORM == pytest.approx(0.311278, abs=1e-6)
    assert metrics.confusion_js(IDENTITY2, UNIFORM2) == pytest.approx(JS_ONEHOT_UNIFORM, abs=1e-5)
    assert metrics.confusion_js(UNIFORM2, IDENTITY2) == pytest.approx(JS_ONEHOT_UNIFORM, abs=1e-5)  # symmetric
    # disjoint rows: JS = 1 bit, less the 1e-7 clip
    assert metrics.confusion_js(IDENTITY2, SWAP2) == pytest.approx(1.0, abs=1e-5)
    assert metrics.confusion_js(IDENTITY2, IDENTITY2) == pytest.approx(0.0, abs=1e-12)


def test_js_averages_rows():
    # row 1 equal (JS 0), row 2 one-hot vs uniform: mean = JS / 2
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert metrics.confusion_js(a, b) == pytest.approx(JS_ONEHOT_UNIFORM / 2, abs=1e-5)


def test_individual_and_global_js():
    est = np.stack([IDENTITY2, IDENTITY2, UNIFORM2])
    true = np.stack([IDENTITY2, SWAP2, IDENTITY2])
    assert metrics.individual_js(est, true) == pytest.approx((0 + 1 + JS_ONEHOT_UNIFORM) / 3, abs=1e-5)
    assert metrics.global_js(UNIFORM2, IDENTITY2) == pytest.approx(JS_ONEHOT_UNIFORM, abs=1e-5)
    with pytest.raises(ValueError):
        metrics.individual_js(est, true[:2])
    with pytest.raises(ValueError):
        metrics.global_js(est, true)


def test_global_confusion_hard_and_soft():
    # truth (0, 1); answers: task 0 -> 0, task 0 -> 1, task 1 -> 1
    task, label = np.array([0, 0, 1]), np.array([0, 1, 1])
    g = metrics.global_confusion(np.array([0, 1]), task, label, 2)
    np.testing.assert_allclose(g, [[0.5, 0.5], [0.0, 1.0]])
    # soft truth: task 0 = (1/2, 1/2), task 1 = (0, 1): class 0 row gets (1/2, 1/2) -> (0.5, 0.5);
    # class 1 row: 1/2 * (1, 1) + (0, 1) = (1/2, 3/2) -> (0.25, 0.75)
    soft = metrics.global_confusion(np.array([[0.5, 0.5], [0.0, 1.0]]), task, label)
    np.testing.assert_allclose(soft, [[0.5, 0.5], [0.25, 0.75]])


def test_entropy_and_identity_similarity():
    assert metrics.confusion_entropy(np.full((8, 8), 1 / 8)) == pytest.approx(math.log(8))  # 2.08 of Table 4
    assert metrics.confusion_entropy(np.array([[1.0, 0.0], [0.5, 0.5]])) == pytest.approx(math.log(2) / 2)
    assert metrics.confusion_entropy(np.eye(3)) == pytest.approx(0.0)
    assert metrics.identity_similarity(np.eye(4)) == pytest.approx(1.0)
    assert metrics.identity_similarity(UNIFORM2) == pytest.approx(1 - JS_ONEHOT_UNIFORM, abs=1e-5)
    assert metrics.identity_similarity(SWAP2) == pytest.approx(0.0, abs=1e-5)
    table = metrics.group_matrix_table([0.7, 0.3], np.stack([np.eye(2), UNIFORM2]))
    np.testing.assert_allclose(table["I_sim"], [1.0, 1 - JS_ONEHOT_UNIFORM], atol=1e-5)
    np.testing.assert_allclose(table["H"], [0.0, math.log(2)])
    assert list(table["group"]) == [1, 2]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="square"):
        metrics.confusion_js(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="negative"):
        metrics.confusion_entropy(-np.eye(2))
    with pytest.raises(ValueError, match="differ in size"):
        metrics.confusion_js(np.eye(2), np.eye(3))


def test_cmm_paper_values_compare_on_T_and_setting():
    import pandas as pd

    from crowd.reporting.report import compare, paper_table

    t2 = paper_table("cmm_table2")
    assert len(t2) == 2 * (5 * 6 + 1)
    assert t2.loc[(t2["dataset"] == "setup2_cifar10") & (t2["method"] == "softMV") & (t2["T"] == 500), "value"].item() == 65.90
    assert t2["value"].isna().sum() == 4  # the four dagger cells
    rep = pd.DataFrame({"dataset": ["setup1", "setup1", "setup1", "setup2_cifar10"], "method": ["CMM", "CMM", "Ideal", "DL-EM"],
                        "metric": "accuracy", "T": [100.0, 500.0, float("nan"), 6000.0], "value": [90.0, 95.0, 94.8, 70.0]})
    out = compare(rep, "cmm_table2").set_index(["dataset", "method", "T"])
    assert out.loc[("setup1", "CMM", 100.0), "status"] == "within"  # 90.53 vs 90.0
    assert out.loc[("setup1", "CMM", 500.0), "status"] == "outside"  # 91.07 vs 95.0
    assert out.loc[("setup1", "CMM", 1500.0), "status"] == "not run"
    assert out["status"].loc[("setup1", "Ideal")].item() == "within"
    assert out.loc[("setup2_cifar10", "DL-EM", 6000.0), "status"] == "no paper value"
    t3 = paper_table("cmm_table3")
    assert set(t3["setting"]) == {"individual", "global"}
    assert t3.query("method == 'DL-DS' and setting == 'global' and metric == 'test_accuracy'")["value"].item() == 14.08
    t4 = paper_table("cmm_table4")
    assert t4.query("method == 'CMM group 1' and metric == 'I_sim'")["value"].item() == 0.91
