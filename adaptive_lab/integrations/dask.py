"""Size a Dask cluster with adaptive_lab policies (optional extra ``dask``).

:class:`PolicyAdaptive` is a :class:`distributed.deploy.Adaptive` whose ``target()``
builds an adaptive_lab :class:`~adaptive_lab.policies.base.Observation` from the
scheduler and asks any adaptive_lab :class:`~adaptive_lab.policies.base.Policy`.
Everything else is Dask's own ``adaptive_core``: ``safe_target`` clamps to
``minimum``/``maximum``, ``recommendations`` debounces scale-down (a worker is closed
only after ``wait_count`` consecutive recommendations) and ``scale_down`` retires
workers through ``Scheduler.workers_to_close`` / ``retire_workers``, so their data
moves before they go. A run is recorded in the usual trace format, so the replay
explorer and notebooks read Dask runs like pool runs.

Scheduler state reaches the client through :class:`TaskCounter`, a scheduler plugin
(registered over the scheduler comm, so it works for in-process and remote
schedulers alike, provided adaptive_lab is importable on the scheduler) that counts
finished tasks, keeps their compute times and answers an ``adaptive_lab_snapshot``
request. :func:`scan_on_dask` runs the scanner on a cluster through
``client.get_executor(pure=False)``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

from distributed import Client
from distributed.deploy.adaptive import Adaptive
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.protocol import pickle as dask_pickle
from tornado.ioloop import PeriodicCallback

from adaptive_lab.control.clock import Clock, SystemClock
from adaptive_lab.control.metrics import latency_stats
from adaptive_lab.policies import Decision, Observation, Policy, make_policy
from adaptive_lab.policies.base import clamp_target
from adaptive_lab.trace.format import Trace
from adaptive_lab.trace.recorder import Recorder

__all__ = ["DASK_BATCH_SECONDS", "PLUGIN_NAME", "PolicyAdaptive", "TaskCounter",
           "observation_from_snapshot", "scan_on_dask"]

log = logging.getLogger("adaptive_lab")
NAN = float("nan")
PLUGIN_NAME = "adaptive-lab-task-counter"
_HANDLER = "adaptive_lab_snapshot"
#: Seconds of work per scan batch on Dask (a Dask task costs about 1 ms, not 20 us).
DASK_BATCH_SECONDS = 0.05


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
        scheduler.handlers[_HANDLER] = self.snapshot

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


def observation_from_snapshot(snap: dict[str, Any], *, t: float, workers: int, dt: float,
                              prev_finished: int | None, min_workers: int,
                              max_workers: int) -> Observation:
    """Translate a :meth:`TaskCounter.snapshot` into an adaptive_lab Observation.

    ``workers`` is the cluster's planned size (what it is scaling towards, like a
    pool's ``size``); ``alive`` the workers connected to the scheduler. ``busy``
    counts workers running at least one task; ``queue_depth`` is tasks ready but not
    started: queued on the scheduler, unrunnable (no worker), and assigned to a worker
    beyond its threads. Rates cover the ``dt`` seconds since ``prev_finished``
    tasks had finished (None, or more than now after a scheduler restart: unknown, NaN).
    """
    fin = int(snap["completed"]) + int(snap["failed"])
    mean, p50, p95 = latency_stats(snap.get("durations") or [])
    queue = int(snap["queued"]) + int(snap["unrunnable"]) + int(snap["waiting_on_workers"])
    return Observation(
        t=t, workers=int(workers), busy=int(snap["busy_workers"]), queue_depth=queue,
        cpu_percent=float(snap["cpu_percent"]), memory_percent=float(snap["memory_percent"]),
        process_cpu_percent=float(snap["process_cpu_percent"]),
        available_mb=float(snap["available_mb"]), alive=int(snap["workers"]),
        completed=int(snap["completed"]), failed=int(snap["failed"]),
        submitted=fin + int(snap["processing"]) + int(snap["queued"])
        + int(snap["unrunnable"]),
        throughput=(fin - prev_finished) / dt
        if dt > 0 and prev_finished is not None and fin >= prev_finished else NAN,
        latency_mean=mean, latency_p50=p50, latency_p95=p95, dt=dt,
        min_workers=int(min_workers), max_workers=int(max_workers),
    )


class _Window:
    """Where a measurement window starts: time, tasks finished, completed counter
    (``None`` until the first snapshot: the cluster's history is not this run's)."""

    __slots__ = ("finished", "seen", "t")

    def __init__(self) -> None:
        self.t = 0.0
        self.finished: int | None = None
        self.seen: int | None = None


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
    minimum=1, maximum=8)``, or ``PolicyAdaptive(cluster, policy=p, ...)``.

    Parameters
    ----------
    cluster, interval, minimum, maximum, wait_count, target_duration, worker_key
        As for :class:`distributed.deploy.Adaptive` (defaults from the dask config:
        interval 1 s, wait_count 3). ``wait_count`` still debounces scale-down, and
        scale-down still retires workers safely through the scheduler.
    policy
        Any adaptive_lab :class:`Policy`, or a registered policy name. Required.
    record
        A trace path, a :class:`Recorder`, ``True`` (in memory) or None. One sample
        per decision (every ``interval``); a ``scale`` event per scale-up/down.
    clock
        Where observation times come from (default real monotonic time); ``t`` is
        seconds since construction on this clock, so tests can inject a FakeClock.
    **kwargs
        Passed on to ``Scheduler.workers_to_close`` (as with ``Adaptive``).
    """

    state = "inactive"  # so __del__ -> stop() is safe if __init__ raised early
    recorder: Recorder | None = None
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
        self.policy = policy
        self.recorder = _make_recorder(record)
        self.clock: Clock = clock or SystemClock()
        self._t0 = self.clock.now()
        self._ready = False  # the periodic callback may fire before __init__ ends
        self._registered = False
        self._sample_win = _Window()  # samples: every decision, and while Dask waits
        self._decision_win = _Window()  # observations given to the policy
        self._lock: asyncio.Lock | None = None  # one scheduler read at a time
        self._last_target: int | None = None
        self._last_decision_t = -math.inf
        self.last_observation: Observation | None = None
        self.last_decision: Decision | None = None
        self.last_snapshot: dict[str, Any] | None = None
        self.errors = 0
        super().__init__(cluster, interval=interval, minimum=minimum, maximum=maximum,
                         wait_count=wait_count, target_duration=target_duration,
                         worker_key=worker_key, **kwargs)
        if self.recorder is not None:
            self.recorder.set_header(
                policy=policy.describe(),
                bounds={"min_workers": self.minimum, "max_workers": self.maximum},
                interval=self.interval, sample_period=self.interval,
                workload={"backend": "dask", "cluster": type(cluster).__name__,
                          "scheduler": getattr(cluster, "scheduler_address", None),
                          "wait_count": self.wait_count,
                          "target_duration": self.target_duration},
            )
        self._ready = True

    # -- time and bounds ----------------------------------------------------------
    def now(self) -> float:
        """Seconds since construction, on the injected clock."""
        return self.clock.now() - self._t0

    @property
    def _max_int(self) -> int:
        return sys.maxsize if math.isinf(self.maximum) else int(self.maximum)

    # -- talking to the scheduler ------------------------------------------------
    def _start(self) -> None:
        # runs on the cluster's loop, possibly before __init__ has returned
        super()._start()
        if self.state == "running" and self._sampler is None:
            self._sampler = PeriodicCallback(self._sample_tick, self.interval * 1000)
            self._sampler.start()

    async def snapshot(self, since: int | None = None) -> dict[str, Any]:
        """Ask the scheduler for its load (registering :class:`TaskCounter` once);
        ``durations`` lists compute times of tasks finished after the ``since``-th."""
        if not self._registered:
            await self.scheduler.register_scheduler_plugin(
                plugin=dask_pickle.dumps(TaskCounter()), name=PLUGIN_NAME, idempotent=True)
            self._registered = True
        try:
            return await getattr(self.scheduler, _HANDLER)(
                since=sys.maxsize if since is None else since)
        except Exception:
            self._registered = False  # e.g. a restarted scheduler: register again
            raise

    def _error(self, t: float, where: str, exc: BaseException) -> None:
        self.errors += 1
        log.error("adaptive_lab PolicyAdaptive: %s failed: %r; holding the current size",
                  where, exc, exc_info=exc)
        if self.recorder is not None:
            self.recorder.event({"t": round(t, 6), "type": "error", "where": where,
                                 "message": f"{type(exc).__name__}: {exc}"})

    # -- observing ------------------------------------------------------------------
    def _window_obs(self, snap: dict[str, Any], win: _Window, t: float,
                    planned: int) -> Observation:
        """The observation of ``win`` up to ``snap``; then start the next window."""
        completed = int(snap["completed"])
        new = 0 if win.seen is None else max(0, completed - win.seen)
        durations = snap["durations"][len(snap["durations"]) - new:] if new else []
        obs = observation_from_snapshot(
            {**snap, "durations": durations}, t=t, workers=planned, dt=t - win.t,
            prev_finished=win.finished, min_workers=self.minimum, max_workers=self._max_int)
        win.t, win.finished, win.seen = t, obs.completed + obs.failed, completed
        return obs

    async def _read(self, decide: bool
                    ) -> tuple[dict[str, Any], Observation, Observation | None] | None:
        """One scheduler snapshot as (snapshot, sample observation, decision
        observation or None); None if the scheduler could not be read."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            seen = [w.seen for w in (self._sample_win, self._decision_win) if w.seen is not None]
            try:
                snap = await self.snapshot(min(seen) if seen else None)
            except Exception as exc:
                self._error(self.now(), "scheduler snapshot", exc)
                return None
            t, planned = self.now(), len(self.plan)
            sample = self._window_obs(snap, self._sample_win, t, planned)
            decision = self._window_obs(snap, self._decision_win, t, planned) if decide else None
            return snap, sample, decision

    async def _sample_tick(self) -> None:
        """Sample while a decision is stuck (Dask awaits the cluster while requested
        workers start), so the trace has no hole exactly when the cluster scales."""
        if not self._ready or self.state == "stopped" or self.recorder is None:
            return
        if self.now() - self._last_decision_t < 1.5 * self.interval:
            return
        read = await self._read(decide=False)
        if read is not None:
            snap, obs, _ = read
            self._record_sample(obs, snap, self._last_target)

    # -- the Adaptive hooks ------------------------------------------------------
    async def target(self) -> int:
        """Observe the scheduler, ask the policy, return its clamped target.

        On any error (scheduler unreachable, policy raising) the current planned size
        is returned, so Dask holds.
        """
        planned = len(self.plan)
        if not self._ready:
            return planned
        read = await self._read(decide=True)
        if read is None:
            return planned
        snap, sample, obs = read
        assert obs is not None
        self._last_decision_t = obs.t
        self.last_snapshot, self.last_observation = snap, obs
        try:
            d = self.policy(obs)
            if not isinstance(d, Decision):
                raise TypeError(f"policy returned {d!r}, not a Decision")
            target = clamp_target(d.target, self.minimum, self._max_int)
        except Exception as exc:
            self._error(obs.t, "policy", exc)
            target = obs.workers
        else:
            reason = d.reason if target == d.target else (
                f"{d.reason} (clamped to [{self.minimum}, {self.maximum}])")
            self.last_decision = Decision(target, reason)
        self._last_target = target
        self._record_sample(sample, snap, target)
        return target

    def _record_sample(self, obs: Observation, snap: dict[str, Any],
                       target: int | None) -> None:
        if self.recorder is None:
            return
        self.recorder.sample({
            "t": round(obs.t, 6), "workers": obs.workers, "alive": obs.alive,
            "busy": obs.busy, "queued": obs.queue_depth, "submitted": obs.submitted,
            "completed": obs.completed, "failed": obs.failed,
            "cpu_percent": obs.cpu_percent, "memory_percent": obs.memory_percent,
            "process_cpu_percent": obs.process_cpu_percent,
            "available_mb": obs.available_mb, "rss_mb": snap["rss_mb"],
            "throughput": obs.throughput, "latency_mean": obs.latency_mean,
            "latency_p50": obs.latency_p50, "latency_p95": obs.latency_p95,
            # dask-specific extras (the trace format keeps unknown sample fields)
            "target": target, "processing": snap["processing"],
            "busy_threads": snap["busy_threads"], "threads": snap["threads"],
            "occupancy": snap["occupancy"],
        })

    def _scale_event(self, old: int, new: int, reason: str) -> None:
        if self.recorder is not None:
            self.recorder.event({"t": round(self.now(), 6), "type": "scale",
                                 "from": old, "to": new, "reason": reason})

    def _reason(self) -> str:
        return self.last_decision.reason if self.last_decision else "dask recommendation"

    async def scale_up(self, n: int) -> None:
        if self.state == "stopped":  # an adapt() in flight when stop() was called
            return
        self._scale_event(len(self.plan), int(n), self._reason())  # at decision time
        await super().scale_up(n)

    async def scale_down(self, workers: Sequence[Any]) -> None:
        if not workers or self.state == "stopped":
            return
        old = len(self.plan)
        self._scale_event(old, max(0, old - len(workers)),
                          f"{self._reason()} (dask retires {len(workers)} worker(s) "
                          f"after wait_count={self.wait_count} consecutive recommendations)")
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
