"""Sub-crowds: fewer answers per task, fewer workers. Both keep every answer's (task, worker, label)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from crowd.data.crowd_data import CrowdData

__all__ = ["cap_answers", "drop_idle_workers"]


def cap_answers(data: CrowdData, max_per_task: int, seed: int = 0) -> CrowdData:
    """Keep at most ``max_per_task`` answers per task, drawn uniformly at random (seeded)."""
    if max_per_task < 1:
        raise ValueError(f"max_per_task must be >= 1, got {max_per_task}")
    keys = np.random.default_rng(seed).random(data.n_answers)
    order = np.lexsort((keys, data.task))  # by task, random within a task
    first = np.searchsorted(data.task[order], data.task[order], side="left")
    rank = np.empty(data.n_answers, dtype=np.int64)
    rank[order] = np.arange(data.n_answers) - first
    return data.subset_answers(rank < max_per_task)


def drop_idle_workers(data: CrowdData) -> CrowdData:
    """The same answers with workers re-coded 0..m-1 over those who answered at least once.

    Pruning tasks (``subset_tasks``) keeps every worker code, and a worker left without answers
    has no Dawid-Skene confusion (0/0): the aggregators and the WAUM trust scores see only the
    workers present. Returns ``data`` itself when every worker answered.
    """
    used = np.flatnonzero(data.answers_per_worker() > 0)
    if len(used) == data.n_workers:
        return data
    new_code = np.full(data.n_workers, -1, dtype=np.int64)
    new_code[used] = np.arange(len(used))
    return replace(data, worker=new_code[data.worker], n_workers=len(used), worker_ids=data.worker_ids[used],
                   meta=dict(data.meta))
