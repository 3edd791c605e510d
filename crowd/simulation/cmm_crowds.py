"""Simulated crowds of Mena & Nanculef (CIARP 2019, section 5, "Simulated Scenario"): M groups of
annotators (ability levels), each annotator in one group and answering with its group's confusion.

The generative process (paper, section 5; details from the authors' ``SinteticData.sintetic_annotate_data``):

1. **Ability levels.** A network trained on the truth gets Gaussian noise added to its standardised
   weights, ``w' = ((w - mean) / std + N(0, sigma_m^2)) * std + mean`` per parameter tensor (batch-norm
   parameters untouched), one ``sigma_m`` per group (Setup 1: 0.2, 0.8, 1.5; CIFAR-10: 0.1, 0.2, 0.3,
   0.5). Group ``m``'s confusion ``beta_m`` is the row-normalised confusion matrix of the perturbed
   network on the test set (:func:`perturbed_confusions`).
2. **Annotators.** Each of the ``T`` annotators draws a group ``g ~ p(g)`` and keeps it.
3. **Sparsity.** Each (point, annotator) pair is labelled with probability ``T_i / T`` (``T_i`` the
   mean number of labels per point: 5 in Setup 1, 3 in Setup 2), so an annotator gives
   ``D_t ~ N T_i / T`` labels on average. A point left without a label gets one from an annotator
   drawn uniformly; annotators without a label are dropped (and the rest re-coded).
4. **Labels.** Annotator ``a`` labels point ``i`` of truth ``z_i`` with ``y ~ beta_{g_a}[z_i, :]``.

Step 3 is generated without the N x T matrix of the authors' code: the number of labels of point ``i``
is ``Binomial(T, T_i / T)`` (the same law as T Bernoulli draws), raised to 1 when it is 0, and that
many distinct annotators are drawn uniformly (:func:`~crowd.simulation.confusion.draw_distinct_workers`),
so the cost is linear in the number of answers: T = 100,000 annotators take well under a second.

Scenarios (:class:`GroupScenario`: data + group matrices, from which crowds of any T are drawn):

- :func:`setup1` (Setup 1): three isotropic Gaussian classes of std 0.4, 1000 points each. The paper
  prints the centres (-0.5, 0), (0.5, 0), (0, 0.5); the authors' data (``do_gaussianXOR``) used
  (0, 1), (0, -1), (1, 0). Measured Bayes accuracy (:func:`gaussian_bayes_accuracy`): 0.737 with the
  printed centres, 0.948 with the code's, and the paper's Ideal is 94.75: its Table 2 came from the
  code's centres, which are therefore the default here (``centres="paper"`` gives the printed ones).
  Split 75 / 25 (2250 training points, 750 test), as the authors' ``train_test_split``.
  ``p(g) = (0.25, 0.55, 0.20)`` (experts, inexperts, spammers), ``T_i = 5``.
- :func:`setup2_cifar10` (Setup 2): CIFAR-10, ``M = 4``, ``p(g) = (0.20, 0.45, 0.15, 0.20)``, ``T_i = 3``.
  The paper uses the 50,000 training images as points; offline only the 10,000 test images exist
  (``crowd.data.datasets.cifar10_test_images``), so ``source="test10k"`` splits those (stated in
  ``meta``); ``source="torchvision"`` takes the official 50,000 / 10,000 split.

Group matrices: ``group_matrices="perturbed"`` runs step 1 (our network, our seed); ``"authors"`` uses
the matrices the authors' runs loaded (``synthetic/simple/matrix_datasim_normal.csv`` and
``synthetic/CIFAR/matrix_CIFAR_normal.csv`` of FMena14/MixtureofGroups, made by the same procedure):
the published Table 2 was computed with those exact matrices, so a comparison with it uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from crowd.data import CrowdData, Split
from crowd.simulation.confusion import draw_distinct_workers

__all__ = [
    "GAUSSIAN_CENTRES", "SETUP1", "SETUP2", "AUTHORS_SETUP1_CONFUSIONS", "AUTHORS_CIFAR_CONFUSIONS",
    "GroupScenario", "gaussian_points", "gaussian_bayes_accuracy", "perturb_network", "perturbed_confusions",
    "confusion_of", "simulate_group_crowd", "true_annotator_confusions", "true_global_confusion",
    "setup1", "setup2_cifar10", "density_matched_grid", "annotator_density",
]

# Setup (1) as printed in the paper and as the authors' data generator drew it (see the module docstring).
GAUSSIAN_CENTRES: dict[str, tuple[tuple[float, float], ...]] = {
    "paper": ((-0.5, 0.0), (0.5, 0.0), (0.0, 0.5)),
    "code": ((0.0, 1.0), (0.0, -1.0), (1.0, 0.0)),
}

SETUP1: dict[str, Any] = {"n_per_class": 1000, "std": 0.4, "test_size": 0.25, "sigmas": (0.2, 0.8, 1.5),
                          "group_probas": (0.25, 0.55, 0.20), "group_names": ("experts", "inexperts", "spammers"),
                          "answers_per_task": 5}
SETUP2: dict[str, Any] = {"sigmas": (0.1, 0.2, 0.3, 0.5), "group_probas": (0.20, 0.45, 0.15, 0.20),
                          "group_names": ("experts", "inexperts", "highly inexperts", "spammers"),
                          "answers_per_task": 3, "paper_n_tasks": 50_000}

# FMena14/MixtureofGroups synthetic/simple/matrix_datasim_normal.csv (rows: true class), the matrices
# of run_simple_Tchange.py, i.e. of the paper's Table 2 Setup (1).
AUTHORS_SETUP1_CONFUSIONS = np.array([
    [[0.80952, 0.09524, 0.09524], [0.00000, 0.89474, 0.10526], [0.40299, 0.12127, 0.47575]],
    [[0.60714, 0.00000, 0.39286], [0.09125, 0.42395, 0.48479], [0.10526, 0.00000, 0.89474]],
    [[0.89474, 0.00000, 0.10526], [0.08602, 0.00000, 0.91398], [0.74128, 0.00000, 0.25872]],
])

# FMena14/MixtureofGroups synthetic/CIFAR/matrix_CIFAR_normal.csv (4 groups x 10 x 10), paired there with
# groups_CIFAR_normal.csv = the paper's p(g) (0.20, 0.45, 0.15, 0.20). (Their run_CIFAR_Tchange.py loaded
# matrix_CIFAR_Td3_v2 with p(g) = (0.70, 0.15, 0.10, 0.05) instead, which the paper does not state.)
AUTHORS_CIFAR_CONFUSIONS = np.array([
    [[0.817, 0.011, 0.035, 0.021, 0.019, 0.003, 0.011, 0.009, 0.040, 0.034],
     [0.018, 0.888, 0.000, 0.004, 0.002, 0.001, 0.014, 0.000, 0.019, 0.054],
     [0.081, 0.004, 0.507, 0.041, 0.147, 0.057, 0.111, 0.031, 0.009, 0.012],
     [0.027, 0.010, 0.042, 0.473, 0.116, 0.166, 0.103, 0.038, 0.008, 0.017],
     [0.017, 0.002, 0.027, 0.032, 0.763, 0.012, 0.077, 0.059, 0.007, 0.004],
     [0.010, 0.003, 0.027, 0.125, 0.071, 0.648, 0.047, 0.056, 0.004, 0.009],
     [0.003, 0.004, 0.015, 0.029, 0.036, 0.009, 0.887, 0.007, 0.008, 0.002],
     [0.014, 0.004, 0.015, 0.016, 0.070, 0.057, 0.013, 0.797, 0.003, 0.011],
     [0.057, 0.038, 0.005, 0.020, 0.005, 0.006, 0.007, 0.005, 0.835, 0.022],
     [0.035, 0.084, 0.002, 0.010, 0.007, 0.006, 0.009, 0.012, 0.017, 0.818]],
    [[0.30241, 0.03735, 0.06145, 0.08795, 0.10964, 0.04819, 0.04458, 0.02410, 0.22289, 0.06145],
     [0.05283, 0.48113, 0.00000, 0.05283, 0.00000, 0.02642, 0.04340, 0.02642, 0.17170, 0.14528],
     [0.08941, 0.02878, 0.23124, 0.11408, 0.07914, 0.21686, 0.13258, 0.03803, 0.04111, 0.02878],
     [0.03758, 0.03394, 0.03758, 0.28485, 0.07879, 0.26545, 0.14545, 0.04485, 0.03758, 0.03394],
     [0.04264, 0.03305, 0.08742, 0.14286, 0.24947, 0.14606, 0.12260, 0.13113, 0.02985, 0.01493],
     [0.03443, 0.02096, 0.04641, 0.23653, 0.04641, 0.38174, 0.09731, 0.08084, 0.03443, 0.02096],
     [0.03821, 0.04651, 0.03821, 0.15116, 0.05150, 0.12791, 0.42359, 0.03821, 0.05150, 0.03322],
     [0.03367, 0.04539, 0.02928, 0.08638, 0.08638, 0.22548, 0.04539, 0.37335, 0.02928, 0.04539],
     [0.06151, 0.07341, 0.02778, 0.07341, 0.05556, 0.05556, 0.03968, 0.02778, 0.50595, 0.07937],
     [0.04690, 0.23298, 0.02118, 0.05598, 0.03026, 0.03026, 0.05598, 0.04236, 0.09834, 0.38578]],
    [[0.24127, 0.05397, 0.15873, 0.05714, 0.03915, 0.03280, 0.22222, 0.02434, 0.03386, 0.13651],
     [0.02635, 0.33465, 0.01845, 0.02635, 0.00000, 0.02635, 0.25428, 0.01845, 0.01845, 0.27668],
     [0.04684, 0.03544, 0.28861, 0.09241, 0.02911, 0.12278, 0.29494, 0.02532, 0.01772, 0.04684],
     [0.01724, 0.02833, 0.08005, 0.23768, 0.03448, 0.18966, 0.31158, 0.02833, 0.01724, 0.05542],
     [0.03038, 0.03038, 0.15192, 0.10832, 0.17701, 0.06737, 0.33686, 0.04227, 0.01849, 0.03699],
     [0.01835, 0.01835, 0.10747, 0.11927, 0.03014, 0.29882, 0.30799, 0.04063, 0.01835, 0.04063],
     [0.03955, 0.00000, 0.06497, 0.07910, 0.00000, 0.05650, 0.72034, 0.00000, 0.00000, 0.03955],
     [0.00000, 0.01802, 0.05148, 0.04762, 0.04118, 0.16602, 0.28571, 0.30245, 0.00000, 0.08752],
     [0.09148, 0.12093, 0.04206, 0.03891, 0.02103, 0.02944, 0.19453, 0.00000, 0.23554, 0.22608],
     [0.04968, 0.14583, 0.03205, 0.03686, 0.00000, 0.03205, 0.24038, 0.03205, 0.02244, 0.40865]],
    [[0.00000, 0.00000, 0.07412, 0.03518, 0.29146, 0.09171, 0.15075, 0.07412, 0.00000, 0.28266],
     [0.00000, 0.03438, 0.02990, 0.02093, 0.05979, 0.08819, 0.31839, 0.04634, 0.02093, 0.38117],
     [0.00000, 0.00000, 0.11809, 0.03936, 0.24574, 0.11809, 0.17660, 0.09681, 0.00000, 0.20532],
     [0.00000, 0.00000, 0.02995, 0.02460, 0.24706, 0.15615, 0.22246, 0.13155, 0.00000, 0.18824],
     [0.00000, 0.00000, 0.04172, 0.01825, 0.32986, 0.07692, 0.20600, 0.12647, 0.00000, 0.20078],
     [0.00000, 0.00000, 0.03024, 0.02244, 0.21171, 0.20098, 0.13073, 0.19805, 0.00000, 0.20585],
     [0.00000, 0.00000, 0.06448, 0.01770, 0.26928, 0.08597, 0.30973, 0.06827, 0.00000, 0.18458],
     [0.00000, 0.00000, 0.02381, 0.02070, 0.22050, 0.16770, 0.12733, 0.23188, 0.00000, 0.20807],
     [0.00000, 0.00000, 0.06383, 0.02837, 0.26241, 0.07660, 0.12340, 0.06383, 0.01986, 0.36170],
     [0.00000, 0.02147, 0.03067, 0.03067, 0.11196, 0.11810, 0.24847, 0.04755, 0.00000, 0.39110]],
])


def _normalise_rows(conf: np.ndarray) -> np.ndarray:
    conf = np.asarray(conf, dtype=np.float64)
    return conf / conf.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------- data
def gaussian_points(n_per_class: int = 1000, std: float = 0.4, centres: str | Sequence[Sequence[float]] = "code",
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` points around each centre (isotropic, standard deviation ``std``), shuffled.

    ``centres``: ``"code"`` (the authors' data), ``"paper"`` (as printed) or an explicit (K, 2) array.
    """
    c = np.asarray(GAUSSIAN_CENTRES[centres] if isinstance(centres, str) else centres, dtype=np.float64)
    if c.ndim != 2 or len(c) < 2:
        raise ValueError(f"centres must be a (K >= 2, d) array or one of {sorted(GAUSSIAN_CENTRES)}, got {centres!r}")
    if n_per_class < 1 or std <= 0:
        raise ValueError(f"need n_per_class >= 1 and std > 0, got {n_per_class}, {std}")
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(c)), n_per_class)
    x = c[y] + rng.normal(0.0, std, (len(y), c.shape[1]))
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order].astype(np.int64)


def gaussian_bayes_accuracy(centres: str | Sequence[Sequence[float]] = "code", std: float = 0.4,
                            n_samples: int = 200_000, seed: int = 0) -> float:
    """Monte-Carlo accuracy of the Bayes classifier (nearest centre, equal priors, shared isotropic std):
    the best test accuracy any method (the paper's Ideal included) can reach on these classes."""
    c = np.asarray(GAUSSIAN_CENTRES[centres] if isinstance(centres, str) else centres, dtype=np.float64)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(c), n_samples)
    x = c[y] + rng.normal(0.0, std, (n_samples, c.shape[1]))
    d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    return float(np.mean(d.argmin(axis=1) == y))


# ----------------------------------------------------------------------------- ability levels
def _train_truth_net(model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                     seed: int, tol: float = 0.03, min_epochs: int = 10) -> Any:
    """Train ``model`` on the truth with RMSprop (the authors' optimiser for these nets) until the relative
    change of the epoch loss is <= ``tol`` (their EarlyStopRelative) or ``epochs`` epochs. Unlike theirs, the
    rule is only checked after ``min_epochs`` epochs: a 4-unit MLP at RMSprop's default rate moves its loss
    by less than 3 % in its first epochs and would stop at chance level (measured: 1/3 test accuracy)."""
    import torch

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.RMSprop(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    previous = None
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(xt), generator=g).split(batch_size):
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        total /= len(xt)
        if epoch + 1 >= min_epochs and previous is not None and abs(previous - total) / max(previous, 1e-12) <= tol:
            break
        previous = total
    model.eval()
    return model


def perturb_network(model: Any, sigma: float, seed: int = 0) -> Any:
    """A copy of ``model`` whose every weight tensor ``w`` (batch-norm parameters and buffers excepted)
    becomes ``((w - mean(w)) / std(w) + N(0, sigma^2)) * std(w) + mean(w)`` (the authors' perturbation)."""
    import copy

    import torch

    noisy = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(int(seed))
    skip = set()
    for module in noisy.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            skip.update(id(p) for p in module.parameters(recurse=False))
    with torch.no_grad():
        for p in noisy.parameters():
            if id(p) in skip:
                continue
            mean = p.mean()
            std = p.std(unbiased=False) if p.numel() > 1 else torch.tensor(1.0)
            std = std if float(std) > 0 else torch.tensor(1.0)
            noise = torch.randn(p.shape, generator=gen) * sigma
            p.copy_(((p - mean) / std + noise) * std + mean)
    noisy.eval()
    return noisy


def confusion_of(predictions: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix (rows: true class); a class never seen gets a uniform row."""
    counts = np.bincount(np.asarray(truth) * n_classes + np.asarray(predictions),
                         minlength=n_classes * n_classes).reshape(n_classes, n_classes).astype(np.float64)
    empty = counts.sum(axis=1) == 0
    counts[empty] = 1.0
    return counts / counts.sum(axis=1, keepdims=True)


def _predict(model: Any, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    import torch

    with torch.no_grad():
        xt = torch.as_tensor(x, dtype=torch.float32)
        return np.concatenate([model(xt[i:i + batch_size]).argmax(dim=1).numpy()
                               for i in range(0, len(xt), batch_size)])


def perturbed_confusions(model: Any, x_test: np.ndarray, y_test: np.ndarray, sigmas: Sequence[float],
                         n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Group confusions ``beta_m`` (M, K, K) of ``model`` perturbed with each ``sigma_m``, measured on
    the test set, and the perturbed networks' test accuracies (M,)."""
    confs, accs = [], []
    for m, sigma in enumerate(sigmas):
        pred = _predict(perturb_network(model, float(sigma), seed=seed * 1000 + m), x_test)
        confs.append(confusion_of(pred, y_test, n_classes))
        accs.append(float(np.mean(pred == y_test)))
    return np.stack(confs), np.asarray(accs)


# ----------------------------------------------------------------------------- crowds
def simulate_group_crowd(truth: np.ndarray, group_confusions: np.ndarray, group_probas: Sequence[float],
                         n_annotators: int, answers_per_task: float, seed: int = 0,
                         features: np.ndarray | None = None, splits: dict[str, Split] | None = None,
                         name: str = "cmm_crowd", meta: dict[str, Any] | None = None) -> CrowdData:
    """A crowd of ``n_annotators`` annotators in groups (the paper's section 5 process, see the module docstring).

    Each (task, annotator) pair is labelled with probability ``answers_per_task / n_annotators``,
    generated as Binomial counts per task plus distinct uniform annotators (no N x T array). Returns a
    :class:`CrowdData` with ``gold = truth`` and, in ``meta``: ``worker_group`` (group of every kept
    annotator), ``group_confusions``, ``group_probas``, ``n_annotators_drawn``, ``answers_per_task``,
    ``n_tasks_filled`` (tasks that got their one label from a random annotator), ``seed``.
    """
    truth = np.asarray(truth, dtype=np.int64)
    conf = np.asarray(group_confusions, dtype=np.float64)
    p = np.asarray(group_probas, dtype=np.float64)
    if conf.ndim != 3 or conf.shape[1] != conf.shape[2]:
        raise ValueError(f"group_confusions must be (M, K, K), got shape {conf.shape}")
    if (conf < 0).any() or not np.allclose(conf.sum(axis=2), 1.0, atol=1e-4):
        raise ValueError("every row of every group confusion must be a distribution (non-negative, sums to 1)")
    conf = _normalise_rows(conf)
    M, K, _ = conf.shape
    if p.shape != (M,) or (p < 0).any() or not np.isclose(p.sum(), 1.0, atol=1e-6):
        raise ValueError(f"group_probas must be a distribution over the {M} groups, got {group_probas}")
    if truth.ndim != 1 or len(truth) == 0 or truth.min() < 0 or truth.max() >= K:
        raise ValueError(f"truth must be a non-empty 1-d array of class codes in [0, {K})")
    if int(n_annotators) != n_annotators or n_annotators < 1:
        raise ValueError(f"n_annotators must be a positive integer, got {n_annotators}")
    n_annotators = int(n_annotators)
    if not 0 < answers_per_task <= n_annotators:
        raise ValueError(f"answers_per_task (T_i) must be in (0, n_annotators={n_annotators}], got {answers_per_task}")
    rng = np.random.default_rng(seed)
    n_tasks = len(truth)
    groups = rng.choice(M, size=n_annotators, p=p / p.sum())
    counts = rng.binomial(n_annotators, answers_per_task / n_annotators, size=n_tasks)
    filled = counts == 0
    counts[filled] = 1  # the authors' rule: a task without label gets one from a random annotator
    task, worker = draw_distinct_workers(counts, n_annotators, rng)
    cdf = np.cumsum(conf, axis=2)
    cdf[..., -1] = 1.0
    label = np.empty(len(task), dtype=np.int64)
    chunk = 1 << 20
    for start in range(0, len(task), chunk):
        sl = slice(start, start + chunk)
        rows = cdf[groups[worker[sl]], truth[task[sl]]]
        label[sl] = np.minimum((rng.random(len(rows))[:, None] >= rows).sum(axis=1), K - 1)
    active = np.bincount(worker, minlength=n_annotators) > 0
    new_code = np.cumsum(active) - 1
    info = dict(meta or {})
    info.update({"worker_group": groups[active], "group_confusions": conf, "group_probas": p,
                 "n_annotators_drawn": n_annotators, "answers_per_task": float(answers_per_task),
                 "n_tasks_filled": int(filled.sum()), "seed": seed})
    return CrowdData(task, new_code[worker], label, n_tasks, int(active.sum()), K,
                     worker_ids=np.flatnonzero(active), gold=truth, features=features,
                     splits=dict(splits or {}), meta=info, name=name)


def true_annotator_confusions(data: CrowdData, workers: np.ndarray | None = None) -> np.ndarray:
    """The true confusion of each annotator of a simulated crowd (its group's matrix), (n_workers, K, K)
    or for the given worker codes only."""
    if "worker_group" not in data.meta or "group_confusions" not in data.meta:
        raise ValueError("not a group crowd: meta lacks worker_group / group_confusions (use simulate_group_crowd)")
    groups = data.meta["worker_group"] if workers is None else data.meta["worker_group"][np.asarray(workers)]
    return data.meta["group_confusions"][groups]


def true_global_confusion(data: CrowdData) -> np.ndarray:
    """The notes' true global confusion: row-normalised ``sum_i onehot(z_i)^T r_i`` over the answers (K, K)."""
    from crowd.metrics import global_confusion

    if data.gold is None or (data.gold < 0).any():
        raise ValueError("the true global confusion needs the gold label of every task")
    return global_confusion(data.gold, data.task, data.label, data.n_classes)


def annotator_density(n_tasks: int, answers_per_task: float, n_annotators: int) -> float:
    """``D_t = N T_i / T``: the mean number of labels per annotator (paper, section 5)."""
    return n_tasks * answers_per_task / n_annotators


def density_matched_grid(annotator_grid: Sequence[int], n_tasks: int, paper_n_tasks: int = 50_000) -> list[int]:
    """The T that give ``n_tasks`` points the densities ``D_t`` the paper's ``paper_n_tasks`` had at each T
    of ``annotator_grid`` (``T' = T n_tasks / paper_n_tasks``, rounded, at least 1)."""
    return [max(1, int(round(t * n_tasks / paper_n_tasks))) for t in annotator_grid]


@dataclass
class GroupScenario:
    """Points, their truth and the M group matrices: crowds of any size are drawn from it by :meth:`crowd`."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    group_confusions: np.ndarray
    group_probas: np.ndarray
    answers_per_task: float
    group_names: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return int(self.group_confusions.shape[1])

    @property
    def n_tasks(self) -> int:
        return len(self.y_train)

    def crowd(self, n_annotators: int, seed: int = 0, answers_per_task: float | None = None) -> CrowdData:
        """A crowd of ``n_annotators`` annotators on the training points (test split in ``splits["test"]``)."""
        apt = self.answers_per_task if answers_per_task is None else answers_per_task
        return simulate_group_crowd(
            self.y_train, self.group_confusions, self.group_probas, n_annotators, apt, seed=seed,
            features=self.x_train, splits={"test": Split(labels=self.y_test, features=self.x_test)},
            name=f"{self.name}_T{n_annotators}", meta={"scenario": self.name, **self.meta})

    def density(self, n_annotators: int) -> float:
        return annotator_density(self.n_tasks, self.answers_per_task, n_annotators)


def setup1(seed: int = 0, centres: str = "code", group_matrices: Literal["authors", "perturbed"] = "authors",
           n_per_class: int = SETUP1["n_per_class"], std: float = SETUP1["std"],
           test_size: float = SETUP1["test_size"], sigmas: Sequence[float] = SETUP1["sigmas"],
           group_probas: Sequence[float] = SETUP1["group_probas"],
           answers_per_task: float = SETUP1["answers_per_task"], hidden_units: int = 4) -> GroupScenario:
    """Setup (1): three Gaussian classes, M = 3 groups (see the module docstring).

    ``group_matrices="perturbed"`` trains the authors' truth network (MLP, ``hidden_units`` = 4 ReLU units,
    RMSprop at rate 0.01, batch 256, up to 100 epochs with the 3 % relative-loss stop after 10 epochs) on the training points and
    perturbs it with ``sigmas``; the perturbed networks' test accuracies go to ``meta["group_accuracy"]``.
    """
    from sklearn.model_selection import train_test_split

    x, y = gaussian_points(n_per_class, std, centres, seed)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    meta: dict[str, Any] = {"centres": centres, "std": std, "group_matrices": group_matrices, "seed": seed,
                            "split": f"{len(ytr)} train / {len(yte)} test"}
    if group_matrices == "authors":
        conf = _normalise_rows(AUTHORS_SETUP1_CONFUSIONS)
    elif group_matrices == "perturbed":
        import torch

        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden_units), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden_units, 3))
        _train_truth_net(net, xtr, ytr, epochs=100, batch_size=256, lr=1e-2, seed=seed)
        conf, accs = perturbed_confusions(net, xte, yte, sigmas, 3, seed=seed)
        meta.update({"sigmas": tuple(sigmas), "group_accuracy": accs,
                     "truth_net_accuracy": float(np.mean(_predict(net, xte) == yte))})
    else:
        raise ValueError(f"group_matrices must be 'authors' or 'perturbed', got {group_matrices!r}")
    return GroupScenario("setup1", xtr, ytr, xte, yte, conf, np.asarray(group_probas, dtype=np.float64),
                         float(answers_per_task), tuple(SETUP1["group_names"]), meta)


def setup2_cifar10(seed: int = 0, source: Literal["test10k", "torchvision"] = "test10k", n_train: int = 8000,
                   n_test: int | None = None,
                   group_matrices: Literal["authors", "perturbed"] = "authors",
                   sigmas: Sequence[float] = SETUP2["sigmas"], group_probas: Sequence[float] = SETUP2["group_probas"],
                   answers_per_task: float = SETUP2["answers_per_task"], truth_net_epochs: int = 10) -> GroupScenario:
    """Setup (2) on CIFAR-10 images (float32, N x 3 x 32 x 32, scaled to [0, 1] as the authors' ``/255``).

    ``source="test10k"``: the 10,000 CIFAR-10 test images of the offline mirror, split (stratified,
    seeded) into ``n_train`` crowd-labelled points and ``10000 - n_train`` test points (the first ``n_test``
    of them when given: smoke runs). The annotator
    density ``D_t = N T_i / T`` then is ``n_train / 50000`` of the paper's at the same T: see
    :func:`density_matched_grid`. ``source="torchvision"``: the official 50,000 training images (the
    paper's points; downloaded by torchvision) and the 10,000 test images.
    ``group_matrices="perturbed"`` trains :class:`~crowd.learning.models.CifarCNN` on the truth for
    ``truth_net_epochs`` epochs and perturbs it (slow on CPU); ``"authors"`` uses the authors' matrices.
    """
    from crowd.data.datasets import cifar10_test_images

    if source == "test10k":
        from sklearn.model_selection import train_test_split

        images, labels = cifar10_test_images("mirror")
        if not 0 < n_train < len(labels):
            raise ValueError(f"n_train must be in (0, {len(labels)}), got {n_train}")
        idx_tr, idx_te = train_test_split(np.arange(len(labels)), train_size=n_train, random_state=seed, stratify=labels)
        if n_test is not None:
            idx_te = idx_te[:n_test]
        xtr, ytr, xte, yte = images[idx_tr], labels[idx_tr], images[idx_te], labels[idx_te]
        split = (f"{len(idx_tr)} of the 10,000 CIFAR-10 test images as crowd-labelled points, the other "
                 f"{len(idx_te)} as test set (the paper: 50,000 training images / 10,000 test images)")
    elif source == "torchvision":
        from crowd.data.cifar10 import cifar10_train_set

        xtr, ytr = cifar10_train_set()
        xte, yte = cifar10_test_images("torchvision")
        split = "the 50,000 CIFAR-10 training images / 10,000 test images (the paper's)"
    else:
        raise ValueError(f"source must be 'test10k' or 'torchvision', got {source!r}")

    def to_float(a: np.ndarray) -> np.ndarray:
        return (np.ascontiguousarray(a.transpose(0, 3, 1, 2)).astype(np.float32) / 255.0)

    xtr, xte = to_float(xtr), to_float(xte)
    meta: dict[str, Any] = {"source": source, "split": split, "group_matrices": group_matrices, "seed": seed}
    if group_matrices == "authors":
        conf = _normalise_rows(AUTHORS_CIFAR_CONFUSIONS)
    elif group_matrices == "perturbed":
        import torch

        from crowd.learning.models import CifarCNN

        torch.manual_seed(seed)
        net = CifarCNN(10)
        _train_truth_net(net, xtr, ytr, epochs=truth_net_epochs, batch_size=128, lr=1e-3, seed=seed)
        conf, accs = perturbed_confusions(net, xte, yte, sigmas, 10, seed=seed)
        meta.update({"sigmas": tuple(sigmas), "group_accuracy": accs,
                     "truth_net_accuracy": float(np.mean(_predict(net, xte) == yte))})
    else:
        raise ValueError(f"group_matrices must be 'authors' or 'perturbed', got {group_matrices!r}")
    return GroupScenario("setup2_cifar10", xtr, ytr, xte, yte, conf, np.asarray(group_probas, dtype=np.float64),
                         float(answers_per_task), tuple(SETUP2["group_names"]), meta)
