"""Cumulative task-duration buckets, read from what a target already keeps.

A pool keeps the run times of its last 4096 tasks (a limiter its last 4096 request
latencies, a Dask view those finished since it started) and counts every finished
task. :class:`TaskDurations` reads, at each controller tick and at each scrape, the
run times of the tasks finished since its previous read, and adds them to cumulative
bucket counts, so the histogram is a real one (monotonic counts since the exporter
first saw the target) and nothing is added to the pool's hot path.

It is exact while fewer tasks finish between two reads than the target keeps (4096
between ticks 0.5 s apart: 8,000 tasks/s). Beyond that, the durations it read stand
for the others: each bucket grows by its share of the read ones times the number
finished, ``count`` stays exact, and ``estimated`` counts the tasks whose bucket was
so estimated. Tasks finished before the exporter first saw the target are included
only when the target still keeps all of their run times.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BUCKETS", "TaskDurations"]

#: Upper bounds (s) of the task-duration buckets: 100 us .. 10 s (the pool's tasks
#: run from microseconds to seconds; Prometheus's default buckets start at 5 ms).
BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                              0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _recent(target: Any, st: Any, n: int) -> list[float]:
    """Run times of up to ``n`` most recent tasks of ``target``."""
    get = getattr(target, "recent_task_times", None)
    if get is not None:
        return list(get(n))
    return list(getattr(st, "task_times", ()))[-n:]


class TaskDurations:
    """Cumulative bucket counts of a target's task run times (see the module doc)."""

    def __init__(self, bounds: Sequence[float] = BUCKETS) -> None:
        b = [float(x) for x in bounds]
        if not b or any(x <= 0 for x in b) or b != sorted(set(b)):
            raise ValueError(f"bounds must be increasing positive numbers, got {bounds!r}")
        self.bounds = tuple(b)
        self._edges = np.asarray(b)
        self._counts = np.zeros(len(b) + 1)  # per bucket, the last one above every bound
        self.count = 0
        self.sum = 0.0
        self.estimated = 0
        self._seen: int | None = None  # finished tasks at the previous read
        self._lock = threading.Lock()

    def update(self, target: Any, st: Any) -> None:
        """Add the tasks finished since the previous read (``st``: the target's stats
        now; its ``completed + failed`` counts finished tasks)."""
        finished = int(st.completed) + int(st.failed)
        with self._lock:
            seen = self._seen
            if seen is not None and finished < seen:  # counters went back (a restart)
                seen = None
                self._seen = finished
                return
            n = finished if seen is None else finished - seen
            if n <= 0:
                self._seen = finished
                return
            times = _recent(target, st, n)
            self._seen = finished
            if seen is None and len(times) < n:  # the history is not all kept: from now
                return
            self._add(times, n)

    def _add(self, times: list[float], n: int) -> None:
        m = len(times)
        if m == 0:  # nothing read: leave them out rather than guess
            return
        arr = np.asarray(times, dtype=float)
        idx = np.searchsorted(self._edges, arr, side="left")  # first bound >= t
        per = np.bincount(idx, minlength=len(self._counts)).astype(float)
        if m < n:
            scale = n / m
            per *= scale
            self.sum += float(arr.sum()) * scale
            self.estimated += n - m
        else:
            self.sum += float(arr.sum())
        self._counts += per
        self.count += n

    def buckets(self) -> tuple[list[tuple[float, float]], int, float]:
        """``([(bound, cumulative count), ...], count, sum)``; the ``+Inf`` bucket is
        ``count``."""
        with self._lock:
            cum = np.cumsum(self._counts[:-1])
            count, total = self.count, self.sum
        # estimated buckets are fractional: keep them below the exact count
        pairs = zip(self.bounds, cum, strict=True)
        return [(b, min(float(c), count)) for b, c in pairs], count, total
