"""MajorityVote, NaiveSoft, WeightedMajorityVote: against crowd-kit, constructed ties, simulated crowds."""

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import MajorityVote as CkMajorityVote
from crowdkit.aggregation.utils import get_accuracy

from crowd.data import datasets
from crowd.aggregation.majority_vote import MajorityVote, NaiveSoft, WeightedMajorityVote, break_ties, string_order
from crowd.data import CrowdData
from crowd.simulation.confusion import simulate_crowd


def _tied_crowd(n_tasks: int, labels=(1, 3), n_classes: int = 5) -> CrowdData:
    """Every task gets one vote for each of ``labels`` (an exact tie), from distinct workers."""
    m = len(labels)
    task = np.repeat(np.arange(n_tasks), m)
    worker = np.tile(np.arange(m), n_tasks)
    label = np.tile(np.asarray(labels), n_tasks)
    return CrowdData(task, worker, label, n_tasks, m, n_classes)


@pytest.fixture(scope="module", params=["labelme", "music", "text"])
def real(request):
    kwargs = {"features": False} if request.param == "text" else {"features": None} if request.param == "labelme" else {}
    return datasets.load(request.param, **kwargs)


def test_agrees_with_crowdkit_on_every_untied_task_of_real_data(real):
    ours = MajorityVote(tie_break="random", seed=0).fit(real)
    theirs = CkMajorityVote().fit_predict(real.answers).reindex(real.task_ids)
    # labels in = labels out: both return the dataset's own labels (genre names on Music)
    assert theirs.dtype == ours.predict().dtype
    theirs = real.classes.get_indexer(theirs)
    untied = ~ours.tied_
    assert untied.sum() > 0.7 * real.n_tasks
    np.testing.assert_array_equal(ours.labels_[untied], theirs[untied])
    # on tied tasks crowd-kit returns one of the tied labels (the first column of its pivot table)
    counts = real.vote_counts()
    assert np.all(counts[np.arange(real.n_tasks), theirs] == counts.max(axis=1))


def test_tied_task_counts_on_real_data(real):
    expected = {"labelme": 129, "music": 188, "text": 92}[real.name]
    assert MajorityVote().fit(real).tied_.sum() == expected


def test_smallest_and_string_and_priority_tie_breaks():
    data = _tied_crowd(4, labels=(3, 1, 4))
    assert MajorityVote(tie_break="smallest").fit(data).labels_.tolist() == [1, 1, 1, 1]
    assert MajorityVote(tie_break=[4, 3, 2, 1, 0]).fit(data).labels_.tolist() == [4, 4, 4, 4]
    # 13 classes: as strings "10" < "2", so a 2-vs-10 tie goes to 10 under "string"
    d13 = _tied_crowd(3, labels=(2, 10), n_classes=13)
    assert MajorityVote(tie_break="smallest").fit(d13).labels_.tolist() == [2, 2, 2]
    assert MajorityVote(tie_break="string").fit(d13).labels_.tolist() == [10, 10, 10]
    assert string_order(13)[:5] == [0, 1, 10, 11, 12]


def test_untied_tasks_ignore_the_tie_break():
    data = simulate_crowd(400, 15, 4, 5, seed=3)  # 5 votes: ties are possible but not everywhere
    labels = {tb: MajorityVote(tie_break=tb, seed=1).fit(data) for tb in ("random", "smallest", "string")}
    untied = ~labels["random"].tied_
    for fitted in labels.values():
        np.testing.assert_array_equal(fitted.labels_[untied], labels["random"].labels_[untied])


def test_random_tie_break_is_seeded_and_uniform():
    data = _tied_crowd(6000, labels=(0, 2, 4), n_classes=5)
    a = MajorityVote(tie_break="random", seed=11).fit(data).labels_
    b = MajorityVote(tie_break="random", seed=11).fit(data).labels_
    c = MajorityVote(tie_break="random", seed=12).fit(data).labels_
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.5  # another seed: about 2/3 of the draws differ
    shares = np.bincount(a, minlength=5) / len(a)
    assert shares[[1, 3]].sum() == 0  # only tied labels are ever chosen
    # 6000 draws: each share within 4 standard deviations (sd ~ 0.006) of 1/3
    np.testing.assert_allclose(shares[[0, 2, 4]], 1 / 3, atol=0.025)


def test_bad_tie_break_rules_are_named():
    data = _tied_crowd(2)
    with pytest.raises(ValueError, match="unknown tie_break"):
        MajorityVote(tie_break="largest").fit(data)
    with pytest.raises(ValueError, match="exactly once"):
        MajorityVote(tie_break=[0, 1, 2]).fit(data)


def test_mv_probas_are_one_hot_of_labels():
    data = simulate_crowd(200, 10, 3, (1, 4), seed=0)
    mv = MajorityVote(seed=0).fit(data)
    np.testing.assert_array_equal(mv.probas_.sum(axis=1), 1.0)
    np.testing.assert_array_equal(mv.probas_.argmax(axis=1), mv.labels_)
    assert mv.fit_predict(data.answers).index.name == "task"


def test_naive_soft_is_vote_shares():
    data = simulate_crowd(300, 12, 4, (1, 6), seed=5)
    ns = NaiveSoft().fit(data)
    np.testing.assert_allclose(ns.probas_.sum(axis=1), 1.0)
    # independent computation with pandas: value counts per task over the number of answers
    df = data.answers
    shares = pd.crosstab(df["task"], df["label"], normalize="index").reindex(columns=range(4), fill_value=0.0)
    np.testing.assert_allclose(ns.probas_, shares.loc[data.task_ids].to_numpy())
    counts = data.vote_counts()
    np.testing.assert_allclose(ns.probas_ * data.answers_per_task()[:, None], counts)


def test_tasks_without_answers_and_unknown_labels_are_rejected():
    with pytest.raises(ValueError, match="no answer"):
        MajorityVote().fit(CrowdData([0, 0], [0, 1], [1, 1], 3, 2, 2))
    with pytest.raises(ValueError, match="unknown label"):
        NaiveSoft().fit(CrowdData([0, 1], [0, 1], [1, 5], 2, 2, 3))


def test_break_ties_on_float_scores():
    scores = np.array([[0.3, 0.1 + 0.2, 0.0], [1.0, 2.0, 2.0]])  # 0.1 + 0.2 != 0.3 in floating point
    labels, tied = break_ties(scores, "smallest")
    assert labels.tolist() == [0, 1] and tied.tolist() == [True, True]


# ----------------------------------------------------------------- weighted MV
def test_wmv_matches_crowdkit_weighted_vote(real):
    # Wawa's recipe done with crowd-kit's own pieces (crowd-kit 1.4.2's Wawa.predict trips on
    # scikit-learn >= 1.6's check_is_fitted): skills = agreement with crowd-kit's MV, then its
    # MajorityVote weighted by those skills
    df = real.answers
    skills = get_accuracy(df, true_labels=CkMajorityVote().fit_predict(df), by="worker")
    theirs = real.classes.get_indexer(CkMajorityVote().fit_predict(df, skills=skills).reindex(real.task_ids))
    ours = WeightedMajorityVote(weights=skills).fit(real)
    untied = ~ours.tied_
    assert untied.mean() > 0.8
    np.testing.assert_array_equal(ours.labels_[untied], theirs[untied])


def test_wmv_default_weights_are_agreement_with_mv(real):
    ours = WeightedMajorityVote(tie_break="smallest").fit(real)
    mv = MajorityVote(tie_break="smallest").fit(real).predict()
    df = real.answers
    agreement = (df["label"].to_numpy() == mv.loc[df["task"]].to_numpy()).astype(float)
    expected = pd.Series(agreement).groupby(df["worker"].to_numpy()).mean().reindex(real.worker_ids)
    np.testing.assert_allclose(ours.weights_, expected.to_numpy())


def test_wmv_equal_weights_is_mv_and_zero_weight_drops_a_worker():
    data = simulate_crowd(500, 20, 4, (2, 6), spammer_share=0.2, seed=4)
    ones = WeightedMajorityVote(weights=np.ones(20), tie_break="smallest").fit(data)
    np.testing.assert_array_equal(ones.labels_, MajorityVote(tie_break="smallest").fit(data).labels_)
    np.testing.assert_allclose(ones.probas_, NaiveSoft().fit(data).probas_)
    w = np.ones(20)
    w[7] = 0.0
    dropped = WeightedMajorityVote(weights=w, tie_break="smallest").fit(data)
    keep = data.worker != 7
    covered = np.bincount(data.task[keep], minlength=data.n_tasks) > 0
    sub = data.subset_tasks(np.flatnonzero(covered)).subset_answers(data.subset_tasks(np.flatnonzero(covered)).worker != 7)
    np.testing.assert_array_equal(dropped.labels_[covered], MajorityVote(tie_break="smallest").fit(sub).labels_)


def test_wmv_beats_mv_when_spammers_abound():
    data = simulate_crowd(2000, 30, 4, 5, spammer_share=0.5, seed=9)
    mv = MajorityVote(seed=0).fit(data).accuracy()
    for weights in ("mv_accuracy", "log_odds"):
        wmv = WeightedMajorityVote(weights=weights, seed=0).fit(data)
        assert wmv.accuracy() > mv + 0.01, weights
    true_acc = np.diagonal(data.meta["confusions"], axis1=1, axis2=2).mean(axis=1)
    oracle = WeightedMajorityVote(weights=np.log(3 * true_acc / (1 - true_acc)).clip(0), seed=0).fit(data)
    assert oracle.accuracy() > mv + 0.02


def test_wmv_weights_by_worker_id_and_errors():
    df = pd.DataFrame({"task": ["a", "a", "b", "b", "b"], "worker": ["u", "v", "u", "v", "w"], "label": [0, 1, 1, 0, 0]})
    fitted = WeightedMajorityVote(weights=pd.Series({"w": 1.0, "v": 3.0, "u": 1.0, "extra": 9.0})).fit(df)
    assert fitted.fit_predict(df).to_dict() == {"a": 1, "b": 0}
    np.testing.assert_allclose(fitted.probas_, [[0.25, 0.75], [0.8, 0.2]])
    with pytest.raises(ValueError, match="lack 1 worker"):
        WeightedMajorityVote(weights=pd.Series({"u": 1.0, "v": 1.0})).fit(df)
    with pytest.raises(ValueError, match="one value per worker"):
        WeightedMajorityVote(weights=[1.0, 2.0]).fit(df)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedMajorityVote(weights=[1.0, -2.0, 1.0]).fit(df)
    with pytest.raises(ValueError, match="finite"):
        WeightedMajorityVote(weights=[1.0, np.nan, 1.0]).fit(df)
    with pytest.raises(ValueError, match="unknown weights"):
        WeightedMajorityVote(weights="trace").fit(df)
