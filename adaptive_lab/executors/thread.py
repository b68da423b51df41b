"""ResizableThreadPoolExecutor: CPython's ThreadPoolExecutor plus a size.

As CPython's ``concurrent/futures/thread.py``: a ``SimpleQueue`` of work items that
run themselves, a module-level worker loop, threads started lazily on ``submit`` when
no worker is idle, ``None`` as the shutdown sentinel, the same exit and fork handling.
New is a *size* that ``resize(n)`` moves. Growing starts threads as queued work needs
them. Shrinking sets an *excess*: a worker that finishes a task while there is excess
retires instead of taking more work, and idle workers are woken by retire tokens put
on the queue. A running task is never interrupted, and since a worker only leaves
between tasks, no task is lost or run twice. Each worker counts in its own state, so
the hot path takes no lock (:mod:`adaptive_lab.executors.stats`). The pool knows
nothing of CPU load, policies, controllers or traces (see ``executors.adaptive``).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import _base
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

from adaptive_lab._host import available_cores
from adaptive_lab.executors.stats import PoolStats, WorkerRegistry, WorkerState

__all__ = ["BrokenThreadPool", "PoolStats", "ResizableThreadPoolExecutor"]

_RETIRE = object()  # queue token: "one worker may leave if there is excess"
_perf_counter = time.perf_counter

_threads_queues: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_shutdown = False
# Lock that ensures that new workers are not created while the interpreter is
# shutting down. Must be held while mutating _threads_queues and _shutdown.
_global_shutdown_lock = threading.Lock()


def _python_exit() -> None:
    global _shutdown
    with _global_shutdown_lock:
        _shutdown = True
        items = list(_threads_queues.items())
    for _, q in items:
        q.put(None)
    for t, _ in items:
        t.join()


def _after_fork_in_child() -> None:
    _global_shutdown_lock._at_fork_reinit()  # type: ignore[attr-defined]
    _threads_queues.clear()  # the parent's workers do not exist here


# Called just before joining non-daemon threads (CPython: bpo-39812).
threading._register_atexit(_python_exit)  # type: ignore[attr-defined]
# At fork, reinitialise the lock in the child (CPython: bpo-45021).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_global_shutdown_lock.acquire,
                        after_in_child=_after_fork_in_child,
                        after_in_parent=_global_shutdown_lock.release)


class _WorkItem:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: _base.Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self, state: WorkerState) -> None:
        # CPython's run(), plus counts and run time, kept before the future settles
        # so that whoever it wakes sees them.
        state.taken += 1
        future = self.future
        if not future.set_running_or_notify_cancel():
            state.cancelled += 1
            return
        t0 = _perf_counter()
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            state.timed(_perf_counter() - t0)
            state.failed += 1
            future.set_exception(exc)
            # Break a reference cycle with the exception 'exc'
            self = future = None  # type: ignore[assignment]
        else:
            state.timed(_perf_counter() - t0)
            state.completed += 1
            future.set_result(result)


def _worker(executor_reference: weakref.ref, work_queue: queue.SimpleQueue,
            state: WorkerState, workers: WorkerRegistry, initializer: Callable | None,
            initargs: tuple) -> None:
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException:
            _base.LOGGER.critical("Exception in initializer:", exc_info=True)
            executor = executor_reference()
            if executor is not None:
                executor._initializer_failed()
            workers.forget_self(state)
            return
    try:
        executor = executor_reference()
        if executor is not None and executor._spawn_credit > 0 and executor._spawn():
            executor._spawn()  # a growth spreads as a tree: see resize
        del executor
        while True:
            try:
                work_item = work_queue.get_nowait()
            except queue.Empty:
                # attempt to increment idle count if queue is empty
                executor = executor_reference()
                if executor is not None:
                    executor._idle_semaphore.release()
                del executor
                work_item = work_queue.get(block=True)

            if work_item.__class__ is _WorkItem:
                work_item.run(state)
                # Delete references to object. See GH-60488
                del work_item
                if workers.excess > 0 and _retire(executor_reference, state, token=False):
                    return
                continue
            if work_item is _RETIRE:
                if _retire(executor_reference, state, token=True):
                    return
                continue

            executor = executor_reference()
            # Exit if the interpreter is shutting down, the executor was collected,
            # or the executor was shut down.
            if _shutdown or executor is None or executor._shutdown:
                if executor is not None:
                    executor._shutdown = True
                workers.forget_self(state)
                # Notice other workers
                work_queue.put(None)
                return
            del executor
    except BaseException:
        _base.LOGGER.critical("Exception in worker", exc_info=True)
        workers.forget_self(state)


def _retire(executor_reference: weakref.ref, state: WorkerState, token: bool) -> bool:
    """Whether the worker leaves now (after a task, or on a retire token)."""
    executor = executor_reference()
    if executor is None:
        return token  # collected: a token ends the worker (the sentinel follows)
    leave = executor._workers.retire(state, token, allowed=not executor._shutdown)
    if token:
        # It had announced itself idle (or another worker had: then a submit may
        # start a thread it did not need, never leave work without one); if it
        # stays, it announces itself again when it finds the queue empty.
        executor._idle_semaphore.acquire(blocking=False)
    return leave


class ResizableThreadPoolExecutor(_base.Executor):
    """``ThreadPoolExecutor`` with a size that ``resize(n)`` changes at run time.

    The arguments are ``ThreadPoolExecutor``'s; ``max_workers`` is the initial size
    (default ``min(32, cores + 4)``). A failing initializer breaks the pool: pending
    and later submissions raise ``BrokenThreadPool``. Until ``resize`` is called it
    behaves as ``ThreadPoolExecutor``: idle threads are reused before one starts, and
    none leaves before shutdown.
    """

    _counter = itertools.count().__next__
    _default_prefix = "ResizableThreadPoolExecutor"

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "",
                 initializer: Callable[..., object] | None = None,
                 initargs: tuple = ()) -> None:
        if max_workers is None:
            max_workers = min(32, available_cores() + 4)
        _check_count("max_workers", max_workers)
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._size = max_workers
        self._work_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._idle_semaphore = threading.Semaphore(0)
        self._workers = WorkerRegistry()
        self._broken: str | bool = False
        self._shutdown = False
        self._shutdown_lock = threading.Lock()  # serialises submit, resize, shutdown
        self._thread_name_prefix = thread_name_prefix or (
            f"{self._default_prefix}-{self._counter()}")
        self._thread_seq = itertools.count()
        self._initializer = initializer
        self._initargs = initargs
        self._spawn_credit = 0  # threads a growth still owes; started by new workers
        self._starting = 0  # threads whose start() has not returned
        self._started_cv = threading.Condition(threading.Lock())
        self._submitted = 0
        self._drained = 0  # cancelled by shutdown(cancel_futures) or a broken pool
        self._resize_listeners: list[Callable[[int, int, str], None]] = []

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

    def _adjust_thread_count(self) -> None:
        # if idle threads are available, don't spin new threads
        if self._idle_semaphore.acquire(timeout=0):
            return
        if self._workers.alive < self._size:
            state = self._new_worker()
            if self._start(state, raise_if_alone=True):
                _threads_queues[state.thread] = self._work_queue  # (submit holds the lock)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                self._drain(lambda item: item.future.cancel())
            self._work_queue.put(None)
        with self._started_cv:  # no thread starts after _shutdown; let starts finish
            self._started_cv.wait_for(lambda: self._starting == 0)
        if wait:
            for t in self._threads:
                t.join()

    shutdown.__doc__ = _base.Executor.shutdown.__doc__

    @property
    def size(self) -> int:
        """The current size: the number of workers the pool is moving towards."""
        return self._size

    @property
    def _max_workers(self) -> int:
        """``ThreadPoolExecutor``'s attribute; ``executor._max_workers = n`` resizes."""
        return self._size

    @_max_workers.setter
    def _max_workers(self, n: int) -> None:
        self.resize(n, reason="_max_workers assignment")

    @property
    def _threads(self) -> set[threading.Thread]:
        """``ThreadPoolExecutor``'s attribute, as a new set on every read: the threads
        that may still run (live workers, gone ones not yet finished). Workers never
        change a set a caller holds: it can be iterated, its threads joined."""
        return self._workers.threads()

    def resize(self, n: int, reason: str = "manual") -> int:
        """Set the pool's size to ``n`` (>= 1) and return the previous size.

        Growing starts threads for queued work at once (more start as work arrives):
        this call starts one, and each new worker starts up to two more before its
        first task. Shrinking retires idle workers promptly and busy ones when their
        current task ends; running tasks are never interrupted. After shutdown it only
        records ``n``. Resize listeners are called with ``reason``.
        """
        _check_count("n", n)
        with self._shutdown_lock:
            old, self._size = self._size, n
            missing = to_start = 0
            if not self._shutdown and not self._broken:
                missing, to_start = self._workers.resize(n, self._submitted - self._drained)
                for _ in range(missing):
                    self._work_queue.put(_RETIRE)
            self._spawn_credit = to_start
        # Thread.start() waits until the new thread runs, which takes up to two GIL
        # switch intervals while other threads run Python code: 55 threads one after
        # another took 1.3 s here, as a tree (each new worker starts two) 0.1 s.
        self._spawn()
        if old != n:
            for listener in list(self._resize_listeners):
                listener(old, n, reason)
        return old

    def add_resize_listener(self, fn: Callable[[int, int, str], None]) -> None:
        """Call ``fn(old, new, reason)`` after every size change (e.g. to record it)."""
        self._resize_listeners.append(fn)

    def stats(self) -> PoolStats:
        """A consistent, cheap snapshot of counters (about a microsecond per worker)."""
        return self._workers.snapshot(self._size, self._submitted, self._drained,
                                      self._shutdown)

    def recent_task_times(self, n: int | None = None) -> list[float]:
        """Run times (s) of up to ``n`` most recent tasks (all kept, up to 4096)."""
        times = list(self._workers.task_times)
        return times if n is None else times[-n:] if n > 0 else []

    def first_task_times(self) -> list[float]:
        """Run times (s) of the pool's first tasks (up to 50): a baseline."""
        return self._workers.first_times[:50]

    # -- workers ----------------------------------------------------------------
    def _spawn(self) -> bool:
        """Start one thread the last growth still owes; called by ``resize`` and by
        each new worker (twice), so growth spreads as a tree."""
        with self._shutdown_lock:
            if (self._spawn_credit <= 0 or self._shutdown or self._broken or _shutdown
                    or self._workers.alive >= self._size):
                self._spawn_credit = 0
                return False
            self._spawn_credit -= 1
            with self._started_cv:
                self._starting += 1
            state = self._new_worker()
        try:
            started = self._start(state)
        finally:
            with self._started_cv:
                self._starting -= 1
                self._started_cv.notify_all()
        if not started:
            self._spawn_credit = 0  # "can't start new thread": owe nothing more
            return False
        with _global_shutdown_lock:  # at exit it sees the sentinel, registered or not
            _threads_queues[state.thread] = self._work_queue
        return True

    def _new_worker(self) -> WorkerState:
        # Caller holds _shutdown_lock: the worker counts as alive from here.
        def weakref_cb(_: object, q: queue.SimpleQueue = self._work_queue) -> None:
            q.put(None)

        state = self._workers.new_state()
        state.thread = threading.Thread(
            name=f"{self._thread_name_prefix}_{next(self._thread_seq)}", target=_worker,
            args=(weakref.ref(self, weakref_cb), self._work_queue, state, self._workers,
                  self._initializer, self._initargs))
        self._workers.add(state)
        return state

    def _start(self, state: WorkerState, raise_if_alone: bool = False) -> bool:
        """Start a new worker's thread. If the system refuses one, forget the worker
        and log it (or raise, with ``raise_if_alone`` and no other worker alive, as
        ``ThreadPoolExecutor.submit`` does)."""
        try:
            state.thread.start()
        except RuntimeError:
            with self._workers.lock:
                self._workers.forget(state, 0.0)
            if raise_if_alone and self._workers.alive == 0:
                raise
            _base.LOGGER.warning("%s: cannot start a thread", type(self).__name__,
                                 exc_info=True)
            return False
        return True

    def _drain(self, on_item: Callable[[_WorkItem], object]) -> None:
        # Caller holds _shutdown_lock. Empties the queue (the pool is shut down or
        # broken: retire tokens no longer matter); a shutdown sentinel is put back.
        sentinel = False
        while True:
            try:
                item = self._work_queue.get_nowait()
            except queue.Empty:
                break
            if item.__class__ is _WorkItem:
                self._drained += 1
                on_item(item)
            sentinel = sentinel or item is None
        if sentinel:
            self._work_queue.put(None)

    def _initializer_failed(self) -> None:
        with self._shutdown_lock:
            self._broken = ("A thread initializer failed, the thread pool "
                            "is not usable anymore")
            err = BrokenThreadPool(self._broken)

            def fail(item: _WorkItem) -> None:
                if not item.future.cancelled():
                    item.future.set_exception(err)

            self._drain(fail)

    def __repr__(self) -> str:
        st = self.stats()
        return (f"<{type(self).__name__} size={st.size} alive={st.alive} busy={st.busy} "
                f"queued={st.queued}>")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value}")
