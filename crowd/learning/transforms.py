"""Input transforms applied before training: feature standardisation and CIFAR image normalisation.
(Batch augmentation during training: :func:`crowd.learning.trainer.random_crop_flip`.)"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["standardize", "CIFAR10_MEAN", "CIFAR10_STD", "cifar10_to_tensor"]

# per-channel statistics of the CIFAR-10 training images
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def standardize(train_x: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Zero mean, unit variance per feature with the TRAINING statistics, applied to every array
    (float32); a constant feature is centred only. Music's Marsyas features."""
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple(((x - mean) / std).astype(np.float32) for x in (train_x, *others))


def cifar10_to_tensor(images: Any) -> "torch.Tensor":  # noqa: F821
    """uint8 CIFAR images (N, 32, 32, 3) -> float (N, 3, 32, 32) standardised per channel."""
    from crowd.learning.trainer import images_to_tensor

    return images_to_tensor(images, CIFAR10_MEAN, CIFAR10_STD)
