"""The one training loop of the package, and the small tools around it.

- :func:`train` trains every network of the package: the classifiers of the aggregate-then-train
  strategies, the AUM/WAUM identification networks (through ``step_callback``), and the deep
  crowd models (CrowdLayer, CoNAL, and the estimators of :mod:`crowd.learning.base`, through
  ``batch_loss``). One loop means one seeding rule, one device rule (:func:`crowd.device.resolve_device`),
  one progress bar, one early-stopping rule and one best-epoch rule for all of them.
- :func:`seed_everything` seeds python, numpy and torch (CPU and CUDA) and makes cuDNN deterministic.
- :func:`predict_proba` / :func:`predict_logits` evaluate a network in eval mode, batch by batch.

Inputs stay whole tensors on the device and batches are index slices, so a step costs one
gather; the shuffling comes from a seeded generator, so a run is reproducible on CPU.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from crowd.device import resolve_device

__all__ = [
    "seed_everything", "to_tensor", "images_to_tensor", "random_crop_flip",
    "make_optimizer", "soft_cross_entropy", "relative_loss_change", "TrainResult", "train",
    "predict_proba", "predict_logits",
]

#: ``callback(epoch, rows, logits)``: rows (int64, CPU) of the batch, detached training-mode logits
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], None]
#: ``batch_loss(model, batch, rows) -> loss`` or ``(loss, weight)``: see :func:`train`
BatchLoss = Callable[[nn.Module, list, torch.Tensor], Union[torch.Tensor, tuple]]


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


def relative_loss_change(previous: float, current: float) -> float:
    """``|L_prev - L_cur| / |L_prev|``: the quantity the ``tol`` rule of :func:`train` compares
    (the CMM authors' ``EarlyStopRelative`` on the epoch loss, patience 1)."""
    return abs(previous - current) / abs(previous) if previous != 0 else float("inf")


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (restored to the best validation epoch with
    ``keep_best``), its history, the best validation epoch (None without ``valid``) and the device."""

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: why training ended before ``epochs``: ``"tol"`` (relative loss change), ``"patience"`` (validation), or None
    stopped: str | None = None


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
    model: nn.Module | Callable[[], nn.Module],
    inputs: Any,
    targets: Any = None,
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
    device: str | torch.device | None = "auto",
    progress: bool = True,
    desc: str = "train",
    checkpoint_dir: str | os.PathLike | None = None,
    batch_loss: BatchLoss | None = None,
    shuffle: Literal["torch", "numpy"] = "torch",
    patience: int | None = None,
    tol: float | None = None,
) -> TrainResult:
    """Train ``model`` with mini-batches over the rows of ``inputs``; the one loop of the package.

    Parameters
    ----------
    model : a network, or a factory ``() -> nn.Module`` called right after torch is seeded (so
        that the initial weights are part of the seeded run).
    inputs : array or tensor (n, ...), or a tuple of them (the model is called ``model(*batch)``,
        e.g. features and worker codes).
    targets : int labels (n,) -> cross-entropy; or distributions (n, K) -> soft cross-entropy.
        Not given when ``batch_loss`` computes the loss.
    epochs, batch_size, optimizer ("sgd" | "adam" | callable(params) -> optimizer, e.g. one kept
        across calls by an EM learner), lr, momentum, weight_decay : the optimisation;
        ``milestones`` / ``gamma`` give the MultiStepLR schedule (the WAUM paper: epochs 150,
        milestones (50, 100), gamma 0.1).
    sample_weight : optional per-row weights of the loss: ``sum_b w_b CE_b / sum_b w_b`` per batch.
    loss_fn : overrides the loss, called ``loss_fn(logits, batch_targets)``.
    batch_loss : ``batch_loss(model, batch, rows)`` computes the loss of a batch itself, for models
        whose loss is not a function of per-row logits and targets (crowd models: the rows are
        tasks, the loss comes from the answers of those tasks). ``batch`` is the list of input
        tensors of the rows (the first one augmented by ``transform``), ``rows`` the int64 CPU
        tensor of the row indices. Returns the loss, or ``(loss, weight)`` where ``weight``
        (e.g. the number of answers in the batch) weighs the batch in the epoch's mean loss
        (default: the number of rows). Excludes ``targets``, ``sample_weight``, ``loss_fn`` and
        ``step_callback``.
    valid : (inputs, labels) evaluated after every epoch: accuracy of ``model(*inputs)`` (a crowd
        model's forward without crowd arguments must return the classifier's logits).
    keep_best : restore, at the end, the weights of the epoch with the best validation accuracy
        (the first one on ties; saved in a temporary folder, or in ``checkpoint_dir``).
    patience : stop when the validation accuracy has not improved for ``patience`` epochs.
    tol : stop when the epoch loss moves by ``|L_{t-1} - L_t| / |L_{t-1}| <= tol`` (the CMM
        authors' ``EarlyStopRelative``, patience 1; see :func:`relative_loss_change`).
    transform : batch augmentation ``transform(x, generator)`` applied to the first input.
    input_index : optional int array (n_rows,): row r of the training set uses ``inputs[input_index[r]]``
        (stacked crowd data: one row per answer without copying the task features); targets,
        weights and callbacks are indexed by row.
    step_callback : ``callback(epoch, rows, logits)`` at every step, with the rows (int64 CPU tensor)
        of the batch and the detached training-mode logits, BEFORE the optimiser step (AUM recording).
    epoch_callback : ``callback(epoch, model)`` after every epoch (after the validation).
    seed : seeds the shuffling, the augmentation, torch's global generator (initial weights of a
        factory-built model, dropout). With ``shuffle="torch"`` the epoch permutations and the
        augmentation share one ``torch.Generator(seed)``; with ``shuffle="numpy"`` the permutations
        come from ``numpy.random.default_rng(seed)`` (the order CrowdLayer and CoNAL have always used,
        which keeps their committed results) and the generator serves the augmentation alone.
    device : ``"auto"`` or a device, resolved by :func:`crowd.device.resolve_device`.
    progress, desc : a tqdm bar over the epochs, with the last loss.

    Returns a :class:`TrainResult`: the model (restored to its best epoch with ``keep_best``), the
    history (one row per epoch run: epoch, loss, lr, valid_accuracy), the best validation epoch,
    the device and why training stopped early, if it did.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle not in ("torch", "numpy"):
        raise ValueError(f"shuffle must be 'torch' or 'numpy', got {shuffle!r}")
    if patience is not None and (valid is None or patience < 1):
        raise ValueError(f"patience needs a valid=(inputs, labels) split and must be >= 1, got {patience}")
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if batch_loss is not None:
        given = [name for name, value in (("targets", targets), ("sample_weight", sample_weight),
                                          ("loss_fn", loss_fn), ("step_callback", step_callback)) if value is not None]
        if given:
            raise ValueError(f"batch_loss computes the loss itself; do not also pass {', '.join(given)}")
    elif targets is None:
        raise ValueError("targets are required (or a batch_loss that computes the loss)")
    dev = resolve_device(device)
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
    weight = None
    if batch_loss is None:
        y, soft = _prepare_targets(targets, n, dev)
        weight = None if sample_weight is None else to_tensor(sample_weight, dtype=torch.float32, device=dev)
        if weight is not None and len(weight) != n:
            raise ValueError(f"sample_weight has {len(weight)} rows for {n} inputs")

    seed = int(seed)
    generator = torch.Generator().manual_seed(seed)
    numpy_rng = np.random.default_rng(seed) if shuffle == "numpy" else None
    torch.manual_seed(seed)  # initial weights of a factory-built model, dropout masks
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or a factory returning one, got {type(model).__name__}")
        model = model()
        if not isinstance(model, nn.Module):
            raise TypeError(f"the model factory returned {type(model).__name__}, not an nn.Module")
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer(params) if callable(optimizer) else make_optimizer(params, optimizer, lr, momentum, weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma) if milestones else None

    if valid is not None:
        valid_x, valid_y = _as_inputs(valid[0], dev), np.asarray(valid[1])
        if len(valid_x[0]) != len(valid_y):
            raise ValueError(f"valid has {len(valid_x[0])} inputs for {len(valid_y)} labels")
    tmp = None
    if keep_best:
        if valid is None:
            raise ValueError("keep_best needs a valid=(inputs, labels) split")
        if checkpoint_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="crowd_ckpt_")
            checkpoint_dir = tmp.name
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
        best_path = Path(checkpoint_dir) / "best.pt"
    best_acc, best_epoch, since_best = -np.inf, None, 0
    previous_loss, stopped = None, None
    rows_hist = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=desc, leave=False)
    try:
        for epoch in range(epochs):
            model.train()
            if numpy_rng is not None:
                order = torch.from_numpy(numpy_rng.permutation(n))
            else:
                order = torch.randperm(n, generator=generator)
            total, seen = 0.0, 0.0
            for start in range(0, n, batch_size):
                rows = order[start:start + batch_size]
                rows_dev = rows.to(dev)
                source_rows = rows_dev if input_index is None else input_index.index_select(0, rows_dev)
                batch = [x.index_select(0, source_rows) for x in xs]
                if transform is not None:
                    batch[0] = transform(batch[0], generator)
                if batch_loss is not None:
                    out = batch_loss(model, batch, rows)
                    loss, batch_weight = out if isinstance(out, tuple) else (out, len(rows))
                else:
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
                    batch_weight = len(rows)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * float(batch_weight)
                seen += float(batch_weight)
            record = {"epoch": epoch + 1, "loss": total / seen, "lr": opt.param_groups[0]["lr"]}
            if scheduler is not None:
                scheduler.step()
            if valid is not None:
                acc = float(np.mean(predict_logits(model, valid_x, device=dev).argmax(1).numpy() == valid_y))
                record["valid_accuracy"] = acc
                if acc > best_acc:
                    best_acc, best_epoch, since_best = acc, epoch + 1, 0
                    if keep_best:
                        torch.save(model.state_dict(), best_path)
                else:
                    since_best += 1
            if epoch_callback is not None:
                epoch_callback(epoch, model)
            rows_hist.append(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            if tol is not None and previous_loss is not None and relative_loss_change(previous_loss, record["loss"]) <= tol:
                stopped = "tol"
                break
            previous_loss = record["loss"]
            if patience is not None and since_best >= patience:
                stopped = "patience"
                break
        if keep_best and best_epoch is not None:
            model.load_state_dict(torch.load(best_path, map_location=dev, weights_only=True))
    finally:
        if bar is not None:
            bar.close()
        if tmp is not None:
            tmp.cleanup()
    return TrainResult(model=model, history=pd.DataFrame(rows_hist), best_epoch=best_epoch, device=dev, stopped=stopped)


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: Any, batch_size: int = 1024, device: str | torch.device | None = None) -> torch.Tensor:
    """Eval-mode logits on CPU, computed batch by batch."""
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    xs = _as_inputs(inputs, dev)
    was_training = model.training
    model.eval()
    out = [model(*[x[s:s + batch_size] for x in xs]).float().cpu() for s in range(0, len(xs[0]), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def predict_proba(model: nn.Module, inputs: Any, batch_size: int = 1024, device: str | torch.device | None = None) -> np.ndarray:
    """Eval-mode softmax probabilities (n, K) as a numpy array."""
    return torch.softmax(predict_logits(model, inputs, batch_size, device), dim=1).numpy()
