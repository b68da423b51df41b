"""Measuring: cores, system samples (psutil, non-blocking) and the seed's task metrics.

Pure helpers (percentiles, :class:`WorkerPoolMetrics`) are kept apart from the one
class that reads the machine (:class:`PsutilMetrics`). :class:`ScriptedMetrics` is the
public test double: it replays given values so tests and simulations run without
touching psutil.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adaptive_lab._host import available_cores

NAN = float("nan")


@dataclass(frozen=True)
class SystemSample:
    """One reading of the machine: percentages 0-100, memory in MiB (NaN if unknown).

    ``cores`` is the number of CPUs ``process_cpu_percent`` is relative to, so a policy
    can turn it into cores busy (NaN if unknown). ``process_user_cpu_percent`` is the
    user-mode part of it: Python code (and C code it calls) rather than the kernel's
    I/O work, which tells a GIL-bound process from a disk-bound one at the same CPU %.
    """

    cpu_percent: float = NAN
    memory_percent: float = NAN
    available_mb: float = NAN
    process_cpu_percent: float = NAN
    rss_mb: float = NAN
    cores: float = NAN
    process_user_cpu_percent: float = NAN


class MetricsSource(Protocol):
    """Anything with ``read() -> SystemSample``."""

    def read(self) -> SystemSample: ...


def _user_seconds() -> float:
    """This process's user-mode CPU seconds: ``getrusage`` (microseconds) where it
    exists, else ``os.times()`` (10 ms ticks)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return os.times().user
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


class PsutilMetrics:
    """Non-blocking readings: system CPU % since the previous call (never ``interval=0.1``,
    which blocks for 100 ms), memory %, available MiB, this process's CPU % from
    ``time.process_time()`` (cheap, precise, not polluted by other tenants) and RSS.
    """

    def __init__(self, cores: int | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._proc = psutil.Process()
        self._cores = cores or available_cores()
        psutil.cpu_percent(None)  # prime: the first call has no reference point
        self._last_wall = time.monotonic()
        self._last_cpu = self._cpu_seconds()
        self._last_user = _user_seconds()

    @staticmethod
    def _cpu_seconds() -> float:
        # CLOCK_PROCESS_CPUTIME_ID: nanoseconds. os.times() counts 10 ms ticks, i.e. 5 %
        # steps over a 0.1 s window on 2 cores, too coarse for short windows.
        return time.process_time()

    def read(self) -> SystemSample:
        now, cpu_s, user_s = time.monotonic(), self._cpu_seconds(), _user_seconds()
        wall = now - self._last_wall
        scale = 100.0 / (wall * self._cores) if wall > 0 else NAN
        proc = (cpu_s - self._last_cpu) * scale
        user = (user_s - self._last_user) * scale
        self._last_wall, self._last_cpu, self._last_user = now, cpu_s, user_s
        vm = self._psutil.virtual_memory()
        return SystemSample(
            cpu_percent=float(self._psutil.cpu_percent(None)),
            memory_percent=float(vm.percent),
            available_mb=vm.available / 2**20,
            process_cpu_percent=min(100.0, max(0.0, proc)) if math.isfinite(proc) else NAN,
            rss_mb=self._proc.memory_info().rss / 2**20,
            cores=float(self._cores),
            process_user_cpu_percent=min(100.0, max(0.0, user)) if math.isfinite(user)
            else NAN,
        )


class ScriptedMetrics:
    """A metrics source that replays scripted readings (a public test double).

    ``values`` is a sequence of :class:`SystemSample` or dicts (the last one repeats
    when exhausted), or a callable ``f(i) -> SystemSample | dict``. An item that is an
    exception instance is raised, to test error handling.
    """

    def __init__(self, values: Sequence[SystemSample | dict | BaseException]
                 | Callable[[int], SystemSample | dict]) -> None:
        self._values = values
        self.calls = 0

    def read(self) -> SystemSample:
        i = self.calls
        self.calls += 1
        v: SystemSample | dict | BaseException
        if callable(self._values):
            v = self._values(i)
        else:
            if not self._values:
                return SystemSample()
            v = self._values[min(i, len(self._values) - 1)]
        if isinstance(v, BaseException):
            raise v
        return v if isinstance(v, SystemSample) else SystemSample(**v)


def _interp(s: Sequence[float], q: float) -> float:
    # Linear interpolation (numpy's default) at fraction q of the sorted sequence s.
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0-100) of ``values``; NaN when empty."""
    if len(values) == 0:
        return NAN
    return _interp(sorted(values), q / 100.0)


def latency_stats(times: Sequence[float]) -> tuple[float, float, float]:
    """Mean, p50 and p95 of task times (NaN when none finished).

    Short windows use plain Python: ``np.percentile`` costs tens of microseconds of
    overhead, which dominated simulated runs of thousands of controller ticks.
    """
    n = len(times)
    if n == 0:
        return NAN, NAN, NAN
    if n <= 64:
        s = sorted(times)
        return sum(s) / n, _interp(s, 0.50), _interp(s, 0.95)
    import numpy as np

    a = np.asarray(times, dtype=np.float64)
    p50, p95 = np.percentile(a, (50, 95))
    return float(a.mean()), float(p50), float(p95)


@dataclass
class WorkerPoolMetrics:
    """The seed's performance tracking.

    A window of the last ``window`` (100) task times; the baseline is the mean of the
    first ``baseline_size`` (50) tasks ever recorded; gain % =
    ``(baseline - current) / baseline * 100`` where current is the window's mean
    (positive = tasks got faster).
    """

    window: int = 100
    baseline_size: int = 50
    task_times: deque = field(default_factory=deque)
    baseline_times: list = field(default_factory=list)
    total_tasks: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.baseline_size < 1:
            raise ValueError(f"baseline_size must be >= 1, got {self.baseline_size}")
        self.task_times = deque(self.task_times, maxlen=self.window)

    @classmethod
    def from_times(cls, baseline_times: Iterable[float], recent: Iterable[float],
                   total_tasks: int | None = None) -> WorkerPoolMetrics:
        m = cls()
        m.baseline_times = list(baseline_times)[: m.baseline_size]
        m.task_times.extend(recent)
        m.total_tasks = len(m.task_times) if total_tasks is None else total_tasks
        return m

    def record(self, seconds: float) -> None:
        """Record one task's run time in seconds."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"task time must be a finite number >= 0, got {seconds!r}")
        self.task_times.append(seconds)
        if len(self.baseline_times) < self.baseline_size:
            self.baseline_times.append(seconds)
        self.total_tasks += 1

    @property
    def baseline(self) -> float | None:
        """Mean of the first ``baseline_size`` tasks, once that many were recorded."""
        if len(self.baseline_times) < self.baseline_size:
            return None
        return sum(self.baseline_times) / len(self.baseline_times)

    @property
    def current_average(self) -> float | None:
        """Mean task time over the window (None before any task)."""
        if not self.task_times:
            return None
        return sum(self.task_times) / len(self.task_times)

    @property
    def performance_gain(self) -> float:
        """Gain % of the window's mean over the baseline (0.0 until both exist)."""
        base, cur = self.baseline, self.current_average
        if base is None or cur is None or base <= 0:
            return 0.0
        return (base - cur) / base * 100.0

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "total_tasks": self.total_tasks,
            "window_size": len(self.task_times),
            "baseline_task_time": self.baseline,
            "avg_task_time": self.current_average,
            "performance_gain_percent": self.performance_gain,
        }
