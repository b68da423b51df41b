"""The scheduler side of the Dask integration: :class:`TaskCounter`.

A scheduler plugin (registered over the scheduler comm, so it works for in-process
and remote schedulers alike, provided adaptive_lab is importable on the scheduler)
that counts finished tasks, keeps their compute times and answers an
``adaptive_lab_snapshot`` request with the scheduler's load. Kept apart from the
client side so the scheduler imports only this small module.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

__all__ = ["PLUGIN_NAME", "SNAPSHOT_HANDLER", "TaskCounter"]

NAN = float("nan")
PLUGIN_NAME = "adaptive-lab-task-counter"
#: The scheduler handler :class:`TaskCounter` adds (``scheduler.adaptive_lab_snapshot``).
SNAPSHOT_HANDLER = "adaptive_lab_snapshot"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else NAN


class TaskCounter(SchedulerPlugin):
    """Scheduler plugin: counts finished tasks and keeps their compute times.

    On ``start`` it adds the scheduler handler ``adaptive_lab_snapshot(since)``, which
    returns :meth:`snapshot`: the load (processing, queued, unrunnable, occupancy),
    the workers' mean CPU and memory, cumulative completed/failed counters and the
    compute times of tasks finished after the ``since``-th.
    """

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self, keep: int = 4096) -> None:
        self.keep = int(keep)
        self.completed = 0
        self.failed = 0
        self.durations: deque[float] = deque(maxlen=self.keep)
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        scheduler.handlers[SNAPSHOT_HANDLER] = self.snapshot

    def transition(self, key: Any, start: str, finish: str, *args: Any,
                   stimulus_id: str | None = None, **kwargs: Any) -> None:
        if start != "processing":
            return
        if finish == "memory":
            self.completed += 1
            compute = sum(ss["stop"] - ss["start"] for ss in kwargs.get("startstops") or ()
                          if ss.get("action") == "compute")
            self.durations.append(float(compute))
        elif finish == "erred":
            self.failed += 1

    def snapshot(self, since: int = 0) -> dict[str, Any]:
        """The scheduler's load now, plus compute times of tasks finished after ``since``."""
        s = self.scheduler
        workers = list(s.workers.values()) if s is not None else []
        processing = busy_threads = busy_workers = waiting_on_workers = threads = 0
        cpu: list[float] = []
        raw_cpu: list[float] = []
        mem: list[float] = []
        rss = avail = 0.0
        for ws in workers:
            n = len(ws.processing)
            processing += n
            threads += ws.nthreads
            busy_threads += min(n, ws.nthreads)
            busy_workers += n > 0
            waiting_on_workers += max(0, n - ws.nthreads)
            m = ws.metrics or {}
            if "cpu" in m:
                raw_cpu.append(float(m["cpu"]))
                cpu.append(min(100.0, float(m["cpu"]) / max(1, ws.nthreads)))
            if "memory" in m:
                rss += m["memory"]
                if ws.memory_limit:
                    mem.append(100.0 * m["memory"] / ws.memory_limit)
                    avail += max(0.0, ws.memory_limit - m["memory"])
        finished = self.completed
        new = max(0, min(finished - int(since), len(self.durations)))
        return {
            "workers": len(workers), "threads": threads, "processing": processing,
            "busy_workers": busy_workers, "busy_threads": busy_threads,
            "waiting_on_workers": waiting_on_workers,
            "queued": len(s.queued) if s is not None else 0,
            "unrunnable": len(s.unrunnable) if s is not None else 0,
            "occupancy": float(s.total_occupancy) if s is not None else 0.0,
            "cpu_percent": _mean(cpu), "process_cpu_percent": _mean(raw_cpu),
            "memory_percent": _mean(mem), "rss_mb": rss / 2**20,
            "available_mb": avail / 2**20 if mem else NAN,
            "completed": finished, "failed": self.failed,
            "durations": list(self.durations)[len(self.durations) - new:] if new else [],
        }
