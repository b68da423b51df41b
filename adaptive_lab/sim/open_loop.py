"""Replay a recorded trace under another policy: open loop (exact) or closed loop.

* :func:`replay` (open loop) feeds the *recorded* observations to a policy and lists
  the sizes it would have chosen. It is exact and cheap, but it **ignores feedback**:
  the queue, CPU and throughput it shows the policy are those of the recorded run,
  whatever size the policy picks. Use it to see *when* and *why* a policy would move.
* :func:`adaptive_lab.sim.simulate` (closed loop) runs the policy against a fitted
  :class:`~adaptive_lab.sim.model.WorkloadModel` on simulated time, through the very
  same :class:`~adaptive_lab.control.controller.Controller` a live pool uses, with a
  ``SimulatedPool`` in place of the executor. Other sizes change the queue and
  throughput, as far as the model is right (its error is measured by
  ``adaptive-lab validate-sim``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from adaptive_lab.policies.base import Decision, Observation, Policy, clamp_target
from adaptive_lab.trace.format import Trace

__all__ = ["decision_indices", "observations", "replay", "trace_source"]

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
        "process_user_cpu_percent": a["process_user_cpu_percent"][idx].tolist(),
        "task_cpu_cores": (a["task_cpu_cores"][idx].tolist() if "task_cpu_cores" in a
                           else [NAN] * len(idx)),
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
    missing = _OBS_FIELDS - set(names) - {"workers", "alive", "min_workers", "max_workers",
                                          "cores"}
    if missing:  # Observation grew a field: the fast path would leave it unset
        raise RuntimeError(f"replay does not fill Observation fields {sorted(missing)}")
    rows = [dict(zip(names, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    cores = _header_cores(trace)
    for r in rows:
        r["min_workers"] = lo_b
        r["max_workers"] = hi_b
        r["cores"] = cores
    c.decisions[key] = (idx_l, rows)
    return idx_l, rows


def _header_cores(trace: Trace) -> float:
    """The recording machine's core count (``header.host.cores``), NaN if absent."""
    host = trace.header.get("host")
    cores = host.get("cores") if isinstance(host, dict) else None
    ok = isinstance(cores, (int, float)) and not isinstance(cores, bool) and cores > 0
    return float(cores) if ok and cores is not None else NAN


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
