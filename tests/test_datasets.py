"""The real datasets: exact counts, the registry's checks, and the CIFAR-10H raw-file path."""

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from crowd.data import datasets
from crowd.data import registry


def test_labelme_counts():
    ds = datasets.load("labelme", features="avg")
    assert (ds.n_tasks, ds.n_workers, ds.n_answers, ds.n_classes) == (1000, 59, 2547, 8)
    assert ds.answers_per_task().min() == 1 and ds.answers_per_task().max() == 3
    assert ds.features.shape == (1000, 512) and len(ds.splits["valid"]) == 500 and len(ds.splits["test"]) == 1188
    assert ds.splits["test"].features.shape == (1188, 512)
    assert "512-d" in ds.meta["substitutes"]
    assert ds.truth.shape == (1000,) and ds.class_names[0] == "highway"


def test_labelme_without_features_is_the_same_crowd():
    bare, pooled = datasets.load("labelme", features=None), datasets.load("labelme", features="max")
    assert bare.features is None and bare.splits["test"].features is None and bare.meta["substitutes"] == ""
    assert pooled.features.shape == (1000, 512) and "max-pooled" in pooled.meta["features"]
    assert bare.answers.equals(pooled.answers) and (bare.gold == pooled.gold).all()
    with pytest.raises(ValueError, match="unknown LabelMe features"):
        datasets.load("labelme", features="vgg19")
    with pytest.raises(ValueError, match="resize"):
        datasets.load("labelme", features="avg", resize="bilinear")


def test_labelme_8192_features_need_the_original_archive(tmp_path):
    with pytest.raises(registry.DataFileError, match="deep_LabelMe"):
        datasets.load("labelme", features="vgg16_8192", original_dir=tmp_path)


def test_labelme_raw_image_matches_its_row():
    img = datasets.labelme_image(0, "train")
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    ds = datasets.load("labelme", features=None)
    assert ds.meta["image_files"]["train"][0].startswith(datasets.LABELME_CLASSES[ds.gold[0]])


def test_music_counts():
    ds = datasets.load("music")
    assert (ds.n_tasks, ds.n_workers, ds.n_answers, ds.n_classes) == (700, 44, 2945, 10)
    assert len(ds.splits["test"]) == 300 and ds.features.shape == (700, 124)
    assert (ds.gold >= 0).all()


def test_text_counts_without_features():
    ds = datasets.load("text", features=False)
    assert (ds.n_tasks, ds.n_workers, ds.n_answers, ds.n_classes) == (1594, 154, 14229, 13)
    assert ds.class_names[0] == "per:place_of_death"
    assert len(ds.meta["sentences"]) == 1594


def test_cifar10h_offline_slice_and_counts(monkeypatch):
    ds = datasets.load("cifar10h", raw=False)
    assert (ds.n_tasks, ds.n_workers, ds.n_answers, ds.n_classes) == (500, 2571, 25752, 10)
    assert ds.task_ids.min() == 9500 and ds.task_ids.max() == 9999
    assert ds.meta["vote_counts_all"].sum() == 511000
    assert "500" in ds.meta["substitutes"]
    assert ds.features.shape == (500, 32, 32, 3)
    # the slice's own votes are those of the counts file for the same images (minus nothing: both drop attention checks)
    counts = ds.meta["vote_counts_all"][ds.task_ids.astype(int)]
    assert (ds.vote_counts().argmax(1) == counts.argmax(1)).mean() > 0.97


def test_cifar10h_raw_zip_path(tmp_path, monkeypatch):
    """A raw-format zip built from the real valid-slice answers loads through the raw-file path."""
    answers = datasets.load("cifar10h", raw=False, images=False).answers
    table = pd.DataFrame({"annotator_id": answers["worker"], "chosen_label": answers["label"],
                          "true_label": 0, "cifar10_test_test_idx": answers["task"], "is_attn_check": 0,
                          "reaction_time": 1.0})
    attn = pd.DataFrame({"annotator_id": [0], "chosen_label": [3], "true_label": [3], "cifar10_test_test_idx": [-99999],
                         "is_attn_check": [1], "reaction_time": [1.0]})
    buf = io.StringIO()
    pd.concat([table, attn]).to_csv(buf, index=False)
    zpath = tmp_path / "cifar10h-raw.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("cifar10h-raw.csv", buf.getvalue())
    df = datasets.read_cifar10h_raw(zpath)
    assert len(df) == 25752 and df["task"].min() == 9500


def test_missing_file_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("CROWD_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("CROWD_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(registry.DataFileError) as err:
        registry.fetch("fmenat+MixtureofGroups/LabelMe/answers.txt", download=False)
    msg = str(err.value)
    assert "answers.txt" in msg and str(tmp_path / "mirror") in msg and "raw.githubusercontent.com" in msg
    with pytest.raises(registry.DataFileError, match="cifar10h-raw.zip"):
        registry.fetch(datasets.CIFAR10H_RAW, download=False)


def test_corrupt_file_is_refused(tmp_path, monkeypatch):
    path = "fmenat+MixtureofGroups/LabelMe/LabelMe_Z_valid.txt"
    good = registry.fetch(path).read_bytes()
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    flipped = b"1" if good[:1] != b"1" else b"2"
    target.write_bytes(flipped + good[1:])  # same size, different content
    monkeypatch.setenv("CROWD_DATA_DIR", str(tmp_path))
    with pytest.raises(registry.DataFileError, match="sha256"):
        registry.fetch(path, download=False)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.load("imagenet")
    with pytest.raises(KeyError, match="not a registered"):
        registry.fetch("nope/file.txt")


def test_registry_matches_every_file_in_the_mirror():
    mirror = registry.mirror_dir()
    manifest = pd.read_csv(mirror / "MANIFEST.tsv", sep="\t")
    records = registry.registry()
    assert set(manifest["file"]) <= set(records)
    for row in manifest.itertuples():
        assert records[row.file].sha256 == row.sha256 and records[row.file].url == row.url


@pytest.mark.parametrize("name, classes, path", [
    ("labelme", datasets.LABELME_CLASSES, "tanglef+computo_2023/datasets/labelme/answers.json"),
    ("music", datasets.MUSIC_CLASSES, "tanglef+computo_2023/datasets/music/answers.json"),
])
def test_peerannot_answers_json_is_the_same_crowd(name, classes, path):
    """peerannot's copy (alphabetical classes, its own task order) holds the same answers as the loader's."""
    from crowd.data import CrowdData

    ours = datasets.load(name, features=None) if name == "labelme" else datasets.load(name)
    theirs = CrowdData.from_answers_json(registry.fetch(path), n_classes=len(classes))
    to_alpha = np.argsort(np.argsort(classes))  # our class code -> alphabetical code
    assert (theirs.n_tasks, theirs.n_workers, theirs.n_answers) == (ours.n_tasks, ours.n_workers, ours.n_answers)
    # same multiset of per-task vote vectors
    ours_votes = sorted(map(tuple, ours.vote_counts()[:, np.argsort(to_alpha)].tolist()))
    theirs_votes = sorted(map(tuple, theirs.vote_counts().tolist()))
    assert ours_votes == theirs_votes
