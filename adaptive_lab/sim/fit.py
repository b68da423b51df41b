"""Fitting the workload model's segments from a trace's sample arrays.

The estimators behind :meth:`adaptive_lab.sim.model.WorkloadModel.fit` (the
assumptions are listed in :mod:`adaptive_lab.sim.model`): segment boundaries (phase
events or change points on log latency) and, per segment, the fields of a
``Segment`` as a dict, so this module needs nothing of the model's classes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adaptive_lab.sim.mva import mva_grid, mva_throughput
from adaptive_lab.trace.format import Trace

_Z95 = 1.6448536269514722

__all__ = ["change_points", "fit_segment", "quantiles16", "segment_bounds",
           "segment_rounds"]


def fit_segment(a: dict[str, np.ndarray], sel: np.ndarray, t0: float, t1: float,
                 dt: np.ndarray, n: np.ndarray, x: np.ndarray, lat: np.ndarray,
                 pcpu: np.ndarray, busy: np.ndarray, queued: np.ndarray, cores: int,
                 window: int, cpu_count: int) -> dict[str, Any]:
    """The :class:`~adaptive_lab.sim.model.Segment` fields of the samples ``sel``:
    CPU seconds per task measured, ``wait_s`` and ``cpu_slots`` fitted by grid search
    over the MVA curve, arrivals, submitter rate, efficiency, spread, tenants' CPU."""
    tasks = int(n[sel].sum())
    use = sel & (n > 0) & np.isfinite(lat) & (lat > 0)
    if tasks <= 0 or not use.any():
        # an idle phase: keep it as a pause with the neighbour's properties unknown
        return dict(t0=t0, t1=t1, tasks=0, wait_s=1e-3, cpu_s=1e-5, cpu_slots=1.0,
                    arrival_rate=0.0)
    cpu_ok = sel & np.isfinite(pcpu)
    cpu_s = float(np.sum(pcpu[cpu_ok] * dt[cpu_ok]) / max(1, n[cpu_ok].sum())) \
        if cpu_ok.any() else 0.0
    lat_u = lat[use]
    # time-average busy workers in each period, by Little's law (more exact than the
    # instantaneous ``busy`` snapshot): completions/s * mean task time
    # (at most the workers there were: the latency window can lag the count window)
    wmax = np.maximum(a["workers"][1:], a["workers"][:-1]).astype(float)[use]
    k = np.minimum(x[use] * lat_u, np.maximum(wmax, 1.0))
    # Each period weighs by its length: a makespan is a sum of times, so the model
    # should match the time-average throughput at each k (not the per-task average,
    # which favours fast periods, nor the geometric mean a log fit gives).
    w_obs = dt[use]
    x_u = x[use]
    if len(k) > 400:  # long traces: fit on 200 bins of similar k (weighted means)
        order = np.argsort(k, kind="stable")
        bins = np.array_split(order, 200)
        wsum = np.array([w_obs[b].sum() for b in bins])
        k = np.array([np.average(k[b], weights=w_obs[b]) for b in bins])
        x_u = np.array([np.average(x_u[b], weights=w_obs[b]) for b in bins])
        w_obs = wsum
    lo1 = float(np.percentile(lat_u, 5))
    cpu_s = min(cpu_s, lo1)  # CPU per task cannot exceed the shortest task time
    slots_max = float(max(1.0, cores))
    seen = pcpu[cpu_ok & (n > 0)]
    # at least the cores the busiest fifth of the periods used on average (a mean, so
    # one noisy period does not set the bound)
    top = np.sort(seen)[-max(1, len(seen) // 5):] if len(seen) else seen
    slots_lo = 1.0 if not len(seen) else float(min(slots_max, max(1.0, top.mean())))
    waits = np.unique(np.concatenate([
        np.linspace(0.0, 1.0, 41) * max(lo1 - cpu_s, 0.0) * 1.25,
        np.quantile(np.maximum(lat_u - cpu_s, 0.0), [0.02, 0.05, 0.1, 0.2, 0.3, 0.5])]))
    slots = np.linspace(slots_lo, slots_max, 11) if slots_max > slots_lo else np.array([slots_lo])
    ww, ss = np.meshgrid(waits, slots, indexing="ij")
    ww, ss = ww.ravel(), ss.ravel()
    keep = ww + cpu_s > 0
    ww, ss = ww[keep], ss[keep]
    kmax = math.ceil(k.max()) + 1
    tab = mva_grid(kmax, ww, np.full(len(ww), cpu_s), ss)  # (kmax+1, P)
    lo = np.floor(k).astype(int)
    frac = (k - lo)[:, None]
    pred = tab[lo] + (tab[lo + 1] - tab[lo]) * frac  # (S, P)
    # squared error of throughput per busy worker (about 1 / task time, so periods at
    # different k count alike), weighted by period length
    err = (pred - x_u[:, None]) / np.maximum(k, 1.0)[:, None]
    sse = (w_obs[:, None] * err**2).sum(axis=0) / w_obs.sum()
    best = int(np.argmin(sse))
    # arrivals: backlogged when the queue was usually non-empty
    segq = queued[sel]
    backlogged = bool(np.mean(segq > 0) >= 0.5)
    # efficiency: the tasks done over those the fitted curve promises at the
    # concurrency the pool was given (its size, capped by the window), over the whole
    # segment, stalls included (walk restarts, other tenants taking the CPU, GC), which
    # the fit on busy periods alone does not see
    # a submitter that cannot keep up (the queue ran dry while workers sat idle in at
    # least a quarter of the periods): its rate, the 90th percentile of submissions/s
    # in those periods, caps the throughput whatever the size
    # Only if those periods also fell short of the fitted curve (by more than 10 %):
    # a queue that empties at the end of each scan pass, or a busy count sampled
    # while a worker was between tasks, also looks starved, at full speed.
    submit_rate = None
    workers_end = a["workers"][1:]
    starved = sel & (queued <= 1) & (busy < workers_end) & (dt > 0)
    if backlogged and starved.sum() >= max(3, 0.25 * sel.sum()) \
            and (a["submitted"] >= 0).all():
        sub = np.diff(a["submitted"].astype(float))
        wk_s = np.minimum(workers_end[starved].astype(float), float(window))
        curve = mva_throughput(int(wk_s.max()) + 1, float(ww[best]), cpu_s, float(ss[best]))
        could = float(np.sum(np.interp(wk_s, np.arange(len(curve)), curve) * dt[starved]))
        if float(n[starved].sum()) < 0.9 * could:
            submit_rate = float(np.percentile(sub[starved] / dt[starved], 90))
            # it kept up with the segment's mean rate, whatever the starved periods say
            dur = float(dt[sel].sum())
            if dur > 0:
                submit_rate = max(submit_rate, tasks / dur)
            if not submit_rate > 0:
                submit_rate = None
    efficiency = 1.0
    if backlogged:
        wk = np.minimum(a["workers"][1:][sel].astype(float), float(window))
        curve = mva_throughput(int(wk.max()) + 1, float(ww[best]), cpu_s, float(ss[best]))
        offered = np.interp(wk, np.arange(len(curve)), curve)
        if submit_rate is not None:
            offered = np.minimum(offered, submit_rate)
        promised = float(np.sum(offered * dt[sel]))
        if promised > 0:
            efficiency = float(min(1.0, max(0.05, tasks / promised)))
    dur = float(dt[sel].sum())
    rate = None if backlogged else (tasks / dur if dur > 0 else None)
    p50, p95 = a["latency_p50"][1:][use], a["latency_p95"][1:][use]
    ratio = p95 / p50
    ratio = ratio[np.isfinite(ratio) & (ratio >= 1)]
    sigma = float(np.log(np.median(ratio)) / _Z95) if len(ratio) else 0.0

    def med(col: str) -> float:
        v = a[col][1:][sel]
        v = v[np.isfinite(v)]
        return float(np.median(v)) if len(v) else math.nan

    # other tenants, in % of the whole machine (system CPU % is of all its CPUs, the
    # process's of the ``cores`` it may use)
    cpu_sys = a["cpu_percent"][1:][sel]
    pcpu_pct = a["process_cpu_percent"][1:][sel] * cores / cpu_count
    bg = np.maximum(cpu_sys - pcpu_pct, 0.0)  # the two windows differ a little
    bg = bg[np.isfinite(bg)]
    return dict(
        t0=float(t0), t1=float(t1), tasks=tasks, wait_s=float(ww[best]), cpu_s=cpu_s,
        cpu_slots=float(ss[best]), sigma=max(0.0, sigma), arrival_rate=rate,
        submit_rate=submit_rate,
        memory_percent=med("memory_percent"), available_mb=med("available_mb"),
        rss_mb=med("rss_mb"), efficiency=efficiency,
        background_cpu=float(np.median(bg)) if len(bg) else 0.0,
        background_q=quantiles16(bg) if len(bg) >= 16 else None,
        fit_error=float(math.sqrt(sse[best])) / max(1e-12, float(
            np.average(x_u / np.maximum(k, 1.0), weights=w_obs))),
    )


def segment_rounds(trace: Trace, t0: float, t1: float, start: float, end: float) -> int | None:
    """Passes the ``phase`` events starting in ``[t0, t1)`` announced (``passes``), the
    first segment also counting those before the first sample; None if none did."""
    lo = -math.inf if t0 <= start else t0 - 1e-3
    hi = math.inf if t1 >= end else t1 - 1e-3
    total = 0
    for e in trace.events:
        p = e.get("passes")
        if e.get("type") == "phase" and isinstance(p, int) and p >= 1 \
                and lo <= float(e["t"]) < hi:
            total += p
    return total or None


def quantiles16(values: np.ndarray) -> list[float]:
    """The 16 mid-quantiles ((i + 0.5) / 16) of ``values``, rounded to 0.1."""
    q = np.quantile(np.asarray(values, float), (np.arange(16) + 0.5) / 16)
    return [round(float(v), 1) for v in q]


def segment_bounds(trace: Trace, t: np.ndarray, lat: np.ndarray, n: np.ndarray,
                   util: np.ndarray, given: list[float] | None, min_segment: int
                   ) -> list[float]:
    """Segment boundaries (trace seconds, first and last sample included): ``given``,
    else the ``phase`` events, else change points where the CPU was not saturated."""
    start, end = float(t[0]), float(t[-1])
    if given is not None:
        cuts = sorted(float(c) for c in given if start < c < end)
    else:
        cuts = sorted(float(e["t"]) for e in trace.events
                      if e.get("type") == "phase" and start < float(e["t"]) < end)
        if not cuts:
            # latency rises with CPU contention too: look only where the CPU was not
            # saturated (utilisation of the busiest period < 0.8), so a policy that
            # scales up a CPU-bound job does not look like a phase change
            calm = ~(util >= 0.8)
            cuts = change_points(t[1:][calm], lat[calm], n[calm], min_segment)
    # keep only cuts with at least two samples on each side
    kept: list[float] = []
    prev = start
    for c in [*cuts, end]:
        if np.count_nonzero((t > prev) & (t <= c)) >= 2 or c == end:
            if c != end:
                kept.append(c)
                prev = c
        elif c == end and kept:
            kept.pop()
    return [start, *kept, end]


def change_points(t: np.ndarray, lat: np.ndarray, n: np.ndarray, min_len: int,
                   factor: float = 1.5) -> list[float]:
    """Binary segmentation on mean log latency: split where the two sides' means
    differ by more than ``factor`` (O(n) per split, with cumulative sums)."""
    ok = np.isfinite(lat) & (lat > 0) & (n > 0)
    tt, y = t[ok], np.log(lat[ok])
    cs = np.concatenate([[0.0], np.cumsum(y)])
    out: list[float] = []

    def split(lo: int, hi: int) -> None:
        if hi - lo < 2 * min_len:
            return
        i = np.arange(lo + min_len, hi - min_len + 1)
        left = (cs[i] - cs[lo]) / (i - lo)
        right = (cs[hi] - cs[i]) / (hi - i)
        d = np.abs(left - right)
        best_i = int(i[np.argmax(d)])
        if float(d.max()) < math.log(factor):
            return
        out.append(float((tt[best_i - 1] + tt[best_i]) / 2))
        split(lo, best_i)
        split(best_i, hi)

    split(0, len(y))
    return sorted(out)
