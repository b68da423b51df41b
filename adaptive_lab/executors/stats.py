"""What a resizable pool reports (:class:`PoolStats`), and how the thread pool counts.

Every mechanism offers ``stats() -> PoolStats``. The thread pool counts without a lock
on its hot path: each worker writes only its own :class:`WorkerState`, and a
:class:`WorkerRegistry` keeps the live states and the totals of the workers gone, and
sums them when asked. CPU time is read then too, from each live thread's CPU clock,
so it costs nothing per task.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["PoolStats", "WorkerRegistry", "WorkerState"]

NAN = float("nan")
_TASK_TIMES = 4096  # recent task run times kept for latency percentiles
_FIRST_TIMES = 50  # run times of the first tasks, kept as a baseline
_PRUNE = 64  # gone threads remembered before the finished ones are dropped
_cpu_clock_id: Callable[[int], int] | None = getattr(time, "pthread_getcpuclockid", None)


@dataclass(frozen=True)
class PoolStats:
    """A cheap snapshot of a pool.

    ``completed`` counts tasks that returned, ``failed`` those that raised, and
    ``cancelled`` those cancelled before they ran; ``queued`` tasks wait to start.
    ``task_times`` are the run times (s) of the most recent tasks (up to 100).
    ``task_cpu_seconds`` is the CPU time (s) the worker threads have used since the
    pool started, gone workers included; NaN where thread CPU clocks cannot be read.
    """

    size: int
    alive: int
    busy: int
    idle: int
    queued: int
    submitted: int
    completed: int
    failed: int
    cancelled: int
    task_times: tuple[float, ...]
    task_cpu_seconds: float = NAN
    shutdown: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["task_times"] = list(self.task_times)
        return d


class WorkerState:
    """Counters of one worker, written only by that worker's thread."""

    __slots__ = ("cancelled", "clock_id", "completed", "failed", "first", "taken",
                 "thread", "times")
    thread: threading.Thread  # set by the pool right after creation

    def __init__(self, times: deque[float], first: list[float]) -> None:
        self.taken = self.completed = self.failed = self.cancelled = 0
        self.times = times  # the pool's recent run times (shared; append is atomic)
        self.first: list[float] | None = first  # the pool's first ones, until full
        self.clock_id: int | None = None  # the thread's CPU clock, read by snapshot()

    def timed(self, dt: float) -> None:
        """Keep the run time of a task this worker ran."""
        self.times.append(dt)
        if self.first is not None:
            if len(self.first) < _FIRST_TIMES:
                self.first.append(dt)
            else:
                self.first = None


class WorkerRegistry:
    """The live workers of a pool, the totals of those gone, and how many should leave.

    ``excess`` (workers that should leave) is read by every worker after each task;
    ``tokens`` counts the retire tokens on the pool's queue. ``lock`` guards it all,
    so that a worker leaves and is forgotten in one step.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.alive = 0
        self.excess = 0
        self.tokens = 0
        self.task_times: deque[float] = deque(maxlen=_TASK_TIMES)
        self.first_times: list[float] = []
        self._states: set[WorkerState] = set()
        self._leaving: set[threading.Thread] = set()  # gone, maybe still running
        self._gone = [0, 0, 0, 0]  # taken, completed, failed, cancelled
        self._gone_cpu = 0.0

    def new_state(self) -> WorkerState:
        return WorkerState(self.task_times, self.first_times)

    def add(self, state: WorkerState) -> None:
        """Count ``state`` (its thread set, maybe not started) as a live worker."""
        with self.lock:
            self.alive += 1
            self._states.add(state)

    def forget(self, state: WorkerState, cpu: float) -> None:
        """Move a worker's counts (and ``cpu``, its thread's CPU seconds, read under
        the lock) to the totals of the workers gone. Caller holds ``lock``."""
        if state not in self._states:
            return
        self._states.discard(state)
        g = self._gone
        g[0] += state.taken
        g[1] += state.completed
        g[2] += state.failed
        g[3] += state.cancelled
        self._gone_cpu += cpu
        self.alive -= 1
        if len(self._leaving) >= _PRUNE:
            self._leaving = {t for t in self._leaving if t.is_alive()}
        self._leaving.add(state.thread)

    def forget_self(self, state: WorkerState) -> None:
        """A worker leaving, called by its own thread (thread_time() is its CPU)."""
        with self.lock:
            self.forget(state, time.thread_time())

    def resize(self, n: int, queued_since: int) -> tuple[int, int]:
        """For a new size ``n``: the retire tokens to put on the queue, and the
        threads to start for queued work (of ``queued_since`` tasks ever queued)."""
        with self.lock:
            self.excess = max(0, self.alive - n)
            missing = max(0, self.excess - self.tokens)
            self.tokens += missing
            taken = self._gone[0] + sum(s.taken for s in self._states)
            return missing, max(0, min(n - self.alive, queued_since - taken))

    def retire(self, state: WorkerState, token: bool, allowed: bool) -> bool:
        """Whether a worker (its own thread calling, after a task or on a retire
        ``token``) leaves now: if there is excess and leaving is ``allowed``."""
        with self.lock:
            if token:
                self.tokens -= 1
            if self.excess <= 0 or not allowed:
                return False
            self.excess -= 1
            self.forget(state, time.thread_time())
            return True

    def threads(self) -> set[threading.Thread]:
        """A new set of the threads that may still run: the live workers' (started)
        and the gone ones' not yet finished."""
        with self.lock:
            self._leaving = {t for t in self._leaving if t.is_alive()}
            return {s.thread for s in self._states if s.thread.is_alive()} | self._leaving

    def snapshot(self, size: int, submitted: int, drained: int, shutdown: bool) -> PoolStats:
        """Sum the counters (about a microsecond per worker) into a PoolStats."""
        clock = _cpu_clock_id
        with self.lock:
            taken, completed, failed, cancelled = self._gone
            cpu = self._gone_cpu if clock is not None else NAN
            busy = 0
            for s in self._states:
                # read done counts first: a task finishing between reads then shows
                # as still busy, never as negative
                done = s.completed + s.failed + s.cancelled
                t = s.taken
                taken += t
                completed += s.completed
                failed += s.failed
                cancelled += s.cancelled
                busy += min(1, max(0, t - done))
                if clock is not None:
                    cpu += _cpu_seconds(s, clock)
            alive = self.alive
        # list(deque) is one C call under the GIL, so workers cannot append mid-copy;
        # islice over the live deque could be interrupted ("deque mutated").
        recent = tuple(list(self.task_times)[-100:])
        return PoolStats(
            size=size, alive=alive, busy=busy, idle=max(0, alive - busy),
            queued=max(0, submitted - taken - drained), submitted=submitted,
            completed=completed, failed=failed, cancelled=cancelled + drained,
            task_times=recent, task_cpu_seconds=cpu, shutdown=shutdown,
        )


def _cpu_seconds(state: WorkerState, clock: Callable[[int], int]) -> float:
    # Caller holds the registry's lock, so the thread has not left yet (a worker is
    # forgotten under that lock before it returns); 0 before it runs.
    try:
        if state.clock_id is None:
            if state.thread.ident is None:
                return 0.0
            state.clock_id = clock(state.thread.ident)
        return time.clock_gettime(state.clock_id)
    except OSError:
        return 0.0
