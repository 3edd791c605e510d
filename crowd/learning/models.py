"""Classifiers of the WAUM experiments (Lefort et al. TMLR 2024, section 4).

- :class:`MLP`: the (30, 20, 20) ReLU network of the simulations.
- :class:`RodriguesHead`: Rodrigues & Pereira (2018)'s head on precomputed VGG16 features
  (LabelMe): Flatten -> Dense(128) ReLU -> Dropout(0.5) -> Dense(K).
- :class:`MusicMLP`: the same head on the 124 Marsyas features of Music (the paper used a
  VGG-16 on spectrograms, which are not available here).
- :func:`resnet18`, :func:`resnet34`, :func:`vgg16_bn`: torchvision networks, adapted to 32x32
  inputs (CIFAR-10H) by default; never download weights, load them from a file when given.

All return raw logits; softmax is applied by the losses and metrics.
"""

from __future__ import annotations

from os import PathLike
from typing import Sequence

import torch
from torch import nn

__all__ = ["MLP", "RodriguesHead", "MusicMLP", "resnet18", "resnet34", "vgg16_bn", "build_model"]


class MLP(nn.Module):
    """Fully connected ReLU network; the simulations of the paper use ``hidden=(30, 20, 20)``."""

    def __init__(self, in_features: int, n_classes: int, hidden: Sequence[int] = (30, 20, 20), dropout: float = 0.0):
        super().__init__()
        if in_features < 1 or n_classes < 2:
            raise ValueError(f"need in_features >= 1 and n_classes >= 2, got {in_features}, {n_classes}")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(nn.Flatten(), *layers)
        self.in_features, self.n_classes = in_features, n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RodriguesHead(nn.Module):
    """Flatten -> Dense(hidden=128) ReLU -> Dropout(0.5) -> Dense(K) (Rodrigues & Pereira 2018, LabelMe).

    ``in_features`` is the flattened size of the VGG16 features (512 pooled, 8192 = 4x4x512 raw).
    """

    def __init__(self, in_features: int, n_classes: int, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
        )
        self.in_features, self.n_classes = in_features, n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MusicMLP(RodriguesHead):
    """Rodrigues' head on the 124 Marsyas features of Music (substitute for the paper's spectrogram VGG-16).

    Inputs should be standardised (zero mean, unit variance per feature, statistics of the train set).
    """

    def __init__(self, in_features: int = 124, n_classes: int = 10, hidden: int = 128, dropout: float = 0.5):
        super().__init__(in_features, n_classes, hidden, dropout)


def _load_weights(model: nn.Module, weights: str | PathLike | dict | None, strict: bool = False) -> nn.Module:
    """Load a state dict from a path or a dict; the classifier layer is skipped when its shape differs."""
    if weights is None:
        return model
    state = torch.load(weights, map_location="cpu", weights_only=True) if not isinstance(weights, dict) else weights
    own = model.state_dict()
    kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = set(own) - set(kept)
    if strict and missing:
        raise ValueError(f"weights lack {len(missing)} tensors of the model, e.g. {sorted(missing)[:3]}")
    model.load_state_dict(kept, strict=False)
    return model


def _resnet(depth: int, n_classes: int, small_input: bool, weights) -> nn.Module:
    from torchvision import models as tvm

    builder = {18: tvm.resnet18, 34: tvm.resnet34}[depth]
    model = builder(weights=None, num_classes=n_classes)
    if small_input:
        # CIFAR variant (He et al. 2016, section 4.2): a 3x3 stride-1 stem and no max-pool keep 32x32 maps
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return _load_weights(model, weights)


def resnet18(n_classes: int = 10, small_input: bool = True, weights: str | PathLike | dict | None = None) -> nn.Module:
    """torchvision ResNet-18; ``small_input`` adapts the stem to 32x32 images; ``weights`` = optional state dict file."""
    return _resnet(18, n_classes, small_input, weights)


def resnet34(n_classes: int = 10, small_input: bool = True, weights: str | PathLike | dict | None = None) -> nn.Module:
    """torchvision ResNet-34 (see :func:`resnet18`)."""
    return _resnet(34, n_classes, small_input, weights)


def vgg16_bn(n_classes: int = 10, small_input: bool = True, weights: str | PathLike | dict | None = None) -> nn.Module:
    """torchvision VGG-16 with batch norm.

    With ``small_input`` (32x32 images the 5 max-pools reduce to 1x1x512) the 7x7 adaptive pooling
    and the 25088-4096-4096 classifier are replaced by a global pool and Linear(512, 512)-ReLU-
    Dropout-Linear(512, K), the usual CIFAR VGG head.
    """
    from torchvision import models as tvm

    model = tvm.vgg16_bn(weights=None, num_classes=n_classes)
    if small_input:
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(512, n_classes))
    return _load_weights(model, weights)


def build_model(name: str, n_classes: int, in_features: int | None = None, **kwargs) -> nn.Module:
    """Factory by name: ``mlp``, ``rodrigues``, ``music_mlp``, ``resnet18``, ``resnet34``, ``vgg16_bn``."""
    name = name.lower()
    if name in {"mlp", "rodrigues", "rodrigues_head", "music_mlp"} and in_features is None:
        raise ValueError(f"model {name!r} needs in_features")
    factories = {
        "mlp": lambda: MLP(in_features, n_classes, **kwargs),
        "rodrigues": lambda: RodriguesHead(in_features, n_classes, **kwargs),
        "rodrigues_head": lambda: RodriguesHead(in_features, n_classes, **kwargs),
        "music_mlp": lambda: MusicMLP(in_features, n_classes, **kwargs),
        "resnet18": lambda: resnet18(n_classes, **kwargs),
        "resnet34": lambda: resnet34(n_classes, **kwargs),
        "vgg16_bn": lambda: vgg16_bn(n_classes, **kwargs),
    }
    if name not in factories:
        raise ValueError(f"unknown model {name!r}; choose among {sorted(factories)}")
    return factories[name]()


# --------------------------------------------------------------------------------------------
# Networks of the CMM experiments (Mena & Nanculef 2019; read from FMena14/MixtureofGroups,
# code/learning_models.py: MLP_Keras(16, 1, drop=0.2) and default_CNN). LabelMe uses
# RodriguesHead above (MLP_Keras(128, 1, drop=0.5) on the pooled VGG16 features is the same net).
class CMMMLP(MLP):
    """Setup (1) of CMM: Flatten -> Dense(16) ReLU -> Dropout(0.2) -> Dense(K) (inputs standardised, batch 64)."""

    def __init__(self, in_features: int = 2, n_classes: int = 3, hidden: int = 16, dropout: float = 0.2):
        super().__init__(in_features, n_classes, hidden=(hidden,), dropout=dropout)


class CifarCNN(nn.Module):
    """Setup (2) of CMM (the authors' ``default_CNN``), for 32x32 RGB inputs scaled to [0, 1]:

    3 blocks [Conv3x3-ReLU-BN] x 2 (32, 64, 128 filters) + MaxPool(2) + Dropout(0.25), then
    Flatten -> Dense(128) ReLU -> BN -> Dropout(0.25) -> Dense(K). Batch norm uses Keras'
    defaults (momentum 0.99 i.e. torch momentum 0.01, eps 1e-3), the order is Keras' (ReLU before BN).
    """

    def __init__(self, n_classes: int = 10, in_channels: int = 3, image_size: int = 32, dropout: float = 0.25):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 (three 2x2 poolings), got {image_size}")
        layers: list[nn.Module] = []
        width = in_channels
        for filters in (32, 64, 128):
            for _ in range(2):
                layers += [nn.Conv2d(width, filters, 3, padding=1), nn.ReLU(),
                           nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01)]
                width = filters
            layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
        side = image_size // 8
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * side * side, 128), nn.ReLU(), nn.BatchNorm1d(128, eps=1e-3, momentum=0.01),
            nn.Dropout(dropout), nn.Linear(128, n_classes),
        )
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
