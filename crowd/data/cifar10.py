"""CIFAR-10 images that are no crowd: the 50000 training images (the WAUM paper's CIFAR-10H test set)
and what the full CIFAR-10H experiment needs. The crowd itself: :func:`crowd.data.datasets.load_cifar10h`."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cifar10_train_set", "cifar10h_full_requirements", "CIFAR10H_VALID_START"]

CIFAR10H_VALID_START = 9500  # CIFAR-10H tasks 9500..9999 are the WAUM paper's validation images


def cifar10_train_set(root: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The 50000 CIFAR-10 training images (uint8, N x 32 x 32 x 3) and labels, through torchvision.

    They exist in no offline mirror: torchvision downloads them (170 MB) into the cache folder.
    """
    from torchvision.datasets import CIFAR10

    from crowd.data.registry import cache_dir

    root = cache_dir() / "torchvision" if root is None else root
    try:
        train_set = CIFAR10(str(root), train=True, download=True)
    except (OSError, RuntimeError) as exc:  # no internet, or a corrupt download: say what is needed
        raise FileNotFoundError(
            "the CIFAR-10 training images (the WAUM paper's CIFAR-10H test set) are not available offline; "
            f"torchvision could not download them into {root}: {exc}") from exc
    return np.asarray(train_set.data), np.asarray(train_set.targets, dtype=np.int64)


def cifar10h_full_requirements() -> dict[str, bool]:
    """What the full CIFAR-10H experiment needs, and whether this machine has it."""
    import torch

    from crowd.data.datasets import CIFAR10H_RAW
    from crowd.data.registry import is_available

    return {"cifar10h-raw.zip (per-annotator answers of all 10000 images)": is_available(CIFAR10H_RAW),
            "a CUDA GPU (ResNet-18, 150 epochs)": torch.cuda.is_available()}
