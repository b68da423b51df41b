"""Closed-loop simulation and the replay entry points.

* :func:`simulate` (closed loop): a policy against a fitted workload model on
  simulated time, through the real :class:`~adaptive_lab.controller.Controller`, with
  a :class:`SimulatedPool` in place of the executor;
* re-exported: :func:`~adaptive_lab.replay.replay` (open loop),
* :class:`~adaptive_lab.model.WorkloadModel` (fitted from a trace),
* :func:`~adaptive_lab.sweep.sweep` (parameter grids, Pareto front),
* re-exported: :func:`~adaptive_lab.record.record_scan`, which records a real scan
  (it lives in :mod:`adaptive_lab.record`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adaptive_lab.control.clock import FakeClock
from adaptive_lab.control.controller import Controller
from adaptive_lab.control.metrics import SystemSample
from adaptive_lab.policies.base import Policy
from adaptive_lab.sim.model import WorkloadModel
from adaptive_lab.trace.format import Trace
from adaptive_lab.trace.recorder import Recorder

__all__ = ["SimClock", "SimulatedMetrics", "SimulatedPool", "describe_model", "simulate"]


class SimulatedStats:
    """What :meth:`SimulatedPool.stats` returns (the fields a controller reads);
    ``task_cpu_seconds`` is the model's CPU seconds of the tasks done so far."""

    __slots__ = ("alive", "busy", "completed", "failed", "idle", "max_workers",
                 "min_workers", "queued", "size", "submitted", "task_cpu_seconds",
                 "task_times")

    def __init__(self, size: int, busy: int, queued: int, submitted: int, completed: int,
                 min_workers: int, max_workers: int, task_cpu_seconds: float) -> None:
        self.size = self.alive = size
        self.busy = busy
        self.idle = size - busy
        self.queued = queued
        self.submitted = submitted
        self.completed = completed
        self.failed = 0
        self.task_times = ()
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.task_cpu_seconds = task_cpu_seconds


class SimClock(FakeClock):
    """A :class:`FakeClock` for single-threaded simulation: no lock, no waking."""

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._now += seconds
        return self._now


class SimulatedPool:
    """A pool on simulated time whose tasks follow a :class:`WorkloadModel`.

    A fluid model: over each step, ``k = min(size, tasks in the pool)`` workers are
    busy and tasks complete at the model's throughput at ``k``. Backlogged segments
    keep up to ``model.window`` tasks queued or running; arrival-limited ones offer
    tasks at their ``arrival_rate``. Counters are whole tasks (the fluid remainder is
    carried). Implements ``stats()``, ``resize(n, reason)`` and
    ``recent_task_times(n)``, which returns up to 16 representative task times (the
    quantiles of a log-normal with the segment's spread around the model latency),
    so the controller's mean/p50/p95 are right without a list per task.
    """

    def __init__(self, model: WorkloadModel, size: int, *, tasks: int | None = None,
                 min_workers: int = 1, max_workers: int = 4096, noise: float = 0.0,
                 seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.model = model
        self.size = int(size)
        self.min_workers, self.max_workers = int(min_workers), int(max_workers)
        total = model.total_tasks
        scale = 1.0 if tasks is None or total == 0 else tasks / total
        self._seg_tasks = [s.tasks * scale for s in model.segments]
        self.total = float(sum(self._seg_tasks)) if tasks is None else float(tasks)
        self.seg = 0
        self.done = 0.0  # fluid completions
        self.t = 0.0
        self.busy_f = 0.0
        self.cpu_seconds = 0.0
        self.finished_at: float | None = None if self.total > 0 else 0.0
        self._noise = float(noise)
        self._rng = np.random.default_rng(seed)
        self._q = self._quantiles()
        self._times_key: tuple[int, float] | None = None
        self._times: list[float] = []
        self._start_segment()

    # -- pool protocol ------------------------------------------------------------
    def resize(self, n: int, reason: str = "") -> int:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        old, self.size = self.size, int(n)
        return old

    def _counts(self) -> tuple[int, int, int, int]:
        done = int(self.done + 1e-6)
        in_pool = max(0.0, min(self._seg_released - self._seg_done, float(self.model.window)))
        busy = round(min(self.size, in_pool))
        submitted = max(done, int(self.done + in_pool + 1e-6))
        queued = max(0, submitted - done - busy)
        return done, busy, queued, submitted

    def stats(self) -> SimulatedStats:
        done, busy, queued, submitted = self._counts()
        return SimulatedStats(self.size, busy, queued, submitted, done, self.min_workers,
                              self.max_workers, self.cpu_seconds)

    def recent_task_times(self, n: int) -> list[float]:
        if n <= 0:
            return []
        seg = min(self.seg, len(self._q) - 1)
        key = (seg, self.busy_f)
        if key == self._times_key and n >= 16:
            return self._times
        lat = self.model.latency(max(1.0, self.busy_f), seg)
        q = self._q[seg]
        if n >= len(q):
            self._times_key, self._times = key, [lat * v for v in q]
            return self._times
        step = len(q) / n
        return [lat * q[int(i * step + step / 2)] for i in range(n)]

    def _quantiles(self) -> list[list[float]]:
        from statistics import NormalDist

        probs = (np.arange(16) + 0.5) / 16
        z = np.array([NormalDist().inv_cdf(float(p)) for p in probs])
        out = []
        for s in self.model.segments:
            m = np.exp(s.sigma * z)
            out.append((m / m.mean()).tolist())
        return out

    # -- time ---------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def _start_segment(self) -> None:
        """Backlogged segments release all their tasks at once, or the first of their
        ``rounds`` (the rest one by one, each when the previous is done)."""
        self._seg_done = 0.0
        self._seg_released = 0.0
        self._round = 0.0
        s = self.model.segments[self.seg]
        if s.arrival_rate is None and s.submit_rate is None:
            total = self._seg_tasks[self.seg]
            if s.rounds and s.rounds > 1:
                self._round = total / s.rounds
            self._seg_released = min(total, self._round) if self._round else total

    def advance(self, dt: float) -> None:
        """Run the model for ``dt`` simulated seconds."""
        if dt < 0:
            raise ValueError(f"dt must be >= 0, got {dt}")
        factor = 1.0
        if self._noise > 0:
            factor = max(0.0, 1.0 + self._noise * float(self._rng.standard_normal()))
        model, window = self.model, float(self.model.window)
        left = dt
        while left > 1e-12 and self.finished_at is None:
            seg = model.segments[self.seg]
            seg_total = self._seg_tasks[self.seg]
            if seg_total - self._seg_done <= 1e-6:
                if self.seg + 1 >= len(self._seg_tasks):
                    self.done = self.total
                    self.finished_at = self.t
                    break
                self.seg += 1
                self._start_segment()
                continue
            in_sys = self._seg_released - self._seg_done
            r = seg.arrival_rate if seg.arrival_rate is not None else seg.submit_rate
            unrel = seg_total - self._seg_released
            if self._round and in_sys <= 1e-6 and unrel > 1e-6:  # the next round
                self._seg_released += min(unrel, self._round)
                continue
            if r is None or unrel <= 1e-9 or r <= 0:
                if r is not None and r <= 0 and unrel > 1e-9:  # a pause
                    self.busy_f = 0.0
                    self.t += left
                    left = 0.0
                    break
                k = min(float(self.size), in_sys, window)
                x = model.throughput(k, self.seg) * factor
                if x <= 0:
                    break
                h = min(left, in_sys / x)
                got = x * h
                add = 0.0
            else:  # arrival-limited: tasks arrive at r until the segment's are all in
                h = min(left, unrel / r)
                add = r * h
                kcap = min(float(self.size), window)
                cap = model.throughput(kcap, self.seg) * factor
                got = min(in_sys + add, cap * h)
                if got < cap * h:  # under capacity: busy by Little's law
                    rate = got / h if h > 0 else 0.0
                    k = min(kcap, rate * model.latency(min(kcap, rate * seg.latency_1),
                                                       self.seg))
                else:
                    k = kcap
            self._seg_released += add
            self._seg_done += got
            self.done += got
            self.cpu_seconds += got * seg.cpu_s
            self.busy_f = k
            left -= h
            self.t += h
        if left > 1e-12:
            self.t += left
            if self.finished_at is not None:
                self.busy_f = 0.0


class SimulatedMetrics:
    """Machine readings for a :class:`SimulatedPool`: process CPU from the model
    (CPU-seconds used in the last step, % of the model's ``cores``), system CPU = that
    as a share of the machine's ``cpu_count`` CPUs + the recorded background, memory as
    recorded in the current segment; ``cores`` as a live reading has it. Other
    tenants' CPU is drawn per reading from the segment's recorded quantiles
    (``background_q``, seeded: deterministic), else its median."""

    def __init__(self, pool: SimulatedPool, seed: int = 0) -> None:
        import random

        self.pool = pool
        self._t = pool.t
        self._cpu = pool.cpu_seconds
        self._rng = random.Random(seed)  # other tenants' CPU: which recorded quantile

    def read(self) -> SystemSample:
        p = self.pool
        dt = p.t - self._t
        used = p.cpu_seconds - self._cpu
        self._t, self._cpu = p.t, p.cpu_seconds
        cores = max(1, p.model.cores)
        share = cores / max(cores, p.model.cpu_count or cores)
        pct = min(100.0, 100.0 * used / (dt * cores)) if dt > 0 else 0.0
        s = p.model.segments[min(p.seg, len(p.model.segments) - 1)]
        bg = s.background_q[self._rng.randrange(len(s.background_q))] \
            if s.background_q else s.background_cpu
        return SystemSample(cpu_percent=min(100.0, pct * share + bg),
                            memory_percent=s.memory_percent, available_mb=s.available_mb,
                            process_cpu_percent=pct, rss_mb=s.rss_mb, cores=float(cores))


def simulate(model: WorkloadModel | Trace, policy: Policy, *, duration: float | None = None,
             tasks: int | None = None, interval: float | None = None,
             sample_period: float | None = None, min_workers: int | None = None,
             max_workers: int | None = None, initial_workers: int | None = None,
             seed: int = 0, noise: float = 0.0, max_duration: float | None = None) -> Trace:
    """Closed-loop simulation of ``policy`` on ``model``, through the real Controller.

    Parameters
    ----------
    model
        A :class:`WorkloadModel` (a :class:`Trace` is fitted first).
    policy
        Any policy; a fresh copy (``with_params()``) is used.
    duration
        Stop after this many simulated seconds (default: when all tasks are done).
    tasks
        Total tasks (default: the model's, i.e. the source run's).
    interval, sample_period, min_workers, max_workers, initial_workers
        Controller settings; defaults from the model's source trace (header
        ``interval``, ``sample_period``, ``bounds``), else 1 s / 0.5 s / 1 / 4096;
        the initial size defaults to ``min_workers``, as a live pool with a policy.
    seed, noise
        ``noise`` is the relative standard deviation of each step's throughput
        (default 0: deterministic fluid); ``seed`` seeds it and the draws of other
        tenants' CPU (the model's recorded quantiles), so a seed gives one result.
    max_duration
        Safety stop when a policy never finishes the work (default 20x the source
        run's duration, at least 600 s).

    Returns a live-format :class:`Trace`; header ``simulated: true``, ``model`` (the
    model's dict) and ``makespan_s`` (simulated seconds until the last task ended,
    None if unfinished).
    """
    if isinstance(model, Trace):
        model = WorkloadModel.fit(model)
    if not isinstance(model, WorkloadModel):
        raise TypeError(f"model must be a WorkloadModel or Trace, got {type(model).__name__}")
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
    src = model.source
    b = src.get("bounds") or {}
    ivl = float(interval if interval is not None else src.get("interval") or 1.0)
    sp = sample_period if sample_period is not None else src.get("sample_period")
    sp = float(sp) if sp is not None else min(ivl, 0.5)
    lo = int(min_workers if min_workers is not None else b.get("min_workers") or 1)
    hi = int(max_workers if max_workers is not None else b.get("max_workers") or 4096)
    if not 1 <= lo <= hi:
        raise ValueError(f"need 1 <= min_workers <= max_workers, got {lo}, {hi}")
    init = int(initial_workers if initial_workers is not None else lo)
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    if tasks is not None and tasks < 0:
        raise ValueError(f"tasks must be >= 0, got {tasks}")
    limit = duration if duration is not None else (
        max_duration or max(600.0, 20.0 * float(src.get("duration_s") or 0.0)))
    pol = policy.with_params()
    clock = SimClock()
    pool = SimulatedPool(model, init, tasks=tasks, min_workers=lo, max_workers=hi,
                         noise=noise, seed=seed)
    rec = Recorder()
    ctl = Controller(pool, pol, interval=ivl, sample_period=sp, min_workers=lo,
                     max_workers=hi, clock=clock, metrics=SimulatedMetrics(pool, seed),
                     recorder=rec, workload=dict(src.get("workload") or {}),
                     log_interval=1e12)
    steps = math.ceil(limit / sp - 1e-9)
    tick, advance, cadv = ctl.tick, pool.advance, clock.advance
    tick()
    for _ in range(steps):
        cadv(sp)
        advance(sp)
        tick()
        if pool.finished_at is not None and duration is None:
            break
    tr = rec.trace()
    tr.header["simulated"] = True
    # the machine simulated is the model's (its cores), not the one running this
    tr.header["host"] = {**(tr.header.get("host") or {}), "cores": model.cores,
                         "cpu_count": model.cpu_count}
    tr.header["seed"] = seed
    tr.header["noise"] = noise
    tr.header["model"] = model.to_dict()
    tr.header["makespan_s"] = pool.finished_at
    tr.header["replay"] = {"mode": "closed", "source": dict(src)}
    return tr


def describe_model(model: WorkloadModel) -> list[dict[str, Any]]:
    """One row per segment: the fitted numbers, for printing."""
    rows = []
    for s in model.segments:
        rows.append({"t0": round(s.t0, 2), "t1": round(s.t1, 2), "tasks": s.tasks,
                     "wait_ms": round(s.wait_s * 1e3, 3), "cpu_us": round(s.cpu_s * 1e6, 1),
                     "cpu_slots": round(s.cpu_slots, 2), "efficiency": round(s.efficiency, 3),
                     "capacity_per_s": round(s.capacity, 1),
                     "arrivals": ("backlog" if s.submit_rate is None else
                                  f"backlog, submitter {s.submit_rate:.0f}/s")
                     if s.arrival_rate is None else round(s.arrival_rate, 1),
                     "rounds": s.rounds,
                     "fit_rel_rms": round(s.fit_error, 3)})
    return rows


