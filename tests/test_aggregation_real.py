"""MMLC Table 1 (Han et al., AAAI 2025) on the real data: MV and FDS truth-inference accuracy.

MMLC's MV gives a tie to the smallest label, comparing labels as strings read from a csv,
so on the 13-class Text data "10" < "2" (``tie_break="string"``). Its numbers are
truncated, not rounded: 750/977 = 76.765 -> 76.76, 1137/1594 = 71.330 -> 71.33,
500/700 = 71.428 -> 71.42.
"""

import numpy as np
import pandas as pd
import pytest

from crowd.data import datasets
from crowd.aggregation.fast_ds import FastDawidSkene
from crowd.aggregation.majority_vote import MajorityVote
from crowd.experiments.settings.mmlc import aggregator_preset
from crowd.reporting.report import compare, paper_table


@pytest.fixture(scope="module")
def real():
    return {"labelme": datasets.load("labelme", features=None), "music": datasets.load("music"),
            "text": datasets.load("text", features=False)}


def _correct(fitted, data) -> int:
    return int((fitted.labels_ == data.gold).sum())


def test_mv_exact_counts_with_mmlc_tie_breaking(real):
    counts = {name: _correct(MajorityVote(tie_break="smallest").fit(d), d) for name, d in real.items()}
    assert counts == {"labelme": 769, "music": 498, "text": 1138}
    # string comparison of labels (MMLC's code) moves one Text tie: 1137/1594 = 71.33%, the paper's value
    # to its two decimals
    assert _correct(MajorityVote(tie_break="string").fit(real["text"]), real["text"]) == 1137
    paper = paper_table("mmlc_table1").set_index(["dataset", "method"])["value"]
    assert abs(100 * 1137 / 1594 - paper[("text", "MV")]) < 0.005
    # 10 classes or fewer: string order is numeric order
    for name in ("labelme", "music"):
        np.testing.assert_array_equal(MajorityVote(tie_break="string").fit(real[name]).labels_,
                                      MajorityVote(tie_break="smallest").fit(real[name]).labels_)


def test_mv_and_fds_within_tolerance_of_table1(real):
    rows = []
    for name, d in real.items():
        mv = MajorityVote(**aggregator_preset("MV")).fit(d)
        rows.append({"dataset": name, "method": "MV", "metric": "accuracy", "value": 100 * mv.accuracy()})
        # FDS breaks ties at random (initial MV and every C-step): average 10 seeds
        accs = [100 * FastDawidSkene(seed=s).fit(d).accuracy() for s in range(10)]
        rows.append({"dataset": name, "method": "FDS", "metric": "accuracy", "value": float(np.mean(accs)),
                     "std": float(np.std(accs)), "n_runs": 10})
    table = compare(pd.DataFrame(rows), "mmlc_table1", methods=["MV", "FDS"])
    assert len(table) == 6
    mv = table[table["method"] == "MV"]
    assert (mv["difference"].abs() <= 1.0).all(), mv
    fds = table[table["method"] == "FDS"]
    assert (fds["difference"].abs() <= 1.5).all(), fds
    assert (table["status"] == "within").all()


def test_music_mv_cannot_reach_78_percent(real):
    """The data README's "MV accuracy ~0.783" for Music is not majority vote.

    188 of the 700 songs are tied. Ties to the smallest label give 498 right (71.14%),
    uniform random ties 70.42% in expectation; only an oracle that picks the gold label
    whenever it is among the tied ones reaches 569 (81.29%). MMLC's 71.42% (500/700)
    is majority vote with ties to the smallest label code (their integer coding of the
    genres is not published; 500 is reachable with a different class order).
    """
    d = real["music"]
    counts = d.vote_counts()
    top = counts.max(axis=1)
    tied = (counts == top[:, None]).sum(axis=1)
    gold_on_top = counts[np.arange(d.n_tasks), d.gold] == top
    assert (tied > 1).sum() == 188
    assert gold_on_top.sum() == 569
    assert round(float(np.mean(gold_on_top / tied)), 4) == 0.7042
    # many random tie-breaks: all far below 78%
    accs = [MajorityVote(tie_break="random", seed=s).fit(d).accuracy() for s in range(20)]
    assert max(accs) < 0.74
