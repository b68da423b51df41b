"""Helpers shared by the executor tests."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable

import pytest

import adaptive_lab.executors.adaptive  # noqa: F401  (registers the pools' fork hooks)

_FORKING = threading.Event()  # set when a fork begins, before the pools' own hooks run
os.register_at_fork(before=_FORKING.set)  # (hooks run last-registered first: this one)


def _exit_quietly() -> None:
    """A forked child's target: returning runs threading's exit hooks (the pools' too)."""


def _fork_while_held(lock: threading.Lock) -> int | None:
    """Fork a child while another thread holds ``lock``; the child's exit code, or
    None if it did not exit within 20 s (then it is killed)."""
    held = threading.Event()
    _FORKING.clear()

    def holder() -> None:
        with lock:
            held.set()
            _FORKING.wait(5)  # the fork has begun: hold on a little longer
            time.sleep(0.05)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(5)
    p = multiprocessing.get_context("fork").Process(target=_exit_quietly)
    p.start()  # the fork waits for the lock (register_at_fork), so the child has it free
    t.join()
    p.join(20)
    if p.is_alive():  # pragma: no cover - the bug guarded
        p.kill()
        p.join()
        return None
    return p.exitcode


@pytest.fixture
def fork_while_held() -> Callable[[threading.Lock], int | None]:
    return _fork_while_held
