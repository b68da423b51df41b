"""Measuring one benchmark run and summarising numbers: instruments (timed
executors, a resource sampler thread) and pure statistics.

Used by :mod:`adaptive_lab.bench.runner` and :mod:`adaptive_lab.bench.report`
(aggregates and verdicts). The statistics are pure functions, so the tests check them
against values worked out by hand.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import _base as _futures_base
from typing import Any

import numpy as np

__all__ = [
    "ResourceSampler",
    "TaskTimer",
    "TimedThreadPoolExecutor",
    "converge_time",
    "describe",
    "direction_changes",
    "resource_stats",
    "steady_after",
    "task_stats",
    "timed_pool_class",
    "timeline",
]

CPU_WINDOW = 0.25  # seconds: CPU % is measured over windows this long


class TaskTimer:
    """Collects the run time of every task submitted through a timed executor."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        times, perf = self.times, time.perf_counter

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                times.append(perf() - t0)  # list.append is atomic under the GIL
        return timed


class _QuickCancelFuture(Future):
    """A Future whose ``cancel()`` of a cancelled or finished future skips the lock.

    Harness only: after a cancel the scanner re-cancels every pending future each time
    one completes (quadratic in the batches in flight: seconds with 1024 of them).
    This changes nothing before the time cap; it only shortens the wind-down after.
    """

    def cancel(self) -> bool:
        state = self._state  # CANCELLED* and FINISHED are final: no lock needed
        if state in _CANCELLED_STATES:
            return True
        if state == _futures_base.FINISHED:
            return False
        return super().cancel()


_CANCELLED_STATES = (_futures_base.CANCELLED, _futures_base.CANCELLED_AND_NOTIFIED)


def _quick_cancel(f: Future) -> Future:
    if type(f) is Future:
        f.__class__ = _QuickCancelFuture
    return f


class TimedThreadPoolExecutor(ThreadPoolExecutor):
    """A real ``ThreadPoolExecutor`` whose tasks are timed (about 1 us per task)."""

    def __init__(self, timer: TaskTimer, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="bench-tpe")
        self._timer = timer

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return _quick_cancel(super().submit(self._timer.wrap(fn), *args, **kwargs))

    def workers_alive(self) -> tuple[int, int]:
        n = len(self._threads)
        return n, n


def timed_pool_class() -> type:
    from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor

    class _TimedPool(AdaptiveThreadPoolExecutor):
        """Our pool with the same task timing as :class:`TimedThreadPoolExecutor`."""

        _bench_timer: TaskTimer

        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            return _quick_cancel(super().submit(self._bench_timer.wrap(fn), *args, **kwargs))

        def workers_alive(self) -> tuple[int, int]:
            st = self.stats()
            return st.size, st.alive

    return _TimedPool


class ResourceSampler:
    """Samples this process's CPU seconds, RSS and the pool's size every ``period`` s.

    ``executor.workers_alive()`` must return ``(size, alive)``. Rows are
    ``(t, size, alive, cpu_seconds, rss_mb)``; CPU seconds are cumulative
    (``os.times()``), so CPU % can be computed over any window afterwards.
    """

    def __init__(self, executor: Any, period: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process()
        self._ex = executor
        self.period = period
        self.rows: list[tuple[float, int, int, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self.t0 = time.perf_counter()

    def start(self) -> ResourceSampler:
        self.t0 = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def _sample(self) -> None:
        t = os.times()
        size, alive = self._ex.workers_alive()
        self.rows.append((time.perf_counter() - self.t0, size, alive, t.user + t.system,
                          self._proc.memory_info().rss / 2**20))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def stop(self) -> np.ndarray:
        """Stop, take a last sample, and return the rows as an (n, 5) array."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return np.array(self.rows, dtype=np.float64).reshape(-1, 5)


def cores() -> int:
    """CPUs this process may run on (CPU % is relative to all of them, 0-100)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1  # pragma: no cover


def _finite(x: float) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def task_stats(times: Sequence[float]) -> dict[str, Any]:
    """Count, p50 and p95 of task run times in ms (a task is one scanner batch)."""
    if not times:
        return {"tasks": 0, "task_p50_ms": None, "task_p95_ms": None}
    p50, p95 = np.percentile(np.asarray(times), (50, 95)) * 1000
    return {"tasks": len(times), "task_p50_ms": float(p50), "task_p95_ms": float(p95)}


def cpu_percent(rows: np.ndarray, grid: np.ndarray, ncores: int) -> np.ndarray:
    """Process CPU % of all cores over each interval of ``grid`` (cumulative CPU
    seconds interpolated at the grid points)."""
    if len(rows) < 2 or len(grid) < 2:
        return np.empty(0)
    cum = np.interp(grid, rows[:, 0], rows[:, 3])
    return 100.0 * np.diff(cum) / np.diff(grid) / ncores


def resource_stats(rows: np.ndarray, ncores: int | None = None) -> dict[str, Any]:
    """Peak CPU % (over 0.25 s windows), peak RSS, mean/max live workers and
    worker-seconds (the integral of live workers over time: the cost)."""
    if len(rows) == 0:
        return {"peak_cpu_percent": None, "peak_rss_mb": None, "mean_workers": None,
                "max_workers": None, "worker_seconds": None}
    ncores = ncores or cores()
    t, alive, rss = rows[:, 0], rows[:, 2], rows[:, 4]
    span = float(t[-1] - t[0])
    ws = float(np.sum((alive[1:] + alive[:-1]) * np.diff(t)) / 2) if len(t) > 1 else 0.0
    if span > CPU_WINDOW:
        starts = np.arange(t[0], t[-1] - CPU_WINDOW + 1e-9, CPU_WINDOW / 5)
        a = np.interp(starts, t, rows[:, 3])
        b = np.interp(starts + CPU_WINDOW, t, rows[:, 3])
        peak = float(np.max(100.0 * (b - a) / CPU_WINDOW / ncores))
    elif span > 0:
        peak = 100.0 * float(rows[-1, 3] - rows[0, 3]) / span / ncores
    else:
        peak = float("nan")
    return {"peak_cpu_percent": _finite(peak), "peak_rss_mb": float(rss.max()),
            "max_workers": int(alive.max()),
            "mean_workers": ws / span if span > 0 else float(alive.mean()),
            "worker_seconds": ws}


def timeline(rows: np.ndarray, done_times: np.ndarray, step: float = 0.25,
             ncores: int | None = None) -> dict[str, list]:
    """Pool size, live workers, CPU %, RSS and files/s on a ``step``-second grid
    (the value at each grid time; rates over the interval that ends there)."""
    keys = ("t", "workers", "alive", "cpu_percent", "rss_mb", "files_per_s")
    if len(rows) == 0:
        return {k: [] for k in keys}
    grid = np.arange(0.0, float(rows[-1, 0]) + step, step)
    idx = np.clip(np.searchsorted(rows[:, 0], grid, side="right") - 1, 0, len(rows) - 1)
    r = rows[idx]
    counts = np.histogram(done_times, bins=grid)[0] if len(grid) > 1 else np.empty(0)
    cpu = cpu_percent(rows, grid, ncores or cores())
    return {"t": [round(x, 3) for x in grid.tolist()],
            "workers": r[:, 1].astype(int).tolist(), "alive": r[:, 2].astype(int).tolist(),
            "cpu_percent": [None, *(round(float(c), 1) for c in cpu)],
            "rss_mb": [round(x, 1) for x in r[:, 4].tolist()],
            "files_per_s": [None, *(counts / step).round(1).tolist()]}


def direction_changes(sizes: Sequence[int]) -> int:
    """How often a sequence of pool sizes reverses direction (up then down or back);
    repeated values (holds) do not count."""
    changes, last = 0, 0
    for a, b in itertools.pairwise(sizes):
        d = (b > a) - (b < a)
        if d and last and d != last:
            changes += 1
        if d:
            last = d
    return changes


def converge_time(done_times: np.ndarray, step_at: float, target: float, end: float,
                  window: float = 0.5, grid: float = 0.05) -> float | None:
    """Seconds from ``step_at`` to the end of the first ``window`` lying wholly after
    the step whose throughput is >= ``target`` files/s; None if never before ``end``."""
    if not np.isfinite(target) or target <= 0:
        return None
    ends = np.arange(step_at + window, end + 1e-9, grid)
    if len(ends) == 0:
        return None
    t = np.sort(done_times)
    counts = np.searchsorted(t, ends, side="right") - np.searchsorted(t, ends - window,
                                                                      side="right")
    hit = np.nonzero(counts / window >= target)[0]
    return float(ends[hit[0]] - step_at) if len(hit) else None


def steady_after(done_times: np.ndarray, start: float, end: float) -> float:
    """Files/s completed in ``[start, end]`` (NaN if the interval is empty)."""
    if end <= start:
        return float("nan")
    n = np.count_nonzero((done_times >= start) & (done_times <= end))
    return n / (end - start)


def describe(values: Sequence[float | None]) -> dict[str, Any]:
    """Median, min, max and count of the finite values (None when there are none)."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "n": len(v)}
