"""ResizableLimiter: an asyncio concurrency limit that can be resized while tasks wait.

``async with limiter:`` guards one request. At most ``limit`` requests are inside at
once; the others wait in FIFO order. ``asyncio.Semaphore`` cannot be resized; this
can, with the semantics of anyio's ``CapacityLimiter.total_tokens`` and trio's
capacity limiter: raising the limit wakes waiters at once, lowering it lets the
holders finish normally and admits no one until the requests inside are fewer than
the new limit.

Like the thread pool, this is mechanism only: it offers ``resize(n)`` and ``stats()``
(a :class:`~adaptive_lab.executors.stats.PoolStats`) and measures each guarded block
(its latency, and whether it was dropped), but knows nothing of policies, controllers
or traces. :class:`adaptive_lab.aio.AdaptiveLimiter` adds those.

A limiter belongs to one event loop at a time (it binds to the first one that uses
it, as asyncio's own primitives do); its counters are its own, so limiters on many
loops in one process share nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from adaptive_lab.executors.stats import PoolStats
from adaptive_lab.executors.thread import _check_count

__all__ = ["ResizableLimiter"]

_TIMES = 4096  # latencies kept for the controller's windows
_get_loop = asyncio.get_running_loop


#: What a request inside a limiter keeps in its context: ``(start, outer)`` or, once
#: dropped, ``(start, outer, True)``; ``outer`` is the enclosing request's (nested use).
_Inside = tuple


class ResizableLimiter:
    """A resizable concurrency limit for asyncio, with per-request measurement.

    Parameters
    ----------
    limit
        How many requests may be inside at once (an int >= 1).

    Each guarded block is measured: its latency (the time from entering to leaving
    the block, not counting the wait for a slot) and its outcome. A block that
    returns counts as ``completed``; one that raises an ``Exception`` (a timeout
    inside the block included) or calls :meth:`drop` counts as ``failed``, a drop; one
    cancelled (from outside, e.g. by ``asyncio.timeout`` around the ``async with``)
    counts as ``cancelled`` and its latency is not kept. Requests cancelled while
    waiting also count as ``cancelled``; their place in the queue is given up, and a
    slot granted to a request cancelled before it resumed is passed on.
    """

    def __init__(self, limit: int) -> None:
        _check_count("limit", limit)
        self._limit = limit
        self._busy = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._time: Callable[[], float] = time.monotonic  # the bound loop's clock
        self._submitted = self._completed = self._failed = self._cancelled = 0
        self._times: deque[float] = deque(maxlen=_TIMES)
        self._listeners: list[Callable[[int, int, str], None]] = []
        # the requests this limiter guards in the current context (task), innermost first
        self._current: contextvars.ContextVar[_Inside | None] = contextvars.ContextVar(
            f"adaptive_lab_limiter_{id(self):x}", default=None)

    # -- guarding a request -------------------------------------------------------
    async def __aenter__(self) -> ResizableLimiter:
        loop = _get_loop()
        if loop is not self._loop:
            self._bind(loop)
        self._submitted += 1
        if self._busy < self._limit and not self._waiters:
            self._busy += 1
        else:
            await self._wait(loop)  # the slot is handed over by the releaser
        cur = self._current
        cur.set((self._time(), cur.get()))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        # never awaits: a cancelled task still runs all of this
        cur = self._current
        inside = cur.get()
        if inside is None:  # pragma: no cover - misuse
            raise RuntimeError("limiter exited without a matching enter in this context")
        cur.set(inside[1])
        self._busy -= 1
        if exc_type is None:
            if len(inside) > 2:
                self._failed += 1
            else:
                self._completed += 1
            self._times.append(self._time() - inside[0])
        elif issubclass(exc_type, Exception):
            self._failed += 1
            self._times.append(self._time() - inside[0])
        elif len(inside) > 2:  # cancelled after drop(): still a drop
            self._failed += 1
        else:  # CancelledError, KeyboardInterrupt, GeneratorExit: not a measurement
            self._cancelled += 1
        if self._waiters and self._busy < self._limit:
            self._wake()

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        try:
            await fut
        except BaseException:
            self._cancelled += 1
            if fut.done() and not fut.cancelled():  # granted, cancelled before resuming
                self._busy -= 1
                self._wake()
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:  # pragma: no cover - already taken off
                    pass
            raise

    def _wake(self) -> None:
        """Hand free slots to the first waiters (the slot is theirs when they resume)."""
        w = self._waiters
        while w and self._busy < self._limit:
            fut = w.popleft()
            if not fut.done():
                self._busy += 1
                fut.set_result(None)

    def drop(self) -> None:
        """Mark the request the calling task is inside as dropped (e.g. on HTTP 503).

        ``RuntimeError`` outside ``async with limiter``.
        """
        inside = self._current.get()
        if inside is None:
            raise RuntimeError("drop() called outside 'async with' of this limiter")
        if len(inside) == 2:
            self._current.set((inside[0], inside[1], True))

    # -- the event loop ---------------------------------------------------------------
    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._loop
        if old is not None and not old.is_closed() and (
                old.is_running() or self._busy or self._waiters):
            raise RuntimeError(f"{self!r} is bound to a different event loop")
        self._loop = loop
        self._loop_thread = threading.get_ident()
        # the loop's clock; time.monotonic itself when that is what loop.time() returns
        # (it saves a Python call per measurement)
        base = type(loop).time is asyncio.BaseEventLoop.time
        self._time = time.monotonic if base else loop.time
        self._bound(loop)

    def _bound(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called when the limiter starts to serve ``loop`` (the front door's hook)."""

    # -- the protocol: resize and stats ------------------------------------------------
    @property
    def limit(self) -> int:
        """The current limit (setting it is :meth:`resize`)."""
        return self._limit

    @limit.setter
    def limit(self, n: int) -> None:
        self.resize(n)

    def resize(self, n: int, reason: str = "manual") -> int:
        """Set the limit to ``n`` (>= 1) and return the previous limit.

        Raising it wakes as many waiters as there are new free slots; lowering it lets
        the requests inside finish (none is interrupted) and admits no one until fewer
        than ``n`` are inside. Called from another thread than the loop's, the change is
        handed to the loop (``call_soon_threadsafe``) and takes effect there.
        """
        _check_count("n", n)
        old = self._limit
        loop = self._loop
        if (loop is not None and self._loop_thread != threading.get_ident()
                and loop.is_running()):
            loop.call_soon_threadsafe(self._apply, n, reason)
            return old
        self._apply(n, reason)
        return old

    def _apply(self, n: int, reason: str) -> None:
        old, self._limit = self._limit, n
        if n > old:
            self._wake()
        if n != old:
            for fn in list(self._listeners):
                fn(old, n, reason)

    def add_resize_listener(self, fn: Callable[[int, int, str], None]) -> None:
        """Call ``fn(old, new, reason)`` after every change of the limit."""
        self._listeners.append(fn)

    def locked(self) -> bool:
        """Whether a new request would have to wait."""
        return self._busy >= self._limit or bool(self._waiters)

    def stats(self) -> PoolStats:
        """A cheap snapshot, in the pools' terms: ``size`` is the limit, ``busy`` the
        requests inside, ``queued`` those waiting, ``alive`` the slots in use or free
        (above the limit while holders of a lowered one finish), ``failed`` the drops,
        ``task_times`` the latencies of the last 100 guarded blocks."""
        limit, busy = self._limit, self._busy
        return PoolStats(
            size=limit, alive=max(limit, busy), busy=busy, idle=max(0, limit - busy),
            queued=len(self._waiters), submitted=self._submitted,
            completed=self._completed, failed=self._failed, cancelled=self._cancelled,
            task_times=tuple(list(self._times)[-100:]),
        )

    def recent_task_times(self, n: int | None = None) -> list[float]:
        """Latencies (s) of up to ``n`` most recent guarded blocks (up to 4096 kept)."""
        times = list(self._times)
        return times if n is None else times[-n:] if n > 0 else []

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} limit={self._limit} busy={self._busy} "
                f"waiting={len(self._waiters)}>")
