"""The control loop: sample, observe, ask the policy, clamp, resize, record.

Like dask's ``adaptive_core``: the policy computes a target, and clamping and
recording live here, in one place. The controller drives anything with ``stats()``
and ``resize(n)`` (the live pool, a simulated pool, a Dask cluster adapter), on any
clock, so the very same code runs live and in simulation. It never takes the pool
down: if the metrics source or the policy raises, it logs, records an ``error``
event and holds the current size.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from typing import Any, Protocol

from adaptive_lab.control.clock import Clock, SystemClock
from adaptive_lab.control.metrics import MetricsSource, PsutilMetrics, SystemSample, latency_stats
from adaptive_lab.policies.base import Decision, Observation, Policy, clamp_target
from adaptive_lab.trace.recorder import Recorder

log = logging.getLogger("adaptive_lab")
NAN = float("nan")


class Resizable(Protocol):
    """What a controller drives: a pool-like object."""

    def stats(self) -> Any: ...

    def resize(self, n: int, reason: str = ...) -> int: ...


class _Window:
    """Counters at the start of a measurement window."""

    __slots__ = ("finished", "t")

    def __init__(self, t: float, finished: int) -> None:
        self.t = t
        self.finished = finished


class Controller:
    """Drives ``target.resize`` from ``policy`` decisions.

    Parameters
    ----------
    target
        The pool (``stats()``, ``resize(n, reason)``; ``recent_task_times(n)`` and
        ``add_resize_listener`` are used when present).
    policy
        A :class:`Policy`, or ``None`` to only sample and record.
    interval
        Seconds between decisions.
    sample_period
        Seconds between samples (default ``min(interval, 0.5)``).
    min_workers, max_workers
        Every decision is clamped to these.
    clock, metrics, recorder
        Injected :class:`~adaptive_lab.clock.Clock` (default real time), metrics
        source (default :class:`PsutilMetrics`) and :class:`Recorder` (optional).
    log_interval
        Seconds between metrics log lines (``logging``, logger ``adaptive_lab``).
    """

    def __init__(
        self,
        target: Resizable,
        policy: Policy | None,
        *,
        interval: float = 5.0,
        sample_period: float | None = None,
        min_workers: int = 1,
        max_workers: int = sys.maxsize,
        clock: Clock | None = None,
        metrics: MetricsSource | None = None,
        recorder: Recorder | None = None,
        workload: dict | None = None,
        log_interval: float = 30.0,
    ) -> None:
        for name, v in (("interval", interval), ("log_interval", log_interval)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        if sample_period is None:
            sample_period = min(interval, 0.5)
        if not (isinstance(sample_period, (int, float)) and math.isfinite(sample_period)
                and sample_period > 0):
            raise ValueError(f"sample_period must be a positive number, got {sample_period!r}")
        if min_workers < 1 or min_workers > max_workers:
            raise ValueError(f"min_workers must be in [1, max_workers], got {min_workers}")
        self.target = target
        self.policy = policy
        self.interval = float(interval)
        self.sample_period = float(sample_period)
        self.min_workers = int(min_workers)
        self.max_workers = int(max_workers)
        self.clock: Clock = clock or SystemClock()
        self.metrics: MetricsSource | None = metrics
        self.recorder = recorder
        self.log_interval = float(log_interval)
        self.last_observation: Observation | None = None
        self.last_decision: Decision | None = None
        self.last_sample: dict[str, Any] | None = None
        self.scale_events = 0
        self.errors = 0
        self.ticks = 0
        self._tick_lock = threading.Lock()  # one tick at a time (re-entrancy guard)
        self._ticked = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = self.clock.now()
        st = target.stats()
        fin = st.completed + st.failed
        self._sample_win = _Window(0.0, fin)
        self._decision_win = _Window(0.0, fin)
        self._next_decision = self.interval
        self._next_log = self.log_interval
        self._in_tick = False
        if recorder is not None:
            recorder.set_header(
                policy=policy.describe() if policy is not None else {"name": "manual"},
                bounds={"min_workers": self.min_workers, "max_workers": self.max_workers},
                interval=self.interval, sample_period=self.sample_period,
                workload=workload or {},
            )
        if hasattr(target, "add_resize_listener"):
            target.add_resize_listener(self._on_resize)
            self._listening = True
        else:
            self._listening = False

    # -- time -------------------------------------------------------------------
    def now(self) -> float:
        """Seconds since this controller started, on its clock."""
        return self.clock.now() - self._t0

    def set_bounds(self, min_workers: int, max_workers: int) -> None:
        if not 1 <= min_workers <= max_workers:
            raise ValueError(f"need 1 <= min_workers <= max_workers, got "
                             f"{min_workers}, {max_workers}")
        self.min_workers, self.max_workers = int(min_workers), int(max_workers)

    # -- one step ---------------------------------------------------------------
    def _read_metrics(self, t: float) -> tuple[SystemSample, bool]:
        try:
            if self.metrics is None:
                self.metrics = PsutilMetrics()
            return self.metrics.read(), True
        except Exception as exc:
            self._error(t, "metrics", exc)
            return SystemSample(), False

    def _error(self, t: float, where: str, exc: BaseException) -> None:
        self.errors += 1
        log.error("adaptive_lab controller: %s failed: %r; holding the current size",
                  where, exc, exc_info=exc)
        if self.recorder is not None:
            self.recorder.event({"t": t, "type": "error", "where": where,
                                 "message": f"{type(exc).__name__}: {exc}"})

    def _task_times(self, st: Any, n: int) -> list[float]:
        if n <= 0:
            return []
        get = getattr(self.target, "recent_task_times", None)
        if get is not None:
            return list(get(n))
        return list(st.task_times)[-n:]

    def tick(self) -> Decision | None:
        """Sample once and, if a decision is due, decide and resize.

        Returns the decision taken in this tick (None if none was due or it failed).
        """
        with self._tick_lock:
            t = self.now()
            st = self.target.stats()
            sysm, metrics_ok = self._read_metrics(t)
            fin = st.completed + st.failed
            sample = self._sample(t, st, sysm, fin)
            if self.recorder is not None:
                self.recorder.sample(sample)
            self.last_sample = sample
            decision = None
            if t + 1e-9 >= self._next_decision:
                decision = self._decide(t, st, sysm, fin, metrics_ok)
                self._next_decision = max(self._next_decision + self.interval, t + 1e-9)
            if t + 1e-9 >= self._next_log:
                self._next_log = t + self.log_interval
                log.info("adaptive_lab t=%.1fs workers=%d alive=%d busy=%d queued=%d "
                         "done=%d thr=%.1f/s cpu=%.0f%% mem=%.0f%%", t, st.size, st.alive,
                         st.busy, st.queued, fin, sample["throughput"], sysm.cpu_percent,
                         sysm.memory_percent)
        with self._ticked:
            self.ticks += 1
            self._ticked.notify_all()
        return decision

    def _sample(self, t: float, st: Any, sysm: SystemSample, fin: int) -> dict[str, Any]:
        win = self._sample_win
        dt = t - win.t
        n = fin - win.finished
        mean, p50, p95 = latency_stats(self._task_times(st, min(n, 4096)))
        self._sample_win = _Window(t, fin)
        return {
            "t": round(t, 6), "workers": st.size, "alive": st.alive, "busy": st.busy,
            "queued": st.queued, "submitted": st.submitted, "completed": st.completed,
            "failed": st.failed, "cpu_percent": sysm.cpu_percent,
            "memory_percent": sysm.memory_percent,
            "process_cpu_percent": sysm.process_cpu_percent,
            "process_user_cpu_percent": sysm.process_user_cpu_percent,
            "available_mb": sysm.available_mb, "rss_mb": sysm.rss_mb,
            "throughput": n / dt if dt > 0 else NAN,
            "latency_mean": mean, "latency_p50": p50, "latency_p95": p95,
        }

    def observe(self, t: float, st: Any, sysm: SystemSample, fin: int) -> Observation:
        """Build the observation of the window since the previous decision."""
        win = self._decision_win
        dt = t - win.t
        n = fin - win.finished
        mean, p50, p95 = latency_stats(self._task_times(st, min(n, 4096)))
        return Observation(
            t=t, workers=st.size, busy=st.busy, queue_depth=st.queued,
            cpu_percent=sysm.cpu_percent, memory_percent=sysm.memory_percent,
            process_cpu_percent=sysm.process_cpu_percent, available_mb=sysm.available_mb,
            alive=st.alive, completed=st.completed, submitted=st.submitted, failed=st.failed,
            throughput=n / dt if dt > 0 else NAN, latency_mean=mean, latency_p50=p50,
            latency_p95=p95, dt=dt, min_workers=self.min_workers, max_workers=self.max_workers,
            cores=sysm.cores, process_user_cpu_percent=sysm.process_user_cpu_percent,
        )

    def _decide(self, t: float, st: Any, sysm: SystemSample, fin: int,
                metrics_ok: bool) -> Decision | None:
        obs = self.observe(t, st, sysm, fin)
        self._decision_win = _Window(t, fin)
        self.last_observation = obs
        if self.policy is None or not metrics_ok:
            return None
        try:
            d = self.policy(obs)
            if not isinstance(d, Decision):
                raise TypeError(f"policy returned {d!r}, not a Decision")
        except Exception as exc:
            self._error(t, "policy", exc)
            return None
        target = clamp_target(d.target, self.min_workers, self.max_workers)
        reason = d.reason if target == d.target else (
            f"{d.reason} (clamped to [{self.min_workers}, {self.max_workers}])")
        d = Decision(target, reason)
        self.last_decision = d
        if target != st.size:
            try:
                self.target.resize(target, reason)
            except TypeError:
                self.target.resize(target)
            if not self._listening:
                self._on_resize(st.size, target, reason)
        return d

    def _on_resize(self, old: int, new: int, reason: str) -> None:
        self.scale_events += 1
        if self.recorder is not None:
            self.recorder.event({"t": round(self.now(), 6), "type": "scale",
                                 "from": old, "to": new, "reason": reason})

    def phase(self, name: str, **fields: Any) -> None:
        """Record a phase marker (e.g. "latency step") at the current time."""
        if self.recorder is not None:
            self.recorder.event({"t": round(self.now(), 6), "type": "phase", "name": name,
                                 **fields})

    # -- background thread ------------------------------------------------------
    def start(self) -> None:
        """Run ticks every ``sample_period`` on a daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="adaptive-lab-controller",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_t = self.clock.now()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # never let the loop die
                self._error(self.now(), "tick", exc)
            next_t += self.sample_period
            delay = next_t - self.clock.now()
            if delay < 0:
                next_t = self.clock.now()
                delay = 0.0
            if self.clock.wait(self._stop, delay):
                break

    def stop(self, join: bool = True, final_sample: bool = True) -> None:
        """Stop the thread; by default take one last sample so the trace covers the end."""
        self._stop.set()
        t = self._thread
        if join and t is not None and t is not threading.current_thread():
            t.join()
        if final_sample:
            self.final_sample()

    def final_sample(self) -> None:
        """Record one more sample now, unless one was just taken (best effort)."""
        try:
            with self._tick_lock:
                now = self.now()
                if self.last_sample is not None and now <= self.last_sample["t"]:
                    return
                st = self.target.stats()
                sysm, _ = self._read_metrics(now)
                sample = self._sample(now, st, sysm, st.completed + st.failed)
                if self.recorder is not None:
                    self.recorder.sample(sample)
                self.last_sample = sample
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("final sample failed: %r", exc)

    def wait_ticks(self, n: int, timeout: float = 5.0) -> bool:
        """Block (real time) until at least ``n`` ticks happened in total."""
        with self._ticked:
            return self._ticked.wait_for(lambda: self.ticks >= n, timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
