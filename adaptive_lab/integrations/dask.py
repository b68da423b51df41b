"""Size a Dask cluster with adaptive_lab policies (optional extra ``dask``).

:class:`PolicyAdaptive` is a :class:`distributed.deploy.Adaptive` whose target comes
from the one adaptive_lab :class:`~adaptive_lab.control.controller.Controller`, the
loop that also sizes the thread pool and the simulator. The cluster is the
controller's target through :class:`DaskClusterView`: ``stats()`` from a
:class:`~adaptive_lab.integrations.dask_plugin.TaskCounter` snapshot of the
scheduler, the machine readings from the workers' metrics, and ``resize(n)`` hands
``n`` to Dask's own ``adaptive_core``: ``safe_target`` clamps to ``minimum`` /
``maximum``, ``recommendations`` applies ``wait_count`` and ``scale_down`` retires
workers through ``Scheduler.workers_to_close`` / ``retire_workers``, so their data
moves before they go. Dask's periodic ``adapt`` ticks the controller (it runs no
thread of its own). A run is recorded in the usual trace format, so the replay
explorer and notebooks read Dask runs like pool runs.

:func:`scan_on_dask` runs the scanner on a cluster through
``client.get_executor(pure=False)``.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from distributed import Client
from distributed.deploy.adaptive import Adaptive
from distributed.protocol import pickle as dask_pickle
from tornado.ioloop import PeriodicCallback

from adaptive_lab.control.clock import Clock, SystemClock
from adaptive_lab.control.controller import Controller
from adaptive_lab.control.metrics import SystemSample
from adaptive_lab.control.registry import register
from adaptive_lab.executors.stats import PoolStats
from adaptive_lab.integrations.dask_plugin import PLUGIN_NAME, SNAPSHOT_HANDLER, TaskCounter
from adaptive_lab.policies import Decision, Observation, Policy, make_policy
from adaptive_lab.trace.format import Trace
from adaptive_lab.trace.recorder import Recorder

__all__ = ["DASK_BATCH_SECONDS", "PLUGIN_NAME", "DaskClusterView", "PolicyAdaptive",
           "TaskCounter", "sample_from_snapshot", "scan_on_dask", "stats_from_snapshot"]

#: Seconds of work per scan batch on Dask (a Dask task costs about 1 ms, not 20 us).
DASK_BATCH_SECONDS = 0.05


def stats_from_snapshot(snap: dict[str, Any], planned: int) -> PoolStats:
    """A :meth:`TaskCounter.snapshot` as the stats a pool reports.

    ``size`` is the planned worker count (what Dask is scaling towards), ``alive``
    the workers connected to the scheduler, ``busy`` the workers running at least one
    task and ``queued`` the tasks ready but not started (queued on the scheduler,
    unrunnable, and assigned to a worker beyond its threads). The scheduler does not
    know the workers' CPU seconds: ``task_cpu_seconds`` is NaN (unknown). Task run
    times come from :meth:`DaskClusterView.recent_task_times`.
    """
    queued = int(snap["queued"]) + int(snap["unrunnable"])
    fin = int(snap["completed"]) + int(snap["failed"])
    alive, busy = int(snap["workers"]), int(snap["busy_workers"])
    return PoolStats(size=int(planned), alive=alive, busy=busy, idle=max(0, alive - busy),
                     queued=queued + int(snap["waiting_on_workers"]),
                     submitted=fin + int(snap["processing"]) + queued,
                     completed=int(snap["completed"]), failed=int(snap["failed"]),
                     cancelled=0, task_times=())


def sample_from_snapshot(snap: dict[str, Any]) -> SystemSample:
    """The workers' machine readings in a snapshot: mean CPU % per thread, memory %,
    available and resident MiB (``process_cpu_percent`` is the mean worker CPU %)."""
    return SystemSample(cpu_percent=float(snap["cpu_percent"]),
                        memory_percent=float(snap["memory_percent"]),
                        available_mb=float(snap["available_mb"]),
                        process_cpu_percent=float(snap["process_cpu_percent"]),
                        rss_mb=float(snap["rss_mb"]))


class SnapshotError(RuntimeError):
    """The scheduler could not be read (or has not been read yet)."""


class DaskClusterView:
    """A Dask cluster seen as a controller target (``stats()``, ``resize(n, reason)``).

    :meth:`refresh` reads the scheduler (registering :class:`TaskCounter` once);
    ``stats()`` and :attr:`metrics` answer from that snapshot, and ``stats()`` raises
    :class:`SnapshotError` when the last read failed, so the controller records the
    error and holds. ``resize(n)`` sets :attr:`requested`, the size the running
    ``adapt()`` hands to Dask (``PolicyAdaptive.target``); the adapter reports the
    scale-ups and retirements Dask then makes to the resize listeners. Counters are
    the scheduler's (cumulative); task times are those of tasks finished after the
    first snapshot (the cluster's history is not this run's).
    """

    def __init__(self, adaptive: Adaptive, keep: int = 4096) -> None:
        self.adaptive = adaptive
        self.snapshot: dict[str, Any] | None = None
        self.requested: int | None = None
        self.reason: str | None = None
        self.metrics = _SnapshotMetrics(self)
        self._failure: BaseException | None = None
        self._seen: int | None = None  # the completed counter at the last snapshot
        self._times: deque[float] = deque(maxlen=keep)
        self._listeners: list[Callable[[int, int, str], None]] = []
        self._registered = False

    @property
    def planned(self) -> int:
        return len(self.adaptive.plan)

    async def refresh(self) -> None:
        """Read the scheduler now; a failure is kept for ``stats()`` to raise."""
        scheduler = self.adaptive.scheduler
        try:
            if not self._registered:
                await scheduler.register_scheduler_plugin(
                    plugin=dask_pickle.dumps(TaskCounter()), name=PLUGIN_NAME,
                    idempotent=True)
                self._registered = True
            since = sys.maxsize if self._seen is None else self._seen
            snap = await getattr(scheduler, SNAPSHOT_HANDLER)(since=since)
        except Exception as exc:
            self._registered = False  # e.g. a restarted scheduler: register again
            self._failure = exc
            return
        self._failure = None
        self._times.extend(snap.get("durations") or ())
        self._seen = int(snap["completed"])
        self.snapshot = snap

    def _snap(self) -> dict[str, Any]:
        if self._failure is not None:
            exc = self._failure
            raise SnapshotError(f"scheduler snapshot failed: {type(exc).__name__}: "
                                f"{exc}") from exc
        if self.snapshot is None:
            raise SnapshotError("no scheduler snapshot yet")
        return self.snapshot

    # -- the controller's protocol ---------------------------------------------------
    def stats(self) -> PoolStats:
        return stats_from_snapshot(self._snap(), self.planned)

    def recent_task_times(self, n: int) -> list[float]:
        return list(self._times)[-n:] if n > 0 else []

    def resize(self, n: int, reason: str = "") -> int:
        self.requested, self.reason = int(n), reason
        return self.planned

    def add_resize_listener(self, fn: Callable[[int, int, str], None]) -> None:
        self._listeners.append(fn)

    def sample_fields(self) -> dict[str, Any]:
        """Dask extras for the trace sample: the size asked for, and the scheduler's
        processing tasks, busy/total threads and occupancy."""
        snap = self.snapshot or {}
        return {"target": self.planned if self.requested is None else self.requested,
                **{k: snap.get(k) for k in ("processing", "busy_threads", "threads",
                                            "occupancy")}}

    def scaled(self, old: int, new: int, reason: str) -> None:
        """Report a scale-up or retirement Dask is making to the resize listeners."""
        for fn in list(self._listeners):
            fn(old, new, reason)


class _SnapshotMetrics:
    """The controller's metrics source on a cluster: the workers' readings in the
    view's last snapshot."""

    def __init__(self, view: DaskClusterView) -> None:
        self.view = view

    def read(self) -> SystemSample:
        return sample_from_snapshot(self.view._snap())


def _make_recorder(record: Any) -> Recorder | None:
    if record is None or record is False:
        return None
    if record is True:
        return Recorder()
    if isinstance(record, Recorder):
        return record
    if isinstance(record, (str, os.PathLike)):
        return Recorder(record)
    raise ValueError(f"record must be a path, a Recorder, True or None, got {record!r}")


class PolicyAdaptive(Adaptive):
    """A Dask ``Adaptive`` whose target comes from an adaptive_lab policy.

    Use it like ``Adaptive``: ``cluster.adapt(Adaptive=PolicyAdaptive, policy=p,
    minimum=1, maximum=8)``, or ``PolicyAdaptive(cluster, policy=p, ...)``. Every
    ``adapt()`` (each ``interval``) reads the scheduler and ticks :attr:`controller`,
    which decides; Dask then applies the decision.

    Parameters
    ----------
    cluster, interval, minimum, maximum, target_duration, worker_key
        As for :class:`distributed.deploy.Adaptive` (defaults from the dask config,
        interval 1 s). Scale-down retires workers safely through the scheduler.
    wait_count
        Dask's scale-down debounce: a worker closes after this many consecutive
        recommendations. Default 1: the policy decides when to shrink (several
        policies debounce themselves, e.g. the occupancy policy has Dask's own
        ``wait_count``, and a second debounce behind theirs resets on each of their
        "hold" decisions, so it may never let a worker go). Larger values add
        Dask's debounce on top.
    policy
        Any adaptive_lab :class:`Policy`, or a registered policy name. Required.
    record
        A trace path, a :class:`Recorder`, ``True`` (in memory) or None. One sample
        per decision (every ``interval``, also while Dask waits for workers to
        start); a ``scale`` event per scale-up or retirement.
    clock
        Where observation times come from (default real monotonic time); ``t`` is
        seconds since construction on this clock, so tests can inject a FakeClock.
    **kwargs
        Passed on to ``Scheduler.workers_to_close`` (as with ``Adaptive``).
    """

    state = "inactive"  # so __del__ -> stop() is safe if __init__ raised early
    recorder: Recorder | None = None
    controller: Controller | None = None
    _sampler: PeriodicCallback | None = None

    def __init__(self, cluster: Any = None, interval: Any = None, minimum: int | None = None,
                 maximum: int | float | None = None, wait_count: int | None = None,
                 target_duration: Any = None, worker_key: Any = None, *,
                 policy: Policy | str | None = None, record: Any = None,
                 clock: Clock | None = None, **kwargs: Any) -> None:
        if isinstance(policy, str):
            policy = make_policy(policy)
        if not isinstance(policy, Policy):
            raise ValueError(f"policy must be an adaptive_lab Policy or a policy name, "
                             f"got {policy!r}")
        if clock is not None and not callable(getattr(clock, "now", None)):
            raise ValueError(f"clock must have a now() method, got {clock!r}")
        self.clock: Clock = clock or SystemClock()
        self.recorder = _make_recorder(record)
        self._ready = False  # the periodic callback may fire before __init__ ends
        self._lock: asyncio.Lock | None = None  # one scheduler read + tick at a time
        self._last_decision_t = -math.inf
        super().__init__(cluster, interval=interval, minimum=minimum, maximum=maximum,
                         wait_count=1 if wait_count is None else wait_count,
                         target_duration=target_duration, worker_key=worker_key, **kwargs)
        self.view = DaskClusterView(self)
        period = self.interval or 1.0  # 0: Dask's loop is off, adapt() is called by hand
        self.controller = Controller(
            self.view, policy, interval=period, sample_period=period,
            min_workers=self.minimum,
            max_workers=sys.maxsize if math.isinf(self.maximum) else int(self.maximum),
            clock=self.clock, metrics=self.view.metrics, recorder=self.recorder,
            workload={"backend": "dask", "cluster": type(cluster).__name__,
                      "scheduler": getattr(cluster, "scheduler_address", None),
                      "wait_count": self.wait_count,
                      "target_duration": self.target_duration})
        register(self.controller, f"dask-{getattr(cluster, 'name', None) or 'cluster'}")
        self._ready = True

    # -- what the controller saw and did ----------------------------------------------
    @property
    def policy(self) -> Policy | None:
        return self.controller.policy if self.controller is not None else None

    @property
    def last_observation(self) -> Observation | None:
        return self.controller.last_observation if self.controller is not None else None

    @property
    def last_decision(self) -> Decision | None:
        return self.controller.last_decision if self.controller is not None else None

    @property
    def errors(self) -> int:
        return self.controller.errors if self.controller is not None else 0

    def now(self) -> float:
        """Seconds since construction, on the injected clock."""
        assert self.controller is not None
        return self.controller.now()

    # -- ticking the controller ------------------------------------------------------
    def _start(self) -> None:
        # runs on the cluster's loop, possibly before __init__ has returned
        super()._start()
        if self.state == "running" and self._sampler is None:
            self._sampler = PeriodicCallback(self._sample_tick, (self.interval or 1.0) * 1000)
            self._sampler.start()

    async def _tick(self, decide: bool) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        assert self.controller is not None
        async with self._lock:
            await self.view.refresh()
            self.controller.tick(decide=decide)

    async def target(self) -> int:
        """Read the scheduler and tick the controller; the size it resized the view
        to, or the planned size (a hold, or an error the controller recorded)."""
        if not self._ready:
            return len(self.plan)
        self.view.requested = None
        await self._tick(decide=True)
        self._last_decision_t = self.now()
        return len(self.plan) if self.view.requested is None else self.view.requested

    async def _sample_tick(self) -> None:
        """Sample while a decision is stuck (Dask awaits the cluster while requested
        workers start), so the trace has no hole exactly when the cluster scales."""
        ctl = self.controller
        if not self._ready or self.state == "stopped" or self.recorder is None or ctl is None:
            return
        if ctl.now() - self._last_decision_t < 1.5 * ctl.interval:
            return
        await self._tick(decide=False)

    # -- Dask applies the decision ------------------------------------------------------
    def _reason(self) -> str:
        return self.view.reason or "dask recommendation"

    # (distributed's AdaptiveCore annotates these two arguments the other way round)
    async def scale_up(self, n: int) -> None:  # type: ignore[override]
        if self.state == "stopped":  # an adapt() in flight when stop() was called
            return
        self.view.scaled(len(self.plan), int(n), self._reason())  # at decision time
        await super().scale_up(n)

    async def scale_down(self, workers: Sequence[Any]) -> None:  # type: ignore[override]
        if not workers or self.state == "stopped":
            return
        old = len(self.plan)
        how = (f"after wait_count={self.wait_count} consecutive recommendations"
               if self.wait_count > 1 else "through the scheduler")
        self.view.scaled(old, max(0, old - len(workers)),
                         f"{self._reason()} (dask retires {len(workers)} worker(s) {how})")
        await super().scale_down(workers)

    # -- results -----------------------------------------------------------------
    def trace(self) -> Trace | None:
        """The trace recorded so far (None when not recording)."""
        return self.recorder.trace() if self.recorder is not None else None

    def stop(self, reason: str = "unknown") -> None:
        """Stop adapting and close the trace file (the in-memory trace stays)."""
        super().stop(reason=reason)
        if self._sampler is not None:
            self._sampler.stop()
        rec = self.recorder
        if rec is not None and not rec.closed:
            rec.close()


def scan_on_dask(root: str | os.PathLike, client_or_address: Any, **scan_kwargs: Any) -> Any:
    """Run :func:`adaptive_lab.scanner.scan` with a Dask cluster doing the batches.

    ``client_or_address`` is a :class:`distributed.Client` (left open), or a scheduler
    address / cluster object (a client is opened and closed here). Batches are
    submitted with ``pure=False`` so a rescan is never served from Dask's cache. The
    workers must see ``root`` at the same path (a shared or local file system).

    Dask costs about a millisecond per task, not the thread pool's 20 us, so the
    defaults differ from a local scan: ``batch_seconds`` 0.05 (50 ms of work per
    task) and ``max_in_flight`` ``max(8, 4 * threads)`` for the cluster's threads now.
    When the cluster is sized adaptively, pass ``max_in_flight`` for its *maximum*:
    the scanner's backpressure caps the queue a policy can see.
    """
    from adaptive_lab.scanner.core import scan

    if "executor" in scan_kwargs:
        raise ValueError("executor must not be given to scan_on_dask (it uses the client's)")
    own = not isinstance(client_or_address, Client)
    client = Client(client_or_address) if own else client_or_address
    try:
        scan_kwargs.setdefault("batch_seconds", DASK_BATCH_SECONDS)
        if scan_kwargs.get("max_in_flight") is None:
            threads = sum(client.nthreads().values())
            scan_kwargs["max_in_flight"] = max(8, 4 * threads)
        return scan(root, executor=client.get_executor(pure=False), **scan_kwargs)
    finally:
        if own:
            client.close()
