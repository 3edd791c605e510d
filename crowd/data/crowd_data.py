"""The in-memory representation of a crowdsourced dataset.

Every algorithm of the package works on :class:`CrowdData`: three flat,
integer-coded arrays ``task``, ``worker``, ``label`` of length ``n_answers``
(one row per answer), plus the original ids, the class names and, where the
dataset has them, gold labels, task features and held-out splits.

Converters read and write crowd-kit's long DataFrame (columns ``task``,
``worker``, ``label``) and peerannot's ``answers.json``
(``{task: {worker: label}}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["CrowdData", "Split", "as_crowd_data"]


@dataclass
class Split:
    """A held-out split (e.g. ``valid`` or ``test``): features and gold labels, no crowd answers."""

    labels: np.ndarray
    features: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


def _as_code_array(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{name} must hold integer codes, got dtype {arr.dtype}; "
                "use CrowdData.from_dataframe to encode arbitrary ids"
            )
    return arr.astype(np.int64, copy=False)


@dataclass
class CrowdData:
    """Answers of workers to tasks, integer coded.

    Attributes
    ----------
    task, worker, label : int64 arrays of shape (n_answers,)
        Codes in ``[0, n_tasks)``, ``[0, n_workers)``, ``[0, n_classes)``.
    task_ids, worker_ids : arrays of the original ids, indexed by code.
    class_names : the name of each class, indexed by label code.
    gold : int64 array (n_tasks,) of gold label codes, ``-1`` where unknown; or None
        (``truth`` gives them as a Series indexed by task id).
    features : array (n_tasks, ...) of task features, or None.
    splits : held-out splits with features and gold labels (no answers).
    meta : free-form provenance (source files, substitutes used, ...).
    """

    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    n_tasks: int
    n_workers: int
    n_classes: int
    task_ids: np.ndarray | None = None
    worker_ids: np.ndarray | None = None
    class_names: list[str] | None = None
    gold: np.ndarray | None = None
    features: np.ndarray | None = None
    splits: dict[str, Split] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    name: str = "crowd"

    def __post_init__(self) -> None:
        self.task = _as_code_array(self.task, "task")
        self.worker = _as_code_array(self.worker, "worker")
        self.label = _as_code_array(self.label, "label")
        self.n_tasks, self.n_workers, self.n_classes = int(self.n_tasks), int(self.n_workers), int(self.n_classes)
        self._validate()
        if self.task_ids is None:
            self.task_ids = np.arange(self.n_tasks)
        if self.worker_ids is None:
            self.worker_ids = np.arange(self.n_workers)
        if self.class_names is None:
            self.class_names = [str(k) for k in range(self.n_classes)]
        self.task_ids = np.asarray(self.task_ids)
        self.worker_ids = np.asarray(self.worker_ids)
        self.class_names = [str(c) for c in self.class_names]
        if len(self.task_ids) != self.n_tasks:
            raise ValueError(f"task_ids has {len(self.task_ids)} entries for {self.n_tasks} tasks")
        if len(self.worker_ids) != self.n_workers:
            raise ValueError(f"worker_ids has {len(self.worker_ids)} entries for {self.n_workers} workers")
        if len(self.class_names) != self.n_classes:
            raise ValueError(f"class_names has {len(self.class_names)} entries for {self.n_classes} classes")
        if self.gold is not None:
            self.gold = _as_code_array(self.gold, "gold")
            if len(self.gold) != self.n_tasks:
                raise ValueError(f"gold has {len(self.gold)} entries for {self.n_tasks} tasks")
            bad = (self.gold < -1) | (self.gold >= self.n_classes)
            if bad.any():
                raise ValueError(f"gold holds unknown labels {np.unique(self.gold[bad])[:5].tolist()} (n_classes={self.n_classes})")
        if self.features is not None and len(self.features) != self.n_tasks:
            raise ValueError(f"features has {len(self.features)} rows for {self.n_tasks} tasks")

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        n = len(self.task)
        if not (len(self.worker) == n == len(self.label)):
            raise ValueError(
                f"task, worker and label must have the same length, got {len(self.task)}, {len(self.worker)}, {len(self.label)}"
            )
        if n == 0:
            raise ValueError("empty dataset: no answers")
        for arr, size, what in ((self.task, self.n_tasks, "task"), (self.worker, self.n_workers, "worker"), (self.label, self.n_classes, "label")):
            if size <= 0:
                raise ValueError(f"n_{what}s must be positive, got {size}")
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= size:
                bad = arr[(arr < 0) | (arr >= size)]
                kind = "unknown label" if what == "label" else f"{what} id out of range"
                raise ValueError(f"{kind}: {np.unique(bad)[:5].tolist()} not in [0, {size}) (n_{what}s={size})")
        # one answer per (task, worker): encode the pair as one integer and look for repeats
        # (sorting is ~10x faster than np.unique's hashing at 10M answers)
        key = np.sort(self.task * np.int64(self.n_workers) + self.worker)
        repeated = key[1:] == key[:-1]
        if repeated.any():
            dup = np.unique(key[1:][repeated])[:3]
            pairs = [(int(k // self.n_workers), int(k % self.n_workers)) for k in dup]
            raise ValueError(f"duplicated (task, worker) answers, e.g. codes {pairs}; keep one answer per pair")

    def tasks_without_answers(self) -> np.ndarray:
        """Codes of tasks that received no answer."""
        return np.flatnonzero(np.bincount(self.task, minlength=self.n_tasks) == 0)

    def require_all_tasks_answered(self) -> None:
        missing = self.tasks_without_answers()
        if missing.size:
            ids = self.task_ids[missing[:5]].tolist()
            raise ValueError(f"{missing.size} task(s) have no answer, e.g. {ids}; drop them or give them answers")

    # ------------------------------------------------------------- properties
    @property
    def n_answers(self) -> int:
        return int(len(self.task))

    @property
    def answers(self) -> pd.DataFrame:
        """crowd-kit's long format: original task and worker ids, integer label codes."""
        return pd.DataFrame({"task": self.task_ids[self.task], "worker": self.worker_ids[self.worker], "label": self.label})

    @property
    def truth(self) -> pd.Series | None:
        """Gold label codes as a Series indexed by task id (tasks without gold left out)."""
        if self.gold is None:
            return None
        known = self.gold >= 0
        return pd.Series(self.gold[known], index=pd.Index(self.task_ids[known], name="task"), name="truth")

    def vote_counts(self) -> np.ndarray:
        """(n_tasks, n_classes) number of votes per class (dense in tasks x classes only)."""
        return np.bincount(self.task * self.n_classes + self.label, minlength=self.n_tasks * self.n_classes).reshape(
            self.n_tasks, self.n_classes
        )

    def answers_per_task(self) -> np.ndarray:
        return np.bincount(self.task, minlength=self.n_tasks)

    def answers_per_worker(self) -> np.ndarray:
        return np.bincount(self.worker, minlength=self.n_workers)

    def density(self) -> float:
        """Share of the task x worker matrix that holds an answer."""
        return self.n_answers / (self.n_tasks * self.n_workers)

    def subset_answers(self, mask: np.ndarray) -> "CrowdData":
        """Same tasks, workers and classes, only the answers where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        return CrowdData(
            self.task[mask], self.worker[mask], self.label[mask], self.n_tasks, self.n_workers, self.n_classes,
            self.task_ids, self.worker_ids, self.class_names, self.gold, self.features, self.splits, dict(self.meta), self.name,
        )

    def subset_tasks(self, tasks: np.ndarray) -> "CrowdData":
        """Keep the given task codes (re-coded 0..len-1 in that order) and their answers; workers keep their codes."""
        tasks = np.asarray(tasks, dtype=np.int64)
        new_code = np.full(self.n_tasks, -1, dtype=np.int64)
        new_code[tasks] = np.arange(len(tasks))
        keep = new_code[self.task] >= 0
        return CrowdData(
            new_code[self.task[keep]], self.worker[keep], self.label[keep], len(tasks), self.n_workers, self.n_classes,
            self.task_ids[tasks], self.worker_ids, self.class_names,
            None if self.gold is None else self.gold[tasks],
            None if self.features is None else self.features[tasks],
            self.splits, dict(self.meta), self.name,
        )

    def summary(self) -> dict[str, Any]:
        apt = self.answers_per_task()
        return {
            "name": self.name, "n_tasks": self.n_tasks, "n_workers": self.n_workers, "n_classes": self.n_classes,
            "n_answers": self.n_answers, "answers_per_task_mean": float(apt.mean()),
            "answers_per_task_min": int(apt.min()), "answers_per_task_max": int(apt.max()),
            "density": self.density(),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (f"CrowdData({self.name!r}: {s['n_tasks']} tasks, {s['n_workers']} workers, "
                f"{s['n_classes']} classes, {s['n_answers']} answers)")

    # ------------------------------------------------------------ converters
    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        n_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        task_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> "CrowdData":
        """From crowd-kit's long DataFrame with columns ``task``, ``worker``, ``label``.

        Labels are either integer codes in ``[0, n_classes)`` or, when ``class_names`` is
        given, class names (integer codes are accepted there too). Without either, the
        sorted distinct labels become the classes. ``task_ids`` fixes the task order and
        may include tasks without answers.
        """
        missing = {"task", "worker", "label"} - set(df.columns)
        if missing:
            raise ValueError(f"answers DataFrame lacks column(s) {sorted(missing)}; expected task, worker, label")
        if len(df) == 0:
            raise ValueError("empty dataset: no answers")
        if df[["task", "worker", "label"]].isna().any().any():
            raise ValueError("answers DataFrame holds missing values in task, worker or label")
        labels = df["label"].to_numpy()
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            lookup = {name: k for k, name in enumerate(class_names)}
            if np.issubdtype(labels.dtype, np.integer):
                codes = labels.astype(np.int64)
            else:
                unknown = sorted({str(v) for v in labels} - set(lookup))
                if unknown:
                    raise ValueError(f"unknown label(s) {unknown[:5]}; classes are {class_names}")
                codes = np.array([lookup[str(v)] for v in labels], dtype=np.int64)
            n_classes = len(class_names)
        elif np.issubdtype(labels.dtype, np.integer):
            codes = labels.astype(np.int64)
            if n_classes is None:
                n_classes = int(codes.max()) + 1
        else:
            uniq = np.unique(labels.astype(str))
            class_names = uniq.tolist()
            codes = np.searchsorted(uniq, labels.astype(str)).astype(np.int64)
            n_classes = len(uniq)
        if task_ids is None:
            t_codes, t_uniq = _factorize_sorted(df["task"].to_numpy())
        else:
            t_uniq = np.asarray(task_ids)
            index = pd.Index(t_uniq)
            if not index.is_unique:
                raise ValueError("task_ids holds duplicates")
            t_codes = index.get_indexer(df["task"].to_numpy())
            if (t_codes < 0).any():
                raise ValueError(f"answers name task(s) not in task_ids, e.g. {df['task'].to_numpy()[t_codes < 0][:5].tolist()}")
        w_codes, w_uniq = _factorize_sorted(df["worker"].to_numpy())
        return cls(t_codes, w_codes, codes, len(t_uniq), len(w_uniq), n_classes, t_uniq, w_uniq, class_names, **kwargs)

    @classmethod
    def from_answers_json(
        cls,
        source: str | PathLike | Mapping[Any, Mapping[Any, Any]],
        n_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> "CrowdData":
        """From peerannot's ``answers.json``: ``{task: {worker: label}}`` (a path or the loaded dict).

        Task keys that are integer strings keep their numeric order; labels are integer codes.
        """
        if isinstance(source, (str, PathLike)):
            with open(source) as fh:
                source = json.load(fh)
        rows = [(t, w, lab) for t, answers in source.items() for w, lab in answers.items()]
        if not rows:
            raise ValueError("empty dataset: answers.json holds no answer")
        empty = [t for t, answers in source.items() if not answers]
        df = pd.DataFrame(rows, columns=["task", "worker", "label"])
        for col in ("task", "worker"):
            as_num = pd.to_numeric(df[col], errors="coerce")
            if as_num.notna().all():
                df[col] = as_num.astype(np.int64)
        df["label"] = pd.to_numeric(df["label"], errors="raise").astype(np.int64)
        task_ids = None
        if empty:  # keep tasks listed without answers so the caller sees them
            all_tasks = pd.Series(list(source.keys()))
            as_num = pd.to_numeric(all_tasks, errors="coerce")
            task_ids = np.sort((as_num.astype(np.int64) if as_num.notna().all() else all_tasks).to_numpy())
        return cls.from_dataframe(df, n_classes=n_classes, class_names=class_names, task_ids=task_ids, **kwargs)

    def to_answers_json(self, path: str | PathLike | None = None) -> dict[str, dict[str, int]]:
        """peerannot's format, keyed by original ids (as strings); written to ``path`` when given."""
        out: dict[str, dict[str, int]] = {}
        for t, w, lab in zip(self.task_ids[self.task], self.worker_ids[self.worker], self.label):
            out.setdefault(str(t), {})[str(w)] = int(lab)
        if path is not None:
            Path(path).write_text(json.dumps(out))
        return out


def _factorize_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and sorted distinct values (falls back to first-seen order for unsortable ids)."""
    try:
        uniq, codes = np.unique(values, return_inverse=True)
    except TypeError:
        codes, uniq = pd.factorize(values)
    return codes.astype(np.int64).ravel(), uniq


def as_crowd_data(data: Any, **kwargs: Any) -> CrowdData:
    """Coerce a CrowdData, a crowd-kit DataFrame, a peerannot dict or an ``answers.json`` path."""
    if isinstance(data, CrowdData):
        return data
    if isinstance(data, pd.DataFrame):
        return CrowdData.from_dataframe(data, **kwargs)
    if isinstance(data, (dict, str, PathLike)):
        return CrowdData.from_answers_json(data, **kwargs)
    raise TypeError(f"cannot read crowd answers from {type(data).__name__}; give a CrowdData, a DataFrame "
                    "with task/worker/label columns, or a peerannot answers.json")
