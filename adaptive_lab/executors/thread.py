"""AdaptiveThreadPoolExecutor: a ThreadPoolExecutor whose size really changes.

The mechanism follows CPython's ``concurrent/futures/thread.py``: a ``SimpleQueue`` of
work items, a module-level worker loop, threads started lazily on ``submit`` when no
worker is idle, ``None`` as the shutdown sentinel. What is new is a *size* that
``resize(n)`` moves at run time:

* growing raises the size; threads start as queued work needs them;
* shrinking sets an *excess* count. A worker that finishes a task while there is
  excess retires instead of taking more work; idle workers are woken by retire tokens
  put on the queue. A running task is never interrupted, and since a worker only
  leaves between tasks, no task is lost or run twice.

Per-worker counters are written by their own thread only, so the hot path takes no
lock; ``stats()`` sums them. The pool knows nothing of CPU or policies: pass
``policy=`` and a :class:`~adaptive_lab.controller.Controller` drives ``resize``.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import _base
from concurrent.futures.thread import BrokenThreadPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptive_lab._host import available_cores
from adaptive_lab.control.metrics import WorkerPoolMetrics

if TYPE_CHECKING:
    from adaptive_lab.control.controller import Controller
    from adaptive_lab.policies.base import Policy
    from adaptive_lab.trace.format import Trace
    from adaptive_lab.trace.recorder import Recorder

__all__ = ["AdaptiveThreadPoolExecutor", "BrokenThreadPool", "PoolStats", "default_bounds"]

_RETIRE = object()  # queue token: "one worker may leave if there is excess"
_TASK_TIMES = 4096  # recent task run times kept for latency percentiles

# Interpreter shutdown, as in CPython: wake and join every worker at exit.
_threads_queues: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_live_controllers: weakref.WeakSet = weakref.WeakSet()
_shutdown = False
_global_shutdown_lock = threading.Lock()


def _python_exit() -> None:
    global _shutdown
    with _global_shutdown_lock:
        _shutdown = True
    for ctl in list(_live_controllers):
        ctl.stop(join=False, final_sample=False)
    items = list(_threads_queues.items())
    for _, q in items:
        q.put(None)
    for t, _ in items:
        t.join()


threading._register_atexit(_python_exit)  # type: ignore[attr-defined]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_threads_queues.clear)


def default_bounds(cores: int | None = None) -> tuple[int, int]:
    """The package's default ``(min_workers, max_workers)`` when a policy is used.

    The seed capped at ``min(100, cores * 12)`` (24 here), but a 20 ms-latency scan
    needs about 300 threads (shared/MEASURED.md), and an idle thread costs about 12 KiB,
    so we allow up to 512 and let the policy find the size.
    """
    cores = cores or available_cores()
    return 1, max(32, min(512, cores * 256))


@dataclass(frozen=True)
class PoolStats:
    """A cheap snapshot of the pool.

    ``completed`` counts tasks that returned, ``failed`` those that raised, and
    ``cancelled`` those cancelled before they ran; ``queued`` tasks wait to start.
    ``task_times`` are the run times (s) of the most recent tasks (up to 100).
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
    min_workers: int
    max_workers: int
    shutdown: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["task_times"] = list(self.task_times)
        return d


class _WorkItem:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: _base.Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs


class _WorkerState:
    """Counters of one worker, written only by that worker's thread."""

    __slots__ = ("cancelled", "completed", "failed", "taken", "thread")

    def __init__(self) -> None:
        self.taken = 0
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.thread: threading.Thread | None = None


def _worker(ref: weakref.ref, q: queue.SimpleQueue, state: _WorkerState,
            initializer: Callable | None, initargs: tuple) -> None:
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException:
            _base.LOGGER.critical("Exception in initializer:", exc_info=True)
            executor = ref()
            if executor is not None:
                executor._initializer_failed()
                executor._worker_exited(state)
            return
    executor = ref()
    if executor is None:
        return
    if executor._spawn_credit > 0 and executor._spawn():  # growth as a tree: see resize
        executor._spawn()
    times, first = executor._task_times, executor._baseline_times
    del executor
    perf = time.perf_counter
    need_first = len(first) < 50
    try:
        while True:
            item = q.get(block=True)
            if item.__class__ is _WorkItem:
                # busy = taken - completed - failed - cancelled: no extra writes here
                state.taken += 1
                future = item.future
                if future.set_running_or_notify_cancel():
                    t0 = perf()
                    try:
                        result = item.fn(*item.args, **item.kwargs)
                    except BaseException as exc:
                        dt = perf() - t0
                        future.set_exception(exc)
                        state.failed += 1
                        del exc
                    else:
                        dt = perf() - t0
                        future.set_result(result)
                        state.completed += 1
                        del result
                    times.append(dt)
                    if need_first:
                        first.append(dt)
                        need_first = len(first) < 50
                else:
                    state.cancelled += 1
                del item, future  # see CPython issue16284
                executor = ref()
                if executor is not None:
                    if executor._excess > 0 and executor._try_retire(state, token=False):
                        return
                    executor._idle_semaphore.release()
                del executor
                continue
            executor = ref()
            if item is _RETIRE:
                if executor is None or executor._try_retire(state, token=True):
                    return
                del executor
                continue
            # None: shutdown sentinel. Leave if the pool (or interpreter) is closing.
            if _shutdown or executor is None or executor._shutdown:
                if executor is not None:
                    executor._shutdown = True
                    executor._worker_exited(state)
                q.put(None)
                return
            del executor
    except BaseException:
        _base.LOGGER.critical("Exception in worker", exc_info=True)
        executor = ref()
        if executor is not None:
            executor._worker_exited(state)


class AdaptiveThreadPoolExecutor(_base.Executor):
    """A drop-in ``ThreadPoolExecutor`` that can be resized, by hand or by a policy.

    Parameters
    ----------
    max_workers
        Upper bound for the policy, and the initial size when there is no policy.
        ``None`` means ``ThreadPoolExecutor``'s ``min(32, cores + 4)`` without a
        policy and :func:`default_bounds` with one.
    thread_name_prefix, initializer, initargs
        As for ``ThreadPoolExecutor``. A failing initializer breaks the pool:
        pending and later submissions raise ``BrokenThreadPool``.
    min_workers
        Lower bound for the policy (default: 1 with a policy, from
        :func:`default_bounds`, so a policy may find that one thread is best, as
        for GIL-bound work; ``min(max_workers, cores)`` without one).
    policy
        A :class:`~adaptive_lab.policies.Policy` or a registered name; when given,
        a controller thread samples every ``sample_period`` s and resizes every
        ``interval`` s.
    interval, sample_period
        Decision and sampling periods in seconds (defaults: the policy's preferred
        interval or 1 s; ``min(interval, 0.5)``).
    initial_workers
        Starting size (default with a policy: the core count, within the bounds;
        else ``max_workers``).
    record
        ``True`` (in memory), a path (JSON Lines, see ``docs/trace-format.md``) or a
        :class:`~adaptive_lab.trace.Recorder`. Recording without a policy samples
        the pool and records manual resizes.
    clock, metrics, workload
        Injected clock and metrics source for the controller (tests, simulation), and
        a free-form workload description stored in the trace header.
    """

    _counter = itertools.count().__next__

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple = (),
        *,
        min_workers: int | None = None,
        policy: Policy | str | None = None,
        interval: float | None = None,
        sample_period: float | None = None,
        initial_workers: int | None = None,
        record: bool | str | os.PathLike | Recorder | None = None,
        clock: Any = None,
        metrics: Any = None,
        workload: dict | None = None,
    ) -> None:
        from adaptive_lab.policies.base import Policy as _Policy

        if isinstance(policy, str):
            from adaptive_lab.policies import make_policy

            policy = make_policy(policy)
        elif policy is not None and not isinstance(policy, _Policy):
            raise TypeError(f"policy must be a Policy, a registered name or None, "
                            f"got {policy!r}")
        cores = available_cores()
        if max_workers is None:
            max_workers = default_bounds(cores)[1] if policy is not None else min(32, cores + 4)
        _check_count("max_workers", max_workers)
        if min_workers is None:
            min_workers = min(max_workers, default_bounds(cores)[0] if policy is not None
                              else cores)
        _check_count("min_workers", min_workers)
        if min_workers > max_workers:
            raise ValueError(
                f"min_workers ({min_workers}) must not exceed max_workers ({max_workers})"
            )
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if initial_workers is None:
            initial_workers = (max(min_workers, min(cores, max_workers)) if policy is not None
                               else max_workers)
        _check_count("initial_workers", initial_workers)
        if policy is not None and not min_workers <= initial_workers <= max_workers:
            raise ValueError(f"initial_workers ({initial_workers}) must be within "
                             f"[min_workers, max_workers] = [{min_workers}, {max_workers}]")

        self._min_bound = min_workers
        self._max_bound = max_workers
        self._size = initial_workers
        self._work_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._idle_semaphore = threading.Semaphore(0)
        self._threads: set[threading.Thread] = set()
        self._states: set[_WorkerState] = set()
        self._broken: str | bool = False
        self._shutdown = False
        self._shutdown_lock = threading.Lock()  # serialises submit/resize/shutdown
        self._state_lock = threading.Lock()  # worker registry and retirement
        self._thread_name_prefix = thread_name_prefix or (
            f"AdaptiveThreadPoolExecutor-{self._counter()}"
        )
        self._thread_seq = itertools.count()
        self._initializer = initializer
        self._initargs = initargs
        self._alive = 0
        self._spawn_credit = 0  # threads a growth still owes; started by new workers
        self._starting = 0  # registered threads whose start() has not returned
        self._started_cv = threading.Condition(threading.Lock())
        self._excess = 0
        self._tokens = 0
        self._submitted = 0
        self._drained = 0  # cancelled by shutdown(cancel_futures) or a broken pool
        self._retired = [0, 0, 0, 0]  # taken, completed, failed, cancelled of gone workers
        self._task_times: deque[float] = deque(maxlen=_TASK_TIMES)
        self._baseline_times: list[float] = []
        self._resize_listeners: list[Callable[[int, int, str], None]] = []
        self.controller: Controller | None = None
        if policy is not None or record not in (None, False):
            self._start_controller(policy, interval, sample_period, record, clock, metrics,
                                   workload)

    # -- public API -------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> _base.Future:
        with self._shutdown_lock, _global_shutdown_lock:
            if self._broken:
                raise BrokenThreadPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if _shutdown:
                raise RuntimeError("cannot schedule new futures after interpreter shutdown")
            f: _base.Future = _base.Future()
            self._work_queue.put(_WorkItem(f, fn, args, kwargs))
            self._submitted += 1
            self._adjust_thread_count()
            return f

    submit.__doc__ = _base.Executor.submit.__doc__

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        ctl = self.controller
        if ctl is not None:
            ctl.stop(join=wait, final_sample=False)
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                self._drain(lambda item: item.future.cancel())
            self._work_queue.put(None)
        with self._started_cv:  # no thread registers after _shutdown; let starts finish
            self._started_cv.wait_for(lambda: self._starting == 0)
        if wait:
            for t in list(self._threads):
                t.join()
        if ctl is not None:
            ctl.final_sample()
            if ctl.recorder is not None and wait:
                ctl.recorder.close()

    shutdown.__doc__ = _base.Executor.shutdown.__doc__

    @property
    def size(self) -> int:
        """The current size: the number of workers the pool is moving towards."""
        return self._size

    @property
    def min_workers(self) -> int:
        """Lower bound for the policy."""
        return self._min_bound

    @property
    def _max_workers(self) -> int:
        """The seed's hook: ``executor._max_workers = n`` is a real resize here."""
        return self._size

    @_max_workers.setter
    def _max_workers(self, n: int) -> None:
        self.resize(n, reason="_max_workers assignment")

    @property
    def max_workers(self) -> int:
        """Upper bound for the policy."""
        return self._max_bound

    def set_bounds(self, min_workers: int, max_workers: int) -> None:
        """Change the policy's bounds atomically (validated together, unlike Java's)."""
        _check_count("min_workers", min_workers)
        _check_count("max_workers", max_workers)
        if min_workers > max_workers:
            raise ValueError(
                f"min_workers ({min_workers}) must not exceed max_workers ({max_workers})"
            )
        with self._shutdown_lock:
            self._min_bound, self._max_bound = min_workers, max_workers
        if self.controller is not None:
            self.controller.set_bounds(min_workers, max_workers)

    def resize(self, n: int, reason: str = "manual") -> int:
        """Set the pool's size to ``n`` (>= 1) and return the previous size.

        Growing starts threads for queued work at once (more start as work arrives):
        this call starts one, and each new worker starts up to two more before its
        first task, so a big growth takes a few thread starts' time even while other
        threads hold the GIL (``adaptive-lab bench-pool --growth``).
        Shrinking retires idle workers promptly and busy ones when their current task
        ends; running tasks are never interrupted. ``resize`` is not clamped to the
        bounds, which constrain only the policy. After shutdown it only records ``n``.
        """
        _check_count("n", n)
        with self._shutdown_lock:
            old = self._size
            self._size = n
            to_start = 0
            if not self._shutdown and not self._broken:
                with self._state_lock:
                    self._excess = max(0, self._alive - n)
                    missing = self._excess - self._tokens
                    self._tokens += max(0, missing)
                for _ in range(missing):
                    self._work_queue.put(_RETIRE)
                to_start = min(n - self._alive, self._queued())
            self._spawn_credit = max(0, to_start)
        # Start threads for queued work as a tree: each new worker starts up to two
        # more before its first task. Thread.start() waits until the new thread runs,
        # which takes up to two GIL switch intervals (5 ms each) while other threads
        # run Python code: 55 threads one after another took 1.3 s here, as a tree
        # 0.1 s. The caller (the controller, or the user) waits for one start only.
        self._spawn()
        if old != n:
            for listener in list(self._resize_listeners):
                listener(old, n, reason)
        return old

    def stats(self) -> PoolStats:
        """A consistent, cheap snapshot of counters (a few microseconds)."""
        with self._state_lock:
            taken, completed, failed, cancelled = self._retired
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
            alive = self._alive
        submitted = self._submitted
        # list(deque) is one C call under the GIL, so workers cannot append mid-copy;
        # islice over the live deque could be interrupted ("deque mutated").
        recent = tuple(list(self._task_times)[-100:])
        return PoolStats(
            size=self._size, alive=alive, busy=busy, idle=max(0, alive - busy),
            queued=max(0, submitted - taken - self._drained), submitted=submitted,
            completed=completed, failed=failed, cancelled=cancelled + self._drained,
            task_times=recent, min_workers=self._min_bound, max_workers=self._max_bound,
            shutdown=self._shutdown,
        )

    def recent_task_times(self, n: int | None = None) -> list[float]:
        """Run times (s) of up to ``n`` most recent tasks (all kept, up to 4096)."""
        times = list(self._task_times)
        return times if n is None else times[-n:] if n > 0 else []

    def metrics(self) -> WorkerPoolMetrics:
        """The seed's performance tracking: last 100 task times vs the first 50."""
        st = self.stats()
        return WorkerPoolMetrics.from_times(
            self._baseline_times[:50], list(st.task_times),
            total_tasks=st.completed + st.failed,
        )

    def status(self) -> dict[str, Any]:
        """The seed's status dict (its 11 keys) plus the live counters."""
        from adaptive_lab.policies.threshold import THRESHOLD_DEFAULTS

        st = self.stats()
        m = self.metrics()
        ctl = self.controller
        obs = ctl.last_observation if ctl is not None else None
        events = ctl.scale_events if ctl is not None else 0
        status: dict[str, Any] = {
            "current_workers": st.size,
            "min_workers": st.min_workers,
            "max_workers": st.max_workers,
            "cpu_cores": available_cores(),
            "adjustment_interval": ctl.interval if ctl is not None else None,
            "total_adjustments": events,
            "scaling_events": events,
            "avg_task_time": m.current_average,
            "baseline_task_time": m.baseline,
            "performance_gain_percent": m.performance_gain,
            "monitoring_enabled": ctl is not None,
            "queue_depth": st.queued,
            "cpu_percent": obs.cpu_percent if obs is not None else None,
            "memory_percent": obs.memory_percent if obs is not None else None,
            "policy": ctl.policy.describe() if ctl is not None and ctl.policy else None,
            "seed_defaults": dict(THRESHOLD_DEFAULTS),
        }
        status.update({f"pool_{k}": v for k, v in st.to_dict().items() if k != "task_times"})
        return status

    def trace(self) -> Trace | None:
        """The trace recorded so far (``record=`` must have been given)."""
        if self.controller is None or self.controller.recorder is None:
            return None
        return self.controller.recorder.trace()

    def add_resize_listener(self, fn: Callable[[int, int, str], None]) -> None:
        """Call ``fn(old, new, reason)`` after every size change (e.g. to record it)."""
        self._resize_listeners.append(fn)

    # -- internals --------------------------------------------------------------
    def _start_controller(self, policy: Policy | None, interval: float | None,
                          sample_period: float | None, record: Any, clock: Any,
                          metrics: Any, workload: dict | None) -> None:
        from adaptive_lab.control.controller import Controller
        from adaptive_lab.trace.recorder import Recorder

        recorder = None
        if isinstance(record, Recorder):
            recorder = record
        elif record is True:
            recorder = Recorder()
        elif record not in (None, False):
            recorder = Recorder(Path(record))
        if interval is None:
            interval = getattr(policy, "preferred_interval", None) or 1.0
        self.controller = Controller(
            self, policy, interval=interval, sample_period=sample_period,
            min_workers=self._min_bound, max_workers=self._max_bound,
            clock=clock, metrics=metrics, recorder=recorder, workload=workload,
        )
        _live_controllers.add(self.controller)
        self.controller.start()

    def _queued(self) -> int:
        taken = self._retired[0] + sum(s.taken for s in list(self._states))
        return max(0, self._submitted - taken - self._drained)

    def _adjust_thread_count(self) -> None:
        # An idle worker will take the item; otherwise start one if below size.
        if self._idle_semaphore.acquire(timeout=0):
            return
        if self._alive < self._size:
            self._start_thread()

    def _spawn(self) -> bool:
        """Start one thread the last growth still owes; called without the lock, by
        ``resize`` and by each new worker (twice), so growth spreads as a tree."""
        with self._shutdown_lock:
            if (self._spawn_credit <= 0 or self._shutdown or self._broken or _shutdown
                    or self._alive >= self._size):
                self._spawn_credit = 0
                return False
            self._spawn_credit -= 1
            with self._started_cv:
                self._starting += 1
            state, t = self._new_thread()
        try:
            if not self._launch(state, t):
                self._spawn_credit = 0  # "can't start new thread": owe nothing more
                return False
        finally:
            with self._started_cv:
                self._starting -= 1
                self._started_cv.notify_all()
        return True

    def _start_thread(self) -> None:
        """Start one worker for a submit that found none idle (CPython's path). If the
        system refuses a thread, the item stays queued for the live workers; with none,
        the error propagates from ``submit``, as from ``ThreadPoolExecutor``'s."""
        if _shutdown:
            return
        state, t = self._new_thread()
        self._launch(state, t, raise_if_alone=True)

    def _launch(self, state: _WorkerState, t: threading.Thread,
                raise_if_alone: bool = False) -> bool:
        """``t.start()``; on failure undo ``_new_thread``'s registration and log it (or
        raise, with ``raise_if_alone`` and no other worker alive); True if it started."""
        try:
            t.start()
        except RuntimeError:
            with self._state_lock:
                self._forget(state)  # (also takes it off the live count)
            if raise_if_alone and self._alive == 0:
                raise
            _base.LOGGER.warning("AdaptiveThreadPoolExecutor: cannot start a thread",
                                 exc_info=True)
            return False
        _threads_queues[t] = self._work_queue
        return True

    def _new_thread(self) -> tuple[_WorkerState, threading.Thread]:
        """Create and register a worker thread (not started)."""
        state = _WorkerState()
        name = f"{self._thread_name_prefix}_{next(self._thread_seq)}"

        def weakref_cb(_: object, q: queue.SimpleQueue = self._work_queue) -> None:
            q.put(None)

        t = threading.Thread(
            name=name, target=_worker,
            args=(weakref.ref(self, weakref_cb), self._work_queue, state,
                  self._initializer, self._initargs),
        )
        state.thread = t
        with self._state_lock:
            self._alive += 1
            self._states.add(state)
            self._threads.add(t)
        return state, t

    def _forget(self, state: _WorkerState) -> None:
        # Caller holds _state_lock.
        if state in self._states:
            self._states.discard(state)
            self._threads.discard(state.thread)  # type: ignore[arg-type]
            r = self._retired
            r[0] += state.taken
            r[1] += state.completed
            r[2] += state.failed
            r[3] += state.cancelled
            self._alive -= 1

    def _try_retire(self, state: _WorkerState, token: bool) -> bool:
        with self._state_lock:
            if token:
                self._tokens -= 1
            if self._excess <= 0 or self._shutdown:
                return False
            self._excess -= 1
            self._forget(state)
        if token:  # it had announced itself idle; take that back
            self._idle_semaphore.acquire(blocking=False)
        return True

    def _worker_exited(self, state: _WorkerState) -> None:
        with self._state_lock:
            self._forget(state)

    def _drain(self, on_item: Callable[[_WorkItem], object]) -> None:
        # Caller holds _shutdown_lock. Removes queued items; tokens are dropped.
        while True:
            try:
                item = self._work_queue.get_nowait()
            except queue.Empty:
                break
            if item.__class__ is _WorkItem:
                self._drained += 1
                on_item(item)
            elif item is _RETIRE:
                with self._state_lock:
                    self._tokens -= 1
        with self._state_lock:  # re-issue retire tokens still owed
            missing = self._excess - self._tokens
            self._tokens += max(0, missing)
        for _ in range(missing):
            self._work_queue.put(_RETIRE)

    def _initializer_failed(self) -> None:
        with self._shutdown_lock:
            self._broken = (
                "A thread initializer failed, the thread pool is not usable anymore"
            )
            err = BrokenThreadPool(self._broken)
            self._drain(lambda item: item.future.cancelled() or item.future.set_exception(err))

    def __repr__(self) -> str:
        st = self.stats()
        return (f"<AdaptiveThreadPoolExecutor size={st.size} alive={st.alive} busy={st.busy} "
                f"queued={st.queued} bounds=[{st.min_workers}, {st.max_workers}]>")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value}")
