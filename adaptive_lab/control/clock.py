"""Clocks: the controller never reads the wall clock directly.

:class:`SystemClock` is real time; :class:`FakeClock` (a public test double, like
trio's ``MockClock``) only moves when told to, so a controller thread driven by it
ticks exactly when a test advances time.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait up to ``timeout`` clock-seconds for ``event``; True if it was set."""
        ...


class SystemClock:
    """Monotonic real time."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class FakeClock:
    """Time that moves only by :meth:`advance` (or :meth:`set`).

    Threads waiting on it wake when time passes their deadline or their event is set.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._cond = threading.Condition()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (>= 0) and wake waiters; returns the new time."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        with self._cond:
            self._now += seconds
            self._cond.notify_all()
            return self._now

    def set(self, t: float) -> None:
        """Jump to time ``t`` (not backwards)."""
        if t < self._now:
            raise ValueError(f"t must not go backwards ({t} < {self._now})")
        self.advance(t - self._now)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        deadline = self._now + timeout
        with self._cond:
            while not event.is_set() and self._now < deadline:
                self._cond.wait(0.05)  # also re-checks the event, set without notify
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        """Advance time (for single-threaded simulations)."""
        self.advance(seconds)
