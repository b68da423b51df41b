"""AdaptiveLimiter: an asyncio concurrency limit that a policy sizes while it runs.

The mechanism (:class:`~adaptive_lab.executors.aio.ResizableLimiter`: a resizable
limit that measures every guarded request) plus control (the same
:class:`~adaptive_lab.control.controller.Controller` the pools use, ticked by a task on
the event loop, on the loop's clock: :class:`LoopClock`) plus record (an optional
:class:`~adaptive_lab.trace.recorder.Recorder`: a trace in the pools' format, which
loads, replays and simulates like theirs).

The policies see a request limit in the pools' terms: the limit is ``workers``,
requests inside are ``busy``, requests waiting are ``queue_depth``, the latency of
the guarded blocks is the task latency (Netflix's round-trip time) and drops
(exceptions, timeouts inside the block, :meth:`~ResizableLimiter.drop`) are
``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any, cast

from adaptive_lab.control.controller import Controller
from adaptive_lab.control.metrics import MetricsSource
from adaptive_lab.executors.adaptive import DEFAULT_POLICY
from adaptive_lab.executors.aio import ResizableLimiter
from adaptive_lab.executors.thread import _check_count
from adaptive_lab.policies.base import Policy
from adaptive_lab.policies.registry import resolve_policy
from adaptive_lab.trace.format import Trace
from adaptive_lab.trace.recorder import Recorder

__all__ = ["DEFAULT_MAX_LIMIT", "AdaptiveLimiter", "LoopClock", "ResizableLimiter"]

log = logging.getLogger("adaptive_lab")

#: The default upper bound of the limit (Netflix's Vegas and Gradient2 default to 1000).
DEFAULT_MAX_LIMIT = 1000
#: The default starting limit when a policy is used (within the bounds).
DEFAULT_INITIAL_LIMIT = 8
#: Seconds between decisions for policies without a preferred interval: requests are
#: short, so windows of 0.1 s already hold many of them.
DEFAULT_INTERVAL = 0.1


class LoopClock:
    """An event loop's clock (``loop.time()``), as a controller :class:`Clock`.

    The controller of an :class:`AdaptiveLimiter` is ticked by a task on the loop, so
    it never waits on this clock; :meth:`wait` (for a controller thread) waits in real
    time, as ``loop.time()`` is monotonic time on asyncio's loops.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def now(self) -> float:
        return self.loop.time()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


async def _drive(ref: weakref.ReferenceType[AdaptiveLimiter], ctl: Controller,
                 loop: asyncio.AbstractEventLoop) -> None:
    """Tick ``ctl`` every sample period on ``loop`` until the limiter is gone or
    closed, or the task is cancelled (as ``asyncio.run`` does at its end)."""
    period = ctl.sample_period
    next_t = loop.time()
    while True:
        lim = ref()
        if lim is None or lim._closed:
            return
        try:
            ctl.tick()
        except Exception as exc:  # never let the control task die
            log.error("adaptive_lab limiter: tick failed: %r", exc, exc_info=exc)
        next_t += period
        delay = next_t - loop.time()
        if delay < 0:
            next_t, delay = loop.time(), 0.0
        try:
            del lim  # hold the limiter only weakly while sleeping
            await asyncio.sleep(delay)
        except asyncio.CancelledError:  # the loop ends (asyncio.run) or close()
            lim = ref()
            if lim is not None and not lim._closed:
                ctl.final_sample()  # the trace covers the end
            raise


class AdaptiveLimiter(ResizableLimiter):
    """``async with limiter:`` guards one request; a policy sizes the limit.

    Parameters
    ----------
    policy
        A :class:`~adaptive_lab.policies.Policy` or a registered name (default: the
        package's default policy, ``"adaptive"``). ``None``: a fixed limit (recorded
        if ``record`` is given, and resized only by hand).
    min_limit, max_limit
        Bounds every decision is clamped to (defaults 1 and :data:`DEFAULT_MAX_LIMIT`).
    initial_limit
        Starting limit (default :data:`DEFAULT_INITIAL_LIMIT` within the bounds with a
        policy; ``max_limit`` without one).
    interval, sample_period
        Seconds between decisions (default: the policy's preferred interval, else
        :data:`DEFAULT_INTERVAL`) and between samples (default ``min(interval, 0.5)``).
    record
        ``True`` (in memory), a path (JSON Lines, see ``docs/trace-format.md``) or a
        :class:`~adaptive_lab.trace.Recorder`.
    metrics, workload
        Injected metrics source for the controller (default: psutil readings of this
        process and machine) and a workload description stored in the trace header.

    The controller starts with the first event loop that uses the limiter (at once if
    it is created inside a running loop): a task on that loop samples every
    ``sample_period`` and decides every ``interval`` on the loop's clock. It stops when
    the loop ends (``asyncio.run`` cancels it), on :meth:`close`, or when the limiter
    is collected. Used by a later loop (after the first ended), it starts there again
    with the policy's state kept.
    """

    def __init__(
        self,
        policy: Policy | str | None = DEFAULT_POLICY,
        *,
        min_limit: int = 1,
        max_limit: int = DEFAULT_MAX_LIMIT,
        initial_limit: int | None = None,
        interval: float | None = None,
        sample_period: float | None = None,
        record: bool | str | os.PathLike | Recorder | None = None,
        metrics: MetricsSource | None = None,
        workload: dict | None = None,
    ) -> None:
        policy = resolve_policy(policy)
        _check_count("min_limit", min_limit)
        _check_count("max_limit", max_limit)
        if min_limit > max_limit:
            raise ValueError(f"min_limit ({min_limit}) must not exceed max_limit ({max_limit})")
        if initial_limit is None:
            initial_limit = (max(min_limit, min(DEFAULT_INITIAL_LIMIT, max_limit))
                             if policy is not None else max_limit)
        _check_count("initial_limit", initial_limit)
        if not min_limit <= initial_limit <= max_limit:
            raise ValueError(f"initial_limit ({initial_limit}) must be within "
                             f"[min_limit, max_limit] = [{min_limit}, {max_limit}]")
        if interval is None:
            interval = getattr(policy, "preferred_interval", None) or DEFAULT_INTERVAL
        super().__init__(initial_limit)
        self.min_limit, self.max_limit = min_limit, max_limit
        self.policy = policy
        self.interval = float(interval)
        self.sample_period = sample_period
        self._metrics = metrics
        self._workload = {"kind": "asyncio limiter", **(workload or {})}
        self._recorder = _recorder(record)
        self._control = policy is not None or self._recorder is not None
        self.controller: Controller | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # bound by the first loop that uses it
        self._bind(loop)

    def _bound(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._control or self._closed:
            return
        ctl = self.controller
        if ctl is None:
            # The controller holds the limiter weakly, as the control task does: a
            # limiter dropped by its users is collected and its task ends.
            ctl = Controller(
                cast(Any, weakref.proxy(self)), self.policy, interval=self.interval,
                sample_period=self.sample_period, min_workers=self.min_limit,
                max_workers=self.max_limit, clock=LoopClock(loop), metrics=self._metrics,
                recorder=self._recorder, workload=self._workload,
            )
            self.controller = ctl
        else:
            cast(LoopClock, ctl.clock).loop = loop
        old = self._task
        if old is not None and not old.done() and not old.get_loop().is_closed():
            old.get_loop().call_soon_threadsafe(old.cancel)  # a loop not running now
        self._task = loop.create_task(_drive(weakref.ref(self), ctl, loop),
                                      name="adaptive-lab-limiter-control")

    # -- bounds -------------------------------------------------------------------------
    def resize(self, n: int, reason: str = "manual") -> int:
        """Set the limit to ``n``, which must be within ``[min_limit, max_limit]``
        (see :meth:`ResizableLimiter.resize`); returns the previous limit."""
        _check_count("n", n)
        if not self.min_limit <= n <= self.max_limit:
            raise ValueError(f"n ({n}) must be within [min_limit, max_limit] = "
                             f"[{self.min_limit}, {self.max_limit}]")
        return super().resize(n, reason)

    def set_bounds(self, min_limit: int, max_limit: int) -> None:
        """Change the policy's bounds (validated together); a limit outside the new
        bounds is moved into them at once."""
        _check_count("min_limit", min_limit)
        _check_count("max_limit", max_limit)
        if min_limit > max_limit:
            raise ValueError(f"min_limit ({min_limit}) must not exceed max_limit ({max_limit})")
        self.min_limit, self.max_limit = min_limit, max_limit
        if self.controller is not None:
            self.controller.set_bounds(min_limit, max_limit)
        inside = min(max_limit, max(min_limit, self._limit))
        if inside != self._limit:
            super().resize(inside, "bounds changed")

    # -- what happened --------------------------------------------------------------------
    def trace(self) -> Trace | None:
        """The trace recorded so far (``record=`` must have been given)."""
        return self._recorder.trace() if self._recorder is not None else None

    @property
    def recorder(self) -> Recorder | None:
        return self._recorder

    def close(self) -> None:
        """Stop the controller (one last sample) and close the trace file. The limit
        stays as it is and the limiter keeps working, as a fixed one."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done() and not task.get_loop().is_closed():
            if self._loop_thread == threading.get_ident():
                task.cancel()
            else:
                task.get_loop().call_soon_threadsafe(task.cancel)
        if self.controller is not None:
            self.controller.final_sample()
        if self._recorder is not None:
            self._recorder.close()

    def __repr__(self) -> str:
        pol = self.policy.name if self.policy is not None else None
        return (f"<{type(self).__name__} limit={self._limit} busy={self._busy} "
                f"waiting={len(self._waiters)} policy={pol} "
                f"bounds=[{self.min_limit}, {self.max_limit}]>")


def _recorder(record: Any) -> Recorder | None:
    if isinstance(record, Recorder):
        return record
    if record is True:
        return Recorder()
    if record in (None, False):
        return None
    return Recorder(Path(record))
