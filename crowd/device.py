"""The one device policy of the package.

Every estimator and training function takes ``device="auto"`` by default, resolved here once:

- ``"auto"``: ``$CROWD_DEVICE`` when set (``cpu``, ``cuda``, ``cuda:1``...), else CUDA when available, else CPU;
- anything else: that device (an error if CUDA is asked for and absent).

What runs where: networks train on the resolved device. Feature-blind aggregators (DS family, GLAD) run their
numpy path when the resolved device is the CPU (numpy is faster than torch there) and their torch path on CUDA.
``device="cpu"`` therefore means numpy for aggregators; ``device="torch-cpu"`` forces the torch path on the CPU
(used by the tests that compare both paths).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["resolve_device", "aggregator_device"]

DeviceLike = Any  # str | torch.device | None


def resolve_device(device: DeviceLike = "auto") -> "torch.device":  # noqa: F821
    """The torch device meant by ``device`` (see the module docstring). ``None`` means ``"auto"``."""
    import torch

    if isinstance(device, torch.device):
        dev = device
    else:
        name = "auto" if device is None else str(device)
        if name == "torch-cpu":
            name = "cpu"
        if name == "auto":
            name = os.environ.get("CROWD_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(name)
        except RuntimeError as err:
            raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {dev} requested but CUDA is not available (set CROWD_DEVICE=cpu or pass device='cpu')")
    return dev


def aggregator_device(device: DeviceLike = "auto") -> "torch.device | None":  # noqa: F821
    """For feature-blind aggregators: ``None`` (the numpy path) when the resolved device is the CPU,
    else the torch device. ``"torch-cpu"`` (or a ``torch.device('cpu')`` object) forces torch on the CPU."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "torch-cpu":
        return torch.device("cpu")
    dev = resolve_device(device)
    return None if dev.type == "cpu" else dev
