"""Replay a recorded trace under another policy: open loop (exact) or closed loop.

* :func:`replay` (open loop) feeds the *recorded* observations to a policy and lists
  the sizes it would have chosen. It is exact and cheap, but it **ignores feedback**:
  the queue, CPU and throughput it shows the policy are those of the recorded run,
  whatever size the policy picks. Use it to see *when* and *why* a policy would move.
* :func:`simulate` (closed loop) runs the policy against a fitted
  :class:`~adaptive_lab.model.WorkloadModel` on simulated time, through the very same
  :class:`~adaptive_lab.controller.Controller` a live pool uses, with a
  :class:`SimulatedPool` in place of the executor. Other sizes change the queue and
  throughput, as far as the model is right (its error is measured by
  ``adaptive-lab validate-sim``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .clock import FakeClock
from .controller import Controller
from .metrics import SystemSample
from .model import WorkloadModel
from .policies.base import Decision, Observation, Policy, clamp_target
from .trace import Recorder, Trace

__all__ = ["SimClock", "SimulatedMetrics", "SimulatedPool", "SimulatedStats", "replay",
           "simulate", "trace_source"]

NAN = math.nan


def trace_source(trace: Trace) -> dict[str, Any]:
    """A short description of a trace, stored in the headers of replays of it."""
    h = trace.header
    pol = h.get("policy") or {}
    return {"policy": pol if isinstance(pol, dict) else {"name": str(pol)},
            "created": h.get("created"), "samples": len(trace.samples),
            "duration_s": trace.duration, "interval": h.get("interval"),
            "workload": h.get("workload") or {}, "host": h.get("host") or {}}


def _bounds(trace: Trace, min_workers: int | None, max_workers: int | None
            ) -> tuple[int, int]:
    b = trace.header.get("bounds") or {}
    lo = int(min_workers if min_workers is not None else b.get("min_workers") or 1)
    hi = int(max_workers if max_workers is not None else b.get("max_workers") or 4096)
    if not 1 <= lo <= hi:
        raise ValueError(f"need 1 <= min_workers <= max_workers, got {lo}, {hi}")
    return lo, hi


def _interval(trace: Trace, interval: float | None) -> float:
    v = interval if interval is not None else trace.header.get("interval")
    if v is None:
        raise ValueError("interval: the trace header has none; pass interval=")
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ValueError(f"interval must be a positive number of seconds, got {v!r}")
    return float(v)


def decision_indices(t: np.ndarray, interval: float) -> list[int]:
    """Indices of the samples at which a controller with ``interval`` decides.

    The controller's own schedule: the first decision at ``t >= interval``, the next
    due ``interval`` later (or at the next sample if it fell behind).
    """
    out = []
    nxt = interval
    for i, ti in enumerate(t.tolist()):
        if ti + 1e-9 >= nxt:
            out.append(i)
            nxt = max(nxt + interval, ti + 1e-9)
    return out


class _Columns:
    """Per-sample arrays and the cumulative sums observation windows need."""

    def __init__(self, trace: Trace) -> None:
        if not trace.samples:
            raise ValueError("trace has no samples to replay")
        a = trace.to_arrays()
        self.a = a
        self.t = a["t"]
        fin = a["completed"] + np.maximum(a["failed"], 0)
        self.fin = np.maximum(fin, 0)
        n = np.diff(self.fin, prepend=self.fin[0]).astype(float)
        self.cum: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in ("latency_mean", "latency_p50", "latency_p95"):
            v = a[name]
            good = np.isfinite(v) & (n > 0)
            self.cum[name] = (np.concatenate([[0.0], np.cumsum(np.where(good, v * n, 0.0))]),
                              np.concatenate([[0.0], np.cumsum(np.where(good, n, 0.0))]))
        self.decisions: dict[tuple, tuple[list[int], list[dict[str, Any]]]] = {}

    def window_latency(self, name: str, prev: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Completion-weighted mean of a latency column over samples prev+1..idx."""
        s, w = self.cum[name]
        n = w[idx + 1] - w[prev + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, (s[idx + 1] - s[prev + 1]) / np.where(n > 0, n, 1.0), NAN)


def _columns(trace: Trace) -> _Columns:
    """Columns of ``trace``, cached on it while its samples are unchanged (sliders
    replay the same trace again and again)."""
    key = (len(trace.samples), id(trace.samples),
           id(trace.samples[0]) if trace.samples else 0,
           id(trace.samples[-1]) if trace.samples else 0)
    cached = getattr(trace, "_replay_columns", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    cols = _Columns(trace)
    trace._replay_columns = (key, cols)  # type: ignore[attr-defined]
    return cols


def _decision_fields(trace: Trace, interval: float, lo_b: int, hi_b: int
                     ) -> tuple[list[int], list[dict[str, Any]]]:
    """Decision sample indices and the Observation fields at each (except workers)."""
    c = _columns(trace)
    key = (interval, lo_b, hi_b)
    hit = c.decisions.get(key)
    if hit is not None:
        return hit
    a, t = c.a, c.t
    idx_l = decision_indices(t, interval)
    idx = np.asarray(idx_l, dtype=np.int64)
    prev = np.concatenate([[0], idx[:-1]]).astype(np.int64)
    prev_t = np.concatenate([[0.0], t[idx[:-1]]]) if len(idx) else np.zeros(0)
    dt = t[idx] - prev_t
    n = (c.fin[idx] - c.fin[prev]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        thr = np.where(dt > 0, n / np.where(dt > 0, dt, 1.0), NAN)
    cols: dict[str, list] = {
        "t": t[idx].tolist(), "busy": a["busy"][idx].tolist(),
        "queue_depth": a["queued"][idx].tolist(),
        "cpu_percent": a["cpu_percent"][idx].tolist(),
        "memory_percent": a["memory_percent"][idx].tolist(),
        "process_cpu_percent": a["process_cpu_percent"][idx].tolist(),
        "available_mb": a["available_mb"][idx].tolist(),
        "completed": np.maximum(a["completed"][idx], 0).tolist(),
        "submitted": np.maximum(a["submitted"][idx], 0).tolist(),
        "failed": np.maximum(a["failed"][idx], 0).tolist(),
        "throughput": thr.tolist(),
        "latency_mean": c.window_latency("latency_mean", prev, idx).tolist(),
        "latency_p50": c.window_latency("latency_p50", prev, idx).tolist(),
        "latency_p95": c.window_latency("latency_p95", prev, idx).tolist(),
        "dt": dt.tolist(),
    }
    names = list(cols)
    missing = _OBS_FIELDS - set(names) - {"workers", "alive", "min_workers", "max_workers"}
    if missing:  # Observation grew a field: the fast path would leave it unset
        raise RuntimeError(f"replay does not fill Observation fields {sorted(missing)}")
    rows = [dict(zip(names, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    for r in rows:
        r["min_workers"] = lo_b
        r["max_workers"] = hi_b
    c.decisions[key] = (idx_l, rows)
    return idx_l, rows


_OBS_FIELDS = frozenset(f.name for f in dataclasses.fields(Observation))
_new = object.__new__


def _observation(fields: dict[str, Any], size: int) -> Observation:
    """``Observation(workers=size, alive=size, **fields)`` without the frozen
    dataclass's slow ``__init__`` (20 ``object.__setattr__`` calls): the same fields,
    set directly. Equal to the normal construction (tests check it)."""
    o = _new(Observation)
    d = o.__dict__
    d.update(fields)
    d["workers"] = size
    d["alive"] = size
    return o


def observations(trace: Trace, *, interval: float | None = None,
                 min_workers: int | None = None, max_workers: int | None = None
                 ) -> tuple[list[int], list[Observation]]:
    """The observations a controller would have built from ``trace`` (open loop).

    ``workers`` (and ``alive``) are the recorded sizes here; :func:`replay` swaps in
    the replayed policy's own size. Rates cover the window since the previous
    decision, as :meth:`Controller.observe` does; window latencies are the
    completion-weighted means of the samples' (an approximation for p50/p95, exact
    for the mean when each sample saw all of its tasks).
    """
    lo_b, hi_b = _bounds(trace, min_workers, max_workers)
    idx, rows = _decision_fields(trace, _interval(trace, interval), lo_b, hi_b)
    w = [s["workers"] for s in trace.samples]
    return idx, [_observation(r, w[i]) for i, r in zip(idx, rows, strict=True)]


def replay(trace: Trace, policy: Policy, *, interval: float | None = None,
           min_workers: int | None = None, max_workers: int | None = None,
           initial_workers: int | None = None) -> Trace:
    """Open-loop replay: the sizes ``policy`` would have chosen on ``trace``.

    The policy (a fresh copy, ``policy.with_params()``, so two calls give identical
    output) sees the recorded observations, except that ``workers`` (and ``alive``)
    is its own size, starting at the recorded initial size (clamped to the bounds).
    **Feedback is ignored**: the queue, CPU and throughput are the recorded ones
    whatever size it picks.

    Returns a :class:`Trace` of the same format: the header copied, with ``policy``
    the new policy and ``replay: {mode: "open", source: ...}``; the recorded samples
    with an extra field ``target`` (the replayed size in force when the sample was
    taken, like ``workers``); ``scale`` events (from, to, reason) and ``error``
    events if the policy raised (the size is then held, as the controller does).
    """
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, got {type(policy).__name__}")
    if not trace.samples:
        raise ValueError("trace has no samples to replay")
    pol = policy.with_params()
    ivl = _interval(trace, interval)
    lo_b, hi_b = _bounds(trace, min_workers, max_workers)
    idx, rows = _decision_fields(trace, ivl, lo_b, hi_b)
    initial = clamp_target(int(initial_workers if initial_workers is not None
                               else trace.samples[0]["workers"]), lo_b, hi_b)
    size = initial
    events: list[dict[str, Any]] = []
    change_at: list[int] = []  # sample index of each change
    sizes: list[int] = [initial]
    for i, r in zip(idx, rows, strict=True):
        try:
            d = pol(_observation(r, size))
            if not isinstance(d, Decision):
                raise TypeError(f"policy returned {d!r}, not a Decision")
        except Exception as exc:  # the controller's rule: record, hold the size
            events.append({"t": r["t"], "type": "error", "where": "policy",
                           "message": f"{type(exc).__name__}: {exc}"})
            continue
        target = clamp_target(d.target, lo_b, hi_b)
        if target != size:
            reason = d.reason if target == d.target else (
                f"{d.reason} (clamped to [{lo_b}, {hi_b}])")
            events.append({"t": r["t"], "type": "scale", "from": size, "to": target,
                           "reason": reason})
            change_at.append(i)
            sizes.append(target)
            size = target
    # the size in force at sample i: set by the last change decided at a sample < i
    pos = np.searchsorted(np.asarray(change_at, dtype=np.int64),
                          np.arange(len(trace.samples)), side="left")
    targets = np.asarray(sizes, dtype=np.int64)[pos].tolist()
    samples = [{**s, "target": g} for s, g in zip(trace.samples, targets, strict=True)]
    header = dict(trace.header)
    header["policy"] = pol.describe()
    header["replay"] = {"mode": "open", "source": trace_source(trace), "interval": ivl}
    header["bounds"] = {"min_workers": lo_b, "max_workers": hi_b}
    return Trace(header=header, samples=samples, events=events)


# -- closed loop ----------------------------------------------------------------------
class SimulatedStats:
    """What :meth:`SimulatedPool.stats` returns (the fields a controller reads)."""

    __slots__ = ("alive", "busy", "completed", "failed", "idle", "max_workers",
                 "min_workers", "queued", "size", "submitted", "task_times")

    def __init__(self, size: int, busy: int, queued: int, submitted: int, completed: int,
                 min_workers: int, max_workers: int) -> None:
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
                              self.max_workers)

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
        """Backlogged segments release all their tasks at once."""
        self._seg_done = 0.0
        self._seg_released = 0.0
        if self.model.segments[self.seg].arrival_rate is None:
            self._seg_released = self._seg_tasks[self.seg]

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
            r = seg.arrival_rate
            unrel = seg_total - self._seg_released
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
    (CPU-seconds used in the last step), system CPU = that + the recorded background,
    memory as recorded in the current segment."""

    def __init__(self, pool: SimulatedPool) -> None:
        self.pool = pool
        self._t = pool.t
        self._cpu = pool.cpu_seconds

    def read(self) -> SystemSample:
        p = self.pool
        dt = p.t - self._t
        used = p.cpu_seconds - self._cpu
        self._t, self._cpu = p.t, p.cpu_seconds
        cores = max(1, p.model.cores)
        pct = min(100.0, 100.0 * used / (dt * cores)) if dt > 0 else 0.0
        s = p.model.segments[min(p.seg, len(p.model.segments) - 1)]
        return SystemSample(cpu_percent=min(100.0, pct + s.background_cpu),
                            memory_percent=s.memory_percent, available_mb=s.available_mb,
                            process_cpu_percent=pct, rss_mb=s.rss_mb)


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
        (default 0: deterministic fluid); ``seed`` seeds it.
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
                     max_workers=hi, clock=clock, metrics=SimulatedMetrics(pool),
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
    tr.header["seed"] = seed
    tr.header["noise"] = noise
    tr.header["model"] = model.to_dict()
    tr.header["makespan_s"] = pool.finished_at
    tr.header["replay"] = {"mode": "closed", "source": dict(src)}
    return tr
