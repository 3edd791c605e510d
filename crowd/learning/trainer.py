"""Training utilities shared by the deep-learning experiments.

- :func:`seed_everything` seeds python, numpy and torch (CPU and CUDA) and makes cuDNN deterministic.
- :func:`get_device` chooses the device once: CUDA when present, unless a ``device`` is given.
- :func:`train` is a small, generic loop: SGD (momentum, weight decay) or Adam, MultiStepLR
  milestones (the paper's schedule: lr 0.1, divided by 10 at epochs 50 and 100), hard targets
  (integer labels, cross-entropy) or soft targets (distributions, -sum_k t_k log softmax_k), an
  optional per-step callback that sees the training-mode logits BEFORE the optimiser step (used
  to record the AUM), tqdm progress, and best-on-validation checkpoints kept in a temporary
  folder (never the working directory).
- :func:`predict_proba` evaluates softmax outputs in eval mode, batch by batch.

Inputs stay whole tensors on the device and batches are index slices, so a step costs one
gather; the shuffling comes from a seeded generator, so a run is reproducible on CPU.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "seed_everything", "get_device", "to_tensor", "images_to_tensor", "random_crop_flip",
    "make_optimizer", "soft_cross_entropy", "TrainResult", "train", "predict_proba", "predict_logits",
]

StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices); make cuDNN deterministic (no benchmark autotuning)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def get_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given (``"cpu"``, ``"cuda"``, ``"cuda:1"``...), else ``$CROWD_DEVICE`` when set,
    else CUDA when available, else CPU."""
    if device is None:
        device = os.environ.get("CROWD_DEVICE") or None
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} requested but CUDA is not available")
    return device


def to_tensor(x: Any, dtype: torch.dtype | None = None, device: torch.device | None = None) -> torch.Tensor:
    """numpy / list / tensor -> tensor (float inputs become float32)."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if dtype is None and t.is_floating_point():
        dtype = torch.float32
    return t.to(device=device, dtype=dtype)


def images_to_tensor(images: Any, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> torch.Tensor:
    """uint8 images (N, H, W, C) or (N, C, H, W) -> float32 (N, C, H, W) in [0, 1], then standardised when
    ``mean``/``std`` (per channel) are given."""
    arr = np.asarray(images)
    if arr.ndim != 4:
        raise ValueError(f"images must be 4-d (N, H, W, C) or (N, C, H, W), got shape {arr.shape}")
    t = torch.as_tensor(arr)
    if t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2)
    t = t.contiguous().float()
    if arr.dtype == np.uint8:
        t = t / 255.0
    if mean is not None:
        t = (t - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std if std is not None else [1.0] * len(mean)).view(1, -1, 1, 1)
    return t


def random_crop_flip(padding: int = 4) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Batch augmentation for (B, C, H, W) images: random crop after zero padding and horizontal flip.

    Returns ``transform(batch, generator)``; the randomness comes from the training loop's generator.
    """

    def transform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        padded = F.pad(x, (padding,) * 4)
        dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # (B, H)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])  # (B, W)
        batch_idx = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch_idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        return torch.where(flip[:, None, None, None], out.flip(-1), out)

    return transform


def make_optimizer(params, name: str = "sgd", lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.Optimizer:
    """``sgd`` (momentum, weight decay: the paper's defaults 0.9 and 5e-4) or ``adam`` (weight decay 0 unless given)."""
    name = name.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rows of -sum_k t_k log softmax(z)_k (equals the usual cross-entropy for one-hot t)."""
    loss = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    if weight is not None:
        return (loss * weight).sum() / weight.sum()
    return loss.mean()


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (best validation epoch when asked) and its history."""

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def _as_inputs(inputs: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    if isinstance(inputs, (tuple, list)):
        return tuple(to_tensor(x, device=device) for x in inputs)
    return (to_tensor(inputs, device=device),)


def _prepare_targets(targets: Any, n: int, device: torch.device) -> tuple[torch.Tensor, bool]:
    t = to_tensor(targets, device=device)
    if len(t) != n:
        raise ValueError(f"targets has {len(t)} rows for {n} inputs")
    if t.ndim == 1:
        if t.is_floating_point():
            raise TypeError("1-d targets must be integer class codes; give soft targets as (n, K) probabilities")
        if (t < 0).any():
            raise ValueError("hard targets hold negative label codes")
        return t.long(), False
    if t.ndim == 2:
        sums = t.sum(dim=1)
        if (t < -1e-6).any() or not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            bad = int(((sums - 1).abs() > 1e-4).sum())
            raise ValueError(f"soft targets must be distributions (rows >= 0 summing to 1); {bad} row(s) do not "
                             "(remove pruned tasks rather than giving them all-zero rows)")
        return t.float(), True
    raise ValueError(f"targets must be 1-d labels or 2-d distributions, got shape {tuple(t.shape)}")


def train(
    model: nn.Module,
    inputs: Any,
    targets: Any,
    *,
    epochs: int,
    batch_size: int = 64,
    optimizer: str | Callable[[Any], torch.optim.Optimizer] = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    sample_weight: Any = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    valid: tuple[Any, Any] | None = None,
    keep_best: bool = False,
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    input_index: Any = None,
    step_callback: StepCallback | None = None,
    epoch_callback: Callable[[int, nn.Module], None] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "train",
    checkpoint_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``model`` on (inputs, targets) with mini-batches.

    Parameters
    ----------
    inputs : array or tensor (n, ...), or a tuple of them (the model is called ``model(*batch)``,
        e.g. features and worker codes for a crowd layer).
    targets : int labels (n,) -> cross-entropy; or distributions (n, K) -> soft cross-entropy.
    epochs, batch_size, optimizer ("sgd" | "adam" | callable(params) -> optimizer), lr, momentum,
    weight_decay : the optimisation; ``milestones`` / ``gamma`` give the MultiStepLR schedule
        (the paper: epochs 150, milestones (50, 100), gamma 0.1).
    sample_weight : optional per-row weights of the loss.
    loss_fn : overrides the loss, called ``loss_fn(logits, batch_targets)``.
    valid : (inputs, labels) evaluated after every epoch (accuracy); with ``keep_best`` the weights
        of the best validation epoch are restored at the end (saved in a temporary folder, or in
        ``checkpoint_dir`` when given).
    transform : batch augmentation ``transform(x, generator)`` applied to the first input.
    input_index : optional int array (n_rows,): row r of the training set uses ``inputs[input_index[r]]``
        (stacked crowd data: one row per answer without copying the task features); targets,
        weights and callbacks are indexed by row.
    step_callback : ``callback(epoch, rows, logits)`` at every step, with the rows (int64 tensor)
        of the batch and the detached training-mode logits, BEFORE the optimiser step.
    epoch_callback : ``callback(epoch, model)`` after every epoch.
    seed : seeds the shuffling, the augmentation and dropout.
    device : see :func:`get_device`.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dev = get_device(device)
    xs = _as_inputs(inputs, dev)
    n_inputs = len(xs[0])
    if any(len(x) != n_inputs for x in xs):
        raise ValueError(f"inputs have different numbers of rows: {[len(x) for x in xs]}")
    if input_index is not None:
        input_index = to_tensor(input_index, dtype=torch.long, device=dev)
        if input_index.ndim != 1:
            raise ValueError("input_index must be 1-d")
        if len(input_index) and (int(input_index.min()) < 0 or int(input_index.max()) >= n_inputs):
            raise ValueError(f"input_index out of range [0, {n_inputs})")
        n = len(input_index)
    else:
        n = n_inputs
    if n == 0:
        raise ValueError("no training rows")
    y, soft = _prepare_targets(targets, n, dev)
    weight = None if sample_weight is None else to_tensor(sample_weight, dtype=torch.float32, device=dev)
    if weight is not None and len(weight) != n:
        raise ValueError(f"sample_weight has {len(weight)} rows for {n} inputs")
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer(params) if callable(optimizer) else make_optimizer(params, optimizer, lr, momentum, weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma) if milestones else None

    generator = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))  # dropout masks
    if valid is not None:
        valid_x, valid_y = _as_inputs(valid[0], dev), np.asarray(valid[1])
    tmp = None
    if keep_best:
        if valid is None:
            raise ValueError("keep_best needs a valid=(inputs, labels) split")
        if checkpoint_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="crowd_ckpt_")
            checkpoint_dir = tmp.name
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        best_path = Path(checkpoint_dir) / "best.pt"
    best_acc, best_epoch = -np.inf, None
    rows_hist = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=desc, leave=False)
    try:
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(n, generator=generator)
            total, seen = 0.0, 0
            for start in range(0, n, batch_size):
                rows = order[start:start + batch_size]
                rows_dev = rows.to(dev)
                source_rows = rows_dev if input_index is None else input_index.index_select(0, rows_dev)
                batch = [x.index_select(0, source_rows) for x in xs]
                if transform is not None:
                    batch[0] = transform(batch[0], generator)
                logits = model(*batch)
                target = y.index_select(0, rows_dev)
                if step_callback is not None:
                    step_callback(epoch, rows, logits.detach())
                if loss_fn is not None:
                    loss = loss_fn(logits, target)
                elif soft or weight is not None:
                    t = target if soft else F.one_hot(target, logits.shape[1]).float()
                    loss = soft_cross_entropy(logits, t, None if weight is None else weight.index_select(0, rows_dev))
                else:
                    loss = F.cross_entropy(logits, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(rows)
                seen += len(rows)
            record = {"epoch": epoch + 1, "loss": total / seen, "lr": opt.param_groups[0]["lr"]}
            if scheduler is not None:
                scheduler.step()
            if valid is not None:
                acc = float(np.mean(predict_logits(model, valid_x, device=dev).argmax(1).numpy() == valid_y))
                record["valid_accuracy"] = acc
                if keep_best and acc > best_acc:
                    best_acc, best_epoch = acc, epoch + 1
                    torch.save(model.state_dict(), best_path)
            if epoch_callback is not None:
                epoch_callback(epoch, model)
            rows_hist.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
        if keep_best and best_epoch is not None:
            model.load_state_dict(torch.load(best_path, map_location=dev, weights_only=True))
    finally:
        if bar is not None:
            bar.close()
        if tmp is not None:
            tmp.cleanup()
    return TrainResult(model=model, history=pd.DataFrame(rows_hist), best_epoch=best_epoch, device=dev)


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: Any, batch_size: int = 1024, device: str | torch.device | None = None) -> torch.Tensor:
    """Eval-mode logits on CPU, computed batch by batch."""
    dev = get_device(device) if device is not None else next(model.parameters()).device
    xs = _as_inputs(inputs, dev)
    was_training = model.training
    model.eval()
    out = [model(*[x[s:s + batch_size] for x in xs]).float().cpu() for s in range(0, len(xs[0]), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def predict_proba(model: nn.Module, inputs: Any, batch_size: int = 1024, device: str | torch.device | None = None) -> np.ndarray:
    """Eval-mode softmax probabilities (n, K) as a numpy array."""
    return torch.softmax(predict_logits(model, inputs, batch_size, device), dim=1).numpy()
