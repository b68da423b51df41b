"""The control loop: sample, observe, ask the policy, clamp, resize, record.

Like dask's ``adaptive_core``: the policy computes a target, and clamping and
recording live here, in one place. The controller drives anything with ``stats()``
and ``resize(n, reason)`` (the live pool, a simulated pool, a view of a Dask
cluster), on any clock, so the very same code runs live, in simulation and on a
cluster. It ticks on its own thread (:meth:`Controller.start`) or when its owner calls
:meth:`Controller.tick` (a simulation's loop, Dask's periodic ``adapt``). It never
takes the target down: if ``stats()``, the metrics source or the policy raises, it
logs, records an ``error`` event and holds the current size.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from typing import Any, NamedTuple, Protocol

from adaptive_lab.control.clock import Clock, SystemClock
from adaptive_lab.control.metrics import MetricsSource, PsutilMetrics, SystemSample, latency_stats
from adaptive_lab.control.registry import register, ticked
from adaptive_lab.policies.base import Decision, Observation, Policy, clamp_target
from adaptive_lab.trace.recorder import Recorder

log = logging.getLogger("adaptive_lab")
NAN = float("nan")
#: Task times read per window at most (the latency of a window is that many tasks').
_MAX_TIMES = 4096


class Resizable(Protocol):
    """What a controller drives.

    ``stats()`` returns an object with ``size``, ``alive``, ``busy``, ``queued``,
    ``submitted``, ``completed``, ``failed`` and ``task_times`` (recent run times);
    ``task_cpu_seconds`` (cumulative CPU seconds of the worker threads) is read when
    present. Optional extras, used when the target has them:
    ``recent_task_times(n)`` (the last ``n`` run times, instead of ``task_times``),
    ``add_resize_listener(fn)`` (the target reports each resize itself as
    ``fn(old, new, reason)``, e.g. because it happens later than asked) and
    ``sample_fields()`` (extra fields for the tick's trace sample, read after the
    tick's decision).
    """

    def stats(self) -> Any: ...

    def resize(self, n: int, reason: str = ...) -> int: ...


def _cpu_seconds(st: Any) -> float:
    """``st.task_cpu_seconds`` as a float; NaN when missing or not a number."""
    v = getattr(st, "task_cpu_seconds", NAN)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return NAN
    return v if math.isfinite(v) else NAN


class _Window:
    """Counters at the start of a measurement window (``finished`` is None while
    unknown: rates of the first window are then NaN, not the target's whole history)."""

    __slots__ = ("cpu", "finished", "t")

    def __init__(self, t: float, finished: int | None, cpu: float) -> None:
        self.t = t
        self.finished = finished
        self.cpu = cpu


class _Rates(NamedTuple):
    """What a window measured: its length, throughput, task latency and task CPU."""

    dt: float
    throughput: float
    mean: float
    p50: float
    p95: float
    task_cpu_cores: float


class Controller:
    """Drives ``target.resize`` from ``policy`` decisions.

    Parameters
    ----------
    target
        What is sized (see :class:`Resizable`).
    policy
        A :class:`Policy`, or ``None`` to only sample and record.
    interval
        Seconds between decisions.
    sample_period
        Seconds between samples (default ``min(interval, 0.5)``).
    min_workers, max_workers
        Every decision is clamped to these (0 is allowed for targets that can have
        no workers, such as a Dask cluster; a pool refuses it itself).
    clock, metrics, recorder
        Injected :class:`~adaptive_lab.control.clock.Clock` (default real time),
        metrics source (default :class:`PsutilMetrics`) and :class:`Recorder`
        (optional).
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
        if min_workers < 0 or min_workers > max_workers:
            raise ValueError(f"min_workers must be in [0, max_workers], got {min_workers}")
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
        try:
            st = target.stats()
            fin: int | None = st.completed + st.failed
            cpu = _cpu_seconds(st)
        except Exception as exc:  # e.g. no reading yet: the first window is unknown
            log.debug("controller: no stats at start (%r); first window unknown", exc)
            fin, cpu = None, NAN
        self._sample_win = _Window(0.0, fin, cpu)
        self._decision_win = _Window(0.0, fin, cpu)
        self._next_decision = self.interval
        self._next_log = self.log_interval
        self._extras = getattr(target, "sample_fields", None)
        if recorder is not None:
            recorder.set_header(
                policy=policy.describe() if policy is not None else {"name": "manual"},
                bounds={"min_workers": self.min_workers, "max_workers": self.max_workers},
                interval=self.interval, sample_period=self.sample_period,
                workload=workload or {},
            )
        listen = getattr(target, "add_resize_listener", None)
        self._listening = listen is not None
        if listen is not None:
            listen(self._on_resize)

    # -- time -------------------------------------------------------------------
    def now(self) -> float:
        """Seconds since this controller started, on its clock."""
        return self.clock.now() - self._t0

    def set_bounds(self, min_workers: int, max_workers: int) -> None:
        if not 0 <= min_workers <= max_workers:
            raise ValueError(f"need 0 <= min_workers <= max_workers, got "
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

    def _rates(self, win: _Window, t: float, st: Any) -> _Rates:
        """Measure the window ``win`` up to now (``st`` at time ``t``) and restart it.

        Rates are NaN while the window's start is unknown, or when the target's
        counters went back (e.g. a restarted Dask scheduler)."""
        fin, cpu = st.completed + st.failed, _cpu_seconds(st)
        dt = t - win.t
        n = -1 if win.finished is None else fin - win.finished
        mean, p50, p95 = latency_stats(self._task_times(st, min(n, _MAX_TIMES)))
        used = cpu - win.cpu
        win.t, win.finished, win.cpu = t, fin, cpu
        ok = dt > 0
        return _Rates(dt, n / dt if ok and n >= 0 else NAN, mean, p50, p95,
                      used / dt if ok and used >= 0 else NAN)  # NaN - x: NaN, fails

    def tick(self, decide: bool | None = None) -> Decision | None:
        """Sample once and decide: when due (``decide=None``), now (``True``) or not.

        A caller that paces the decisions itself (Dask's periodic ``adapt``) passes
        ``True``. Returns the decision taken in this tick (None if none was due or it
        failed).
        """
        with self._tick_lock:
            decision = self._step(decide)
        with self._ticked:
            self.ticks += 1
            self._ticked.notify_all()
        return decision

    def _step(self, decide: bool | None) -> Decision | None:
        t = self.now()
        try:
            st = self.target.stats()
        except Exception as exc:
            self._error(t, "stats", exc)
            return None
        sysm, metrics_ok = self._read_metrics(t)
        sample = self._sample(t, st, sysm)
        decision = None
        due = t + 1e-9 >= self._next_decision if decide is None else decide
        if due:
            decision = self._decide(t, st, sysm, metrics_ok)
            self._next_decision = max(self._next_decision + self.interval, t + 1e-9)
        if self._extras is not None:
            sample.update(self._extras())
        if self.recorder is not None:
            self.recorder.sample(sample)
        self.last_sample = sample
        if t + 1e-9 >= self._next_log:
            self._next_log = t + self.log_interval
            log.info("adaptive_lab t=%.1fs workers=%d alive=%d busy=%d queued=%d "
                     "done=%d thr=%.1f/s cpu=%.0f%% mem=%.0f%%", t, st.size, st.alive,
                     st.busy, st.queued, st.completed + st.failed, sample["throughput"],
                     sysm.cpu_percent, sysm.memory_percent)
        ticked(self, st)  # exporters read the window (a no-op without one)
        return decision

    def _sample(self, t: float, st: Any, sysm: SystemSample) -> dict[str, Any]:
        r = self._rates(self._sample_win, t, st)
        return {
            "t": round(t, 6), "workers": st.size, "alive": st.alive, "busy": st.busy,
            "queued": st.queued, "submitted": st.submitted, "completed": st.completed,
            "failed": st.failed, "cpu_percent": sysm.cpu_percent,
            "memory_percent": sysm.memory_percent,
            "process_cpu_percent": sysm.process_cpu_percent,
            "process_user_cpu_percent": sysm.process_user_cpu_percent,
            "task_cpu_cores": r.task_cpu_cores,
            "available_mb": sysm.available_mb, "rss_mb": sysm.rss_mb,
            "throughput": r.throughput,
            "latency_mean": r.mean, "latency_p50": r.p50, "latency_p95": r.p95,
        }

    def observe(self, t: float, st: Any, sysm: SystemSample) -> Observation:
        """The observation of the window since the previous decision (and restart it)."""
        r = self._rates(self._decision_win, t, st)
        return Observation(
            t=t, workers=st.size, busy=st.busy, queue_depth=st.queued,
            cpu_percent=sysm.cpu_percent, memory_percent=sysm.memory_percent,
            process_cpu_percent=sysm.process_cpu_percent, available_mb=sysm.available_mb,
            alive=st.alive, completed=st.completed, submitted=st.submitted, failed=st.failed,
            throughput=r.throughput, latency_mean=r.mean, latency_p50=r.p50,
            latency_p95=r.p95, dt=r.dt, min_workers=self.min_workers,
            max_workers=self.max_workers, cores=sysm.cores,
            process_user_cpu_percent=sysm.process_user_cpu_percent,
            task_cpu_cores=r.task_cpu_cores,
        )

    def _decide(self, t: float, st: Any, sysm: SystemSample,
                metrics_ok: bool) -> Decision | None:
        obs = self.observe(t, st, sysm)
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
        register(self)  # a live target, for exporters (held weakly)
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
                self._step(decide=False)
        except Exception as exc:  # pragma: no cover - best effort
            log.debug("final sample failed: %r", exc)

    def wait_ticks(self, n: int, timeout: float = 5.0) -> bool:
        """Block (real time) until at least ``n`` ticks happened in total."""
        with self._ticked:
            return self._ticked.wait_for(lambda: self.ticks >= n, timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
