"""AdaptiveThreadPoolExecutor: the resizable thread pool, a controller and a recorder.

The mechanism (:class:`~adaptive_lab.executors.thread.ResizableThreadPoolExecutor`)
plus control (a :class:`~adaptive_lab.control.controller.Controller` that samples the
pool and resizes it from a policy's decisions) plus record (a
:class:`~adaptive_lab.trace.recorder.Recorder`). Adaptive by default: with no
arguments the package's default policy sizes the pool; ``policy=None`` gives a fixed
pool that behaves exactly as ``ThreadPoolExecutor``.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from adaptive_lab._host import available_cores
from adaptive_lab.control.controller import Controller
from adaptive_lab.control.metrics import WorkerPoolMetrics
from adaptive_lab.executors.thread import (
    BrokenThreadPool,
    PoolStats,
    ResizableThreadPoolExecutor,
    _check_count,
)
from adaptive_lab.policies.base import Policy
from adaptive_lab.policies.registry import resolve_policy
from adaptive_lab.policies.threshold import THRESHOLD_DEFAULTS
from adaptive_lab.trace.format import Trace
from adaptive_lab.trace.recorder import Recorder

__all__ = ["DEFAULT_POLICY", "AdaptiveThreadPoolExecutor", "BrokenThreadPool", "PoolStats",
           "default_bounds"]

#: The policy a pool runs when none is named (a registered name).
DEFAULT_POLICY = "adaptive"

# Controllers are stopped at interpreter exit, before the workers are joined (threading
# runs its exit hooks in reverse order of registration: this module's comes after
# thread.py's). The lock guards the set; like CPython's shutdown lock it is taken
# before a fork and made new in the child, where the controllers' threads do not run.
_live_controllers: weakref.WeakSet[Controller] = weakref.WeakSet()
_controllers_lock = threading.Lock()


def _stop_controllers() -> None:
    with _controllers_lock:
        live = list(_live_controllers)
    for ctl in live:
        ctl.stop(join=False, final_sample=False)


def _after_fork_in_child() -> None:
    _controllers_lock._at_fork_reinit()  # type: ignore[attr-defined]
    _live_controllers.clear()


threading._register_atexit(_stop_controllers)  # type: ignore[attr-defined]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_controllers_lock.acquire,
                        after_in_child=_after_fork_in_child,
                        after_in_parent=_controllers_lock.release)


def default_bounds(cores: int | None = None) -> tuple[int, int]:
    """The package's default ``(min_workers, max_workers)`` when a policy is used.

    The original design capped at ``min(100, cores * 12)`` (24 on 2 cores), but a
    scan of storage with 20 ms latency needs about 300 threads, and an idle thread
    costs about 12 KiB, so we allow up to 512 and let the policy find the size.
    """
    cores = cores or available_cores()
    return 1, max(32, min(512, cores * 256))


def _stop_controller(ctl: Controller) -> None:
    """Finalizer of a pool collected without shutdown: its controller stops too."""
    ctl.stop(join=False, final_sample=False)
    with _controllers_lock:
        _live_controllers.discard(ctl)


class AdaptiveThreadPoolExecutor(ResizableThreadPoolExecutor):
    """A drop-in ``ThreadPoolExecutor`` whose size a policy drives (by default).

    Parameters
    ----------
    max_workers
        Upper bound for the policy (default: :func:`default_bounds`); without a
        policy, the size (default ``min(32, cores + 4)``, as ``ThreadPoolExecutor``).
    thread_name_prefix, initializer, initargs
        As for ``ThreadPoolExecutor``. A failing initializer breaks the pool:
        pending and later submissions raise ``BrokenThreadPool``.
    min_workers
        Lower bound for the policy (default: 1 with a policy, from
        :func:`default_bounds`, so a policy may find that one thread is best, as
        for GIL-bound work; ``min(max_workers, cores)`` without one).
    policy
        A :class:`~adaptive_lab.policies.Policy` or a registered name (default
        :data:`DEFAULT_POLICY`): a controller thread samples every ``sample_period``
        s and resizes every ``interval`` s. ``None``: a fixed pool with exactly
        ``ThreadPoolExecutor``'s behaviour (idle threads reused before one starts,
        none leaves before shutdown, no controller thread unless ``record``).
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

    _default_prefix = "AdaptiveThreadPoolExecutor"

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple = (),
        *,
        min_workers: int | None = None,
        policy: Policy | str | None = DEFAULT_POLICY,
        interval: float | None = None,
        sample_period: float | None = None,
        initial_workers: int | None = None,
        record: bool | str | os.PathLike | Recorder | None = None,
        clock: Any = None,
        metrics: Any = None,
        workload: dict | None = None,
    ) -> None:
        policy = resolve_policy(policy)
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
                f"min_workers ({min_workers}) must not exceed max_workers ({max_workers})")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if initial_workers is None:
            initial_workers = (max(min_workers, min(cores, max_workers)) if policy is not None
                               else max_workers)
        _check_count("initial_workers", initial_workers)
        if policy is not None and not min_workers <= initial_workers <= max_workers:
            raise ValueError(f"initial_workers ({initial_workers}) must be within "
                             f"[min_workers, max_workers] = [{min_workers}, {max_workers}]")
        super().__init__(initial_workers, thread_name_prefix, initializer, initargs)
        self._min_bound = min_workers
        self._max_bound = max_workers
        self.controller: Controller | None = None
        if policy is not None or record not in (None, False):
            self._start_controller(policy, interval, sample_period, record, clock, metrics,
                                   workload)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        ctl = self.controller
        if ctl is not None:
            ctl.stop(join=wait, final_sample=False)
        super().shutdown(wait, cancel_futures=cancel_futures)
        if ctl is not None:
            ctl.final_sample()
            if ctl.recorder is not None and wait:
                ctl.recorder.close()

    shutdown.__doc__ = ResizableThreadPoolExecutor.shutdown.__doc__

    # -- bounds -----------------------------------------------------------------
    @property
    def min_workers(self) -> int:
        """Lower bound for the policy."""
        return self._min_bound

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
                f"min_workers ({min_workers}) must not exceed max_workers ({max_workers})")
        with self._shutdown_lock:
            self._min_bound, self._max_bound = min_workers, max_workers
        if self.controller is not None:
            self.controller.set_bounds(min_workers, max_workers)

    # -- what happened ----------------------------------------------------------
    def metrics(self) -> WorkerPoolMetrics:
        """The original performance tracking: last 100 task times vs the first 50."""
        st = self.stats()
        return WorkerPoolMetrics.from_times(
            self.first_task_times(), list(st.task_times),
            total_tasks=st.completed + st.failed,
        )

    def status(self) -> dict[str, Any]:
        """The original status dict (its 11 keys) plus the live counters."""
        st = self.stats()
        m = self.metrics()
        ctl = self.controller
        obs = ctl.last_observation if ctl is not None else None
        events = ctl.scale_events if ctl is not None else 0
        status: dict[str, Any] = {
            "current_workers": st.size,
            "min_workers": self._min_bound,
            "max_workers": self._max_bound,
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
            "threshold_defaults": dict(THRESHOLD_DEFAULTS),
        }
        status.update({f"pool_{k}": v for k, v in st.to_dict().items() if k != "task_times"})
        return status

    def trace(self) -> Trace | None:
        """The trace recorded so far (``record=`` must have been given)."""
        if self.controller is None or self.controller.recorder is None:
            return None
        return self.controller.recorder.trace()

    # -- internals --------------------------------------------------------------
    def _start_controller(self, policy: Policy | None, interval: float | None,
                          sample_period: float | None, record: Any, clock: Any,
                          metrics: Any, workload: dict | None) -> None:
        recorder = None
        if isinstance(record, Recorder):
            recorder = record
        elif record is True:
            recorder = Recorder()
        elif record not in (None, False):
            recorder = Recorder(Path(record))
        if interval is None:
            interval = getattr(policy, "preferred_interval", None) or 1.0
        # The controller holds the pool weakly, as the workers do: a pool dropped
        # without shutdown is collected, its workers leave and its controller stops.
        ctl = Controller(
            cast(Any, weakref.proxy(self)), policy, interval=interval,
            sample_period=sample_period, min_workers=self._min_bound,
            max_workers=self._max_bound, clock=clock, metrics=metrics, recorder=recorder,
            workload=workload,
        )
        self.controller = ctl
        with _controllers_lock:
            _live_controllers.add(ctl)
        weakref.finalize(self, _stop_controller, ctl).atexit = False
        ctl.start()

    def __repr__(self) -> str:
        st = self.stats()
        return (f"<{type(self).__name__} size={st.size} alive={st.alive} busy={st.busy} "
                f"queued={st.queued} bounds=[{self._min_bound}, {self._max_bound}]>")
