"""The in-memory representation of a crowdsourced dataset.

Every algorithm of the package works on :class:`CrowdData`: three flat,
integer-coded arrays ``task``, ``worker``, ``label`` of length ``n_answers``
(one row per answer), plus the original ids, the class names and, where the
dataset has them, gold labels, task features and held-out splits.

Converters read and write crowd-kit's long DataFrame (columns ``task``,
``worker``, ``label``) and peerannot's ``answers.json``
(``{task: {worker: label}}``).

The data contract (labels in = labels out, as crowd-kit):

* Classes are the observed labels, sorted, or an explicit ``classes=`` argument (so that
  classes nobody chose keep their column); never ``max label + 1``. ``classes`` holds the
  original label values by code and the aggregators' ``fit_predict`` / ``fit_predict_proba``
  decode to them: string, int and float labels come back as they came in.
* ``1`` and ``1.0`` are the same class (numeric equality, as pandas and crowd-kit group them);
  a label column that mixes strings and numbers (``"1"`` and ``1``) is refused with an error.
* Task and worker ids are kept as given. Ids that cannot be sorted together (mixed types)
  are ordered numbers first, then strings, so the codes never depend on the row order.
* In ``answers.json`` the ids are strings: they become integers only when every key of the
  file is a canonical decimal integer (``"12"``, not ``"012"`` or ``"12.0"``), which
  round-trips exactly, so ``"1"``, ``"01"`` and ``"1.0"`` stay three tasks.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field, replace
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
    class_names : the name of each class (a string), indexed by label code.
    classes : the original label value of each class (a pandas Index), indexed by label code:
        what ``fit_predict`` returns (``range(n_classes)`` when the data were built from codes).
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
    classes: Any = None

    def __post_init__(self) -> None:
        self.task = _as_code_array(self.task, "task")
        self.worker = _as_code_array(self.worker, "worker")
        self.label = _as_code_array(self.label, "label")
        self.n_tasks, self.n_workers, self.n_classes = int(self.n_tasks), int(self.n_workers), int(self.n_classes)
        if self.task_ids is None:
            self.task_ids = np.arange(self.n_tasks)
        if self.worker_ids is None:
            self.worker_ids = np.arange(self.n_workers)
        self.task_ids = np.asarray(self.task_ids)
        self.worker_ids = np.asarray(self.worker_ids)
        if self.classes is None:
            self.classes = pd.RangeIndex(max(self.n_classes, 0))
        self.classes = pd.Index(self.classes)
        if isinstance(self.classes, pd.RangeIndex):
            self.classes = pd.Index(self.classes.to_numpy(np.int64))
        if self.class_names is None:
            self.class_names = [str(c) for c in self.classes]
        self.class_names = [str(c) for c in self.class_names]
        self._validate()
        if len(self.task_ids) != self.n_tasks:
            raise ValueError(f"task_ids has {len(self.task_ids)} entries for {self.n_tasks} tasks")
        if len(self.worker_ids) != self.n_workers:
            raise ValueError(f"worker_ids has {len(self.worker_ids)} entries for {self.n_workers} workers")
        if len(self.class_names) != self.n_classes:
            raise ValueError(f"class_names has {len(self.class_names)} entries for {self.n_classes} classes")
        if len(self.classes) != self.n_classes:
            raise ValueError(f"classes has {len(self.classes)} entries for {self.n_classes} classes")
        if not self.classes.is_unique:
            raise ValueError(f"classes holds duplicates: {self.classes[self.classes.duplicated()].tolist()[:5]}")
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
            n_dup = int(np.unique(key[1:][repeated]).size)
            pairs = ", ".join(f"(task {_show(self.task_ids[k // self.n_workers])}, worker "
                              f"{_show(self.worker_ids[k % self.n_workers])})" for k in dup.tolist()
                              if k // self.n_workers < len(self.task_ids) and k % self.n_workers < len(self.worker_ids))
            raise ValueError(f"duplicated (task, worker) answers: {n_dup} pair(s) answered more than once, e.g. {pairs}; "
                             "keep one answer per pair")

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
        """crowd-kit's long format: original task and worker ids and original labels (``classes``)."""
        return pd.DataFrame({"task": self.task_ids[self.task], "worker": self.worker_ids[self.worker],
                             "label": self.classes.take(self.label)})

    def decode(self, codes: np.ndarray) -> pd.Index:
        """The original labels (``classes``) of integer label codes."""
        return self.classes.take(np.asarray(codes, dtype=np.int64))

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
        return replace(self, task=self.task[mask], worker=self.worker[mask], label=self.label[mask], meta=dict(self.meta))

    def subset_tasks(self, tasks: np.ndarray) -> "CrowdData":
        """Keep the given task codes (re-coded 0..len-1 in that order) and their answers; workers keep their codes."""
        tasks = np.asarray(tasks, dtype=np.int64)
        new_code = np.full(self.n_tasks, -1, dtype=np.int64)
        new_code[tasks] = np.arange(len(tasks))
        keep = new_code[self.task] >= 0
        return replace(self, task=new_code[self.task[keep]], worker=self.worker[keep], label=self.label[keep],
                       n_tasks=len(tasks), task_ids=self.task_ids[tasks],
                       gold=None if self.gold is None else self.gold[tasks],
                       features=None if self.features is None else self.features[tasks], meta=dict(self.meta))

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
        classes: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> "CrowdData":
        """From crowd-kit's long DataFrame with columns ``task``, ``worker``, ``label``.

        The classes (what the aggregators return) are, in this order of precedence:

        * ``classes``: the given label values (every label must be one of them; classes nobody
          chose keep their column);
        * ``class_names`` (display names, one per class): string labels must be these names;
          integer labels are codes in ``[0, len(class_names))`` and the classes are those codes;
        * ``n_classes``: integer labels are codes in ``[0, n_classes)``;
        * otherwise the sorted distinct labels.

        ``1`` and ``1.0`` are one class; labels mixing strings and numbers are refused.
        ``task_ids`` fixes the task order and may include tasks without answers.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a DataFrame with columns task, worker, label, got {type(df).__name__}")
        missing = {"task", "worker", "label"} - set(df.columns)
        if missing:
            raise ValueError(f"answers DataFrame lacks column(s) {sorted(missing)}; expected task, worker, label")
        if len(df) == 0:
            raise ValueError("empty dataset: no answers")
        if df[["task", "worker", "label"]].isna().any().any():
            raise ValueError("answers DataFrame holds missing values in task, worker or label")
        labels = df["label"]
        kind = _label_kind(labels)
        if classes is not None:
            cls_index = pd.Index(classes)
            if len(cls_index) == 0:
                raise ValueError("classes is empty")
            if not cls_index.is_unique:
                raise ValueError(f"classes holds duplicates: {cls_index[cls_index.duplicated()].tolist()[:5]}")
            class_kind = _label_kind(pd.Series(cls_index))
            if class_kind != kind:
                raise ValueError(f"labels are {kind}s but classes are {class_kind}s: labels "
                                 f"{pd.unique(labels)[:3].tolist()}, classes {cls_index[:5].tolist()}")
            codes = np.asarray(cls_index.get_indexer(labels), dtype=np.int64)
            if (codes < 0).any():
                unknown = pd.unique(labels[codes < 0])[:5].tolist()
                raise ValueError(f"unknown label(s) {unknown} not in classes {cls_index[:20].tolist()}")
            if class_names is not None and len(class_names) != len(cls_index):
                raise ValueError(f"class_names has {len(class_names)} entries for {len(cls_index)} classes")
        elif class_names is not None:
            class_names = [str(c) for c in class_names]
            if kind == "number":
                codes = _integer_codes(labels, len(class_names), "class_names")
                cls_index = pd.Index(np.arange(len(class_names), dtype=np.int64))
            else:
                lookup = pd.Index(class_names)
                codes = np.asarray(lookup.get_indexer(labels.astype(str)), dtype=np.int64)
                if (codes < 0).any():
                    unknown = sorted({str(v) for v in pd.unique(labels[codes < 0])})
                    raise ValueError(f"unknown label(s) {unknown[:5]}; classes are {class_names}")
                cls_index = pd.Index(class_names)
        elif n_classes is not None:
            if kind != "number":
                raise ValueError(f"n_classes applies to integer label codes, but the labels are {kind}s "
                                 f"(e.g. {labels.iloc[0]!r}); pass classes= to list the classes")
            codes = _integer_codes(labels, n_classes, "n_classes")
            cls_index = pd.Index(np.arange(int(n_classes), dtype=np.int64))
        else:
            cls_index = pd.Index(pd.unique(labels))
            try:
                cls_index = cls_index.sort_values()
            except TypeError:  # e.g. bools among numbers in an object column
                cls_index = pd.Index(_sort_mixed(cls_index))
            codes = np.asarray(cls_index.get_indexer(labels), dtype=np.int64)
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
        return cls(t_codes, w_codes, codes, len(t_uniq), len(w_uniq), len(cls_index), t_uniq, w_uniq, class_names,
                   classes=cls_index, **kwargs)

    @classmethod
    def from_answers_json(
        cls,
        source: str | PathLike | Mapping[Any, Mapping[Any, Any]],
        n_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        classes: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> "CrowdData":
        """From peerannot's ``answers.json``: ``{task: {worker: label}}`` (a path or the loaded dict).

        Ids are strings there: they become integers only when every task key (resp. worker key)
        is a canonical decimal integer (then ``"10"`` sorts after ``"9"``); otherwise they stay
        strings, so ``"1"``, ``"01"`` and ``"1.0"`` are distinct. Labels are integers (``1.0`` is
        read as ``1``; ``1.7`` is an error) or strings; classes as in :meth:`from_dataframe`.
        """
        where = "answers.json"
        if isinstance(source, (str, PathLike)):
            where = str(source)
            try:
                with open(source) as fh:
                    source = json.load(fh)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where} is not valid JSON: {err}") from err
        if not isinstance(source, Mapping):
            raise ValueError(f"{where} must hold an object {{task: {{worker: label}}}}, got a {type(source).__name__}")
        rows = []
        for t, answers in source.items():
            if not isinstance(answers, Mapping):
                raise ValueError(f"{where}: task {t!r} maps to a {type(answers).__name__} ({str(answers)[:40]}); "
                                 "expected {task: {worker: label}}")
            for w, lab in answers.items():
                if isinstance(lab, bool) or not isinstance(lab, (numbers.Real, str)):
                    raise ValueError(f"{where}: the label of task {t!r}, worker {w!r} is {lab!r}; expected an "
                                     "integer class code or a class name")
                if isinstance(lab, numbers.Real) and not isinstance(lab, numbers.Integral):
                    if not np.isfinite(lab) or lab != int(lab):
                        raise ValueError(f"{where}: the label of task {t!r}, worker {w!r} is {lab!r}, not an integer "
                                         "class code (labels are never truncated)")
                    lab = int(lab)
                rows.append((str(t), str(w), lab))
        if not rows:
            raise ValueError(f"empty dataset: {where} holds no answer")
        df = pd.DataFrame(rows, columns=["task", "worker", "label"])
        all_tasks = _json_ids(np.array([str(t) for t in source.keys()], dtype=object))
        df["task"] = _json_ids(df["task"].to_numpy(dtype=object))
        df["worker"] = _json_ids(df["worker"].to_numpy(dtype=object))
        if len(set(all_tasks.tolist())) != len(all_tasks):
            raise ValueError(f"{where}: task keys repeat once read as strings")
        task_ids = None
        if len(all_tasks) > df["task"].nunique():  # keep tasks listed without answers so the caller sees them
            task_ids = _factorize_sorted(all_tasks)[1]
        return cls.from_dataframe(df, n_classes=n_classes, class_names=class_names, task_ids=task_ids,
                                  classes=classes, **kwargs)

    def to_answers_json(self, path: str | PathLike | None = None) -> dict[str, dict[str, Any]]:
        """peerannot's format, keyed by original ids (as strings); written to ``path`` when given.

        Labels are the original integer labels when the classes are integers, else the class codes
        (peerannot's labels are integer codes).
        """
        integer_classes = pd.api.types.is_integer_dtype(self.classes.dtype)
        values = self.classes.to_numpy()[self.label] if integer_classes else self.label
        out: dict[str, dict[str, Any]] = {}
        for t, w, lab in zip(self.task_ids[self.task], self.worker_ids[self.worker], values):
            out.setdefault(str(t), {})[str(w)] = int(lab)
        if path is not None:
            Path(path).write_text(json.dumps(out))
        return out


def _show(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_number(v: Any) -> bool:
    return isinstance(v, (numbers.Number, np.number)) and not isinstance(v, (bool, np.bool_))


def _label_kind(labels: pd.Series) -> str:
    """"number", "string" or "bool" for a label column; mixed strings and numbers are an error."""
    dtype = labels.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_float_dtype(dtype) and not np.isfinite(labels.to_numpy(dtype=float)).all():
            raise ValueError("labels hold infinite values")
        return "number"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "string"
    odd = next((v for v in labels.to_numpy() if not isinstance(v, (str, bool, np.bool_)) and not _is_number(v)), None)
    if odd is not None:
        raise ValueError(f"labels must be strings or numbers, got {type(odd).__name__} {odd!r}")
    values = pd.unique(labels)
    n_str = sum(isinstance(v, str) for v in values)
    n_num = sum(_is_number(v) for v in values)
    if n_str and n_num:
        s = next(v for v in values if isinstance(v, str))
        n = next(v for v in values if _is_number(v))
        raise ValueError(f"labels mix strings and numbers (e.g. {s!r} and {n!r}): 1 and 1.0 are one class but '1' "
                         "is not 1; convert the label column to one type")
    if n_num and not np.isfinite(np.asarray([float(v) for v in values if _is_number(v)])).all():
        raise ValueError("labels hold infinite values")
    return "string" if n_str else ("number" if n_num else "bool")


def _integer_codes(labels: pd.Series, n_classes: int, what: str) -> np.ndarray:
    """Integer label codes in [0, n_classes); an error for non-integral or out-of-range labels."""
    values = labels.to_numpy(dtype=float)
    if not np.all(values == np.round(values)):
        bad = pd.unique(labels[values != np.round(values)])[:5].tolist()
        raise ValueError(f"labels {bad} are not integer class codes (with {what}, labels are codes 0..{n_classes - 1})")
    codes = values.astype(np.int64)
    out = (codes < 0) | (codes >= n_classes)
    if out.any():
        raise ValueError(f"unknown label(s) {np.unique(codes[out])[:5].tolist()} not in [0, {n_classes}) "
                         f"({what}={n_classes})")
    return codes


def _sort_key(v: Any) -> tuple:
    if _is_number(v) or isinstance(v, (bool, np.bool_)):
        return (0, float(v), "")
    if isinstance(v, str):
        return (1, 0.0, v)
    return (2, 0.0, f"{type(v).__name__}:{v!r}")


def _sort_mixed(values: Any) -> np.ndarray:
    """Distinct values, numbers first (numeric order) then strings: deterministic for any row order."""
    uniq = pd.unique(np.asarray(values, dtype=object))
    out = np.empty(len(uniq), dtype=object)
    out[:] = sorted(uniq, key=_sort_key)
    return out


def _factorize_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and sorted distinct values; ids of mixed types are ordered numbers first, then strings."""
    try:
        uniq, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64).ravel(), uniq
    except TypeError:
        uniq = _sort_mixed(values)
        codes = pd.Index(uniq).get_indexer(np.asarray(values, dtype=object))
        return np.asarray(codes, dtype=np.int64), uniq


def _json_ids(keys: np.ndarray) -> np.ndarray:
    """answers.json keys (strings): integers when every key is a canonical decimal integer, else the strings."""
    canonical = all(k.isascii() and k.isdigit() and (k == "0" or not k.startswith("0")) or
                    (k.startswith("-") and k[1:].isascii() and k[1:].isdigit() and not k[1:].startswith("0")) for k in keys)
    if canonical and len(keys):
        return np.array([int(k) for k in keys], dtype=np.int64)
    return keys


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
