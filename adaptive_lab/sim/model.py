"""A small queueing model of a recorded workload, fitted from a trace.

The model answers one question: *at ``k`` busy workers, how many tasks per second
complete, and how long does each take?* It is deliberately small, and every
assumption is written down here and in ``docs/replay.md``:

1. **Tasks are alike within a segment.** Each task spends ``wait_s`` seconds off the
   CPU (sleep, I/O, a GIL-free C call that does not use a core) and ``cpu_s``
   CPU-seconds on it. ``cpu_s`` is measured, not fitted: process CPU seconds in the
   segment divided by tasks finished (so it includes the pool's per-task overhead and
   the submitting thread's work, which compete for the same GIL).
2. **The CPU is a multi-server station with ``cpu_slots`` servers.** Pure-Python
   work holds the GIL, so ``cpu_slots`` is about 1 whatever the core count; hashing
   big buffers releases it, so up to ``cores``. Fitted (grid search, least squares
   on throughput per busy worker, each period weighted by its length, so the model
   matches the time-average throughput a makespan depends on) from the recorded
   ``(busy, throughput)`` pairs, together with ``wait_s``.
3. **Throughput bends by mean-value analysis** (MVA) of a closed network: a delay
   station (``wait_s`` plus Seidmann's ``cpu_s * (slots - 1) / slots``) and one
   queue (``cpu_s / slots``). One worker sees ``wait_s + cpu_s``; many saturate at
   ``slots / cpu_s`` tasks/s, with a smooth knee in between. Not modelled: the
   extra cost of hundreds of threads, cache effects, other tenants' load changes.
4. **Arrivals per segment** are either *backlogged* (a closed population: the
   submitter keeps up to ``window`` tasks queued or running, as the scanner's
   backpressure or ``Executor.map`` do) or *arrival-limited* (tasks offered at
   ``arrival_rate`` per second; chosen when the queue was mostly empty). A backlogged
   segment whose queue still ran dry while workers idled (in a quarter of the
   periods or more) has a ``submit_rate``: the submitting thread (walking, batching,
   collecting results, under the same GIL) is the bottleneck, and it caps throughput.
5. **Segments** (phases): when task latency changes over time (a step profile), the
   model is piecewise; each segment holds ``tasks`` tasks, and a simulation moves to
   the next segment when they are done. Boundaries come from ``phase`` events if the
   trace has them, else from a change-point search on log latency. A backlogged
   segment whose ``phase`` events announce ``passes`` (a scan repeated) is submitted
   in that many equal ``rounds``, each after the previous is done: the queue runs dry
   at the end of every pass, as a policy watching it sees live.
6. **Stalls are a flat efficiency**: the curve is fitted on periods where tasks
   finished; ``efficiency`` (<= 1) is the segment's tasks over what the curve promises
   at the sizes the pool had, stalls included (a scanner's walk restarting, other
   tenants taking the CPU, GC), and scales the curve. It assumes another policy
   stalls as often.
7. **Memory and other tenants' CPU are as recorded**, not modelled: memory as the
   segment's median; other tenants' CPU (system CPU not used by this process, in % of
   the machine) as its recorded spread, 16 quantiles, one drawn per sample period
   (a policy reading system CPU near a threshold sees it cross now and then, as live).
8. **Task-time spread** is log-normal with ``sigma`` from the recorded p95/p50.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adaptive_lab.trace.format import Trace

MODEL_SCHEMA = "adaptive-lab/workload-model"
_Z95 = 1.6448536269514722


def mva_throughput(kmax: int, wait_s: float, cpu_s: float, slots: float) -> np.ndarray:
    """Throughput (tasks/s) at 0..``kmax`` concurrent tasks, by exact MVA.

    A delay station ``wait_s + cpu_s * (slots - 1) / slots`` and one FCFS queue of
    demand ``cpu_s / slots`` (Seidmann's approximation of ``slots`` servers).
    """
    d = cpu_s / slots
    z = wait_s + cpu_s - d
    out = [0.0] * (kmax + 1)
    q = 0.0
    for n in range(1, kmax + 1):  # plain floats: faster than numpy for one curve
        r = d * (1.0 + q)
        x = n / (z + r)
        q = x * r
        out[n] = x
    return np.array(out)


def mva_grid(kmax: int, wait_s: np.ndarray, cpu_s: np.ndarray, slots: np.ndarray
             ) -> np.ndarray:
    """MVA throughput tables for many parameter sets at once: shape ``(kmax + 1, n)``."""
    wait_s, cpu_s, slots = np.broadcast_arrays(
        np.asarray(wait_s, float), np.asarray(cpu_s, float), np.asarray(slots, float))
    d = cpu_s / slots
    z = wait_s + cpu_s - d
    out = np.zeros((kmax + 1, len(d)))
    q = np.zeros(len(d))
    for n in range(1, kmax + 1):
        r = d * (1.0 + q)
        x = n / (z + r)
        q = x * r
        out[n] = x
    return out


@dataclass
class Segment:
    """One phase of a workload: task properties and how tasks arrive."""

    t0: float
    t1: float
    tasks: int
    wait_s: float
    cpu_s: float
    cpu_slots: float
    sigma: float = 0.0
    arrival_rate: float | None = None  # None: backlogged (closed population)
    submit_rate: float | None = None  # backlogged, but the submitter tops up this fast
    memory_percent: float = math.nan
    available_mb: float = math.nan
    rss_mb: float = math.nan
    background_cpu: float = 0.0  # system CPU % (of the machine) not used by this process
    # its spread: 16 quantiles (None: always ``background_cpu``); a simulation draws
    # one per sample, as other tenants' load moves from one sample to the next
    background_q: list[float] | None = None
    # backlogged work submitted in this many rounds with a barrier between them (the
    # passes of a scan: each ends when all its results are in); None: one round
    rounds: int | None = None
    efficiency: float = 1.0  # share of the curve's throughput delivered over time
    fit_error: float = math.nan  # RMS error of throughput per worker, relative to its mean

    @property
    def latency_1(self) -> float:
        """Task time with a single worker: ``wait_s + cpu_s``."""
        return self.wait_s + self.cpu_s

    @property
    def capacity(self) -> float:
        """Saturation throughput, ``efficiency * cpu_slots / cpu_s`` tasks/s."""
        return self.efficiency * self.cpu_slots / self.cpu_s if self.cpu_s > 0 else math.inf


@dataclass
class WorkloadModel:
    """A fitted workload: segments, the submitter's window and the host's cores.

    Build with :meth:`fit` (from a recorded :class:`~adaptive_lab.trace.Trace`) or by
    hand; serialise with :meth:`to_dict` / :meth:`from_dict`. See the module
    docstring for the assumptions.
    """

    segments: list[Segment]
    cores: int = 1
    window: int = 1_000_000_000  # max tasks queued + running at once (backpressure)
    cpu_count: int | None = None  # the machine's CPUs (system CPU %'s base); None: cores
    source: dict[str, Any] = field(default_factory=dict)
    _tables: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    _lists: dict[int, list[float]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("segments must not be empty")
        for i, s in enumerate(self.segments):
            for name in ("wait_s", "cpu_s"):
                v = getattr(s, name)
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"segments[{i}].{name} must be finite and >= 0, got {v}")
            if s.wait_s + s.cpu_s <= 0:
                raise ValueError(f"segments[{i}]: wait_s + cpu_s must be > 0")
            if not s.cpu_slots >= 1:
                raise ValueError(f"segments[{i}].cpu_slots must be >= 1, got {s.cpu_slots}")
            if s.tasks < 0:
                raise ValueError(f"segments[{i}].tasks must be >= 0, got {s.tasks}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if self.cpu_count is None:
            self.cpu_count = self.cores
        if self.cpu_count < self.cores:
            raise ValueError(f"cpu_count must be >= cores ({self.cores}), "
                             f"got {self.cpu_count}")

    # -- queries ----------------------------------------------------------------
    @property
    def total_tasks(self) -> int:
        return sum(s.tasks for s in self.segments)

    def table(self, seg: int, kmax: int) -> np.ndarray:
        """Throughput at 0..kmax busy workers in segment ``seg`` (cached)."""
        tab = self._tables.get(seg)
        if tab is None or len(tab) <= kmax:
            s = self.segments[seg]
            tab = mva_throughput(max(kmax, 64), s.wait_s, s.cpu_s, s.cpu_slots) * s.efficiency
            self._tables[seg] = tab
        return tab

    def throughput(self, k: float, seg: int = 0) -> float:
        """Tasks/s at ``k`` (possibly fractional) busy workers in segment ``seg``."""
        if not k > 0:  # also NaN
            return 0.0
        lo = int(k)
        tab = self._lists.get(seg)
        if tab is None or len(tab) <= lo + 1:
            tab = self.table(seg, max(lo + 1, 2 * len(tab or ()))).tolist()
            self._lists[seg] = tab
        x = tab[lo]
        return x + (tab[lo + 1] - x) * (k - lo) if k != lo else x

    def latency(self, k: float, seg: int = 0) -> float:
        """Mean task time at ``k`` busy workers (Little's law: ``k / throughput``)."""
        if k <= 1:
            return self.segments[seg].latency_1
        return k / self.throughput(k, seg)

    # -- serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN kept as float; trace writers turn it into null)."""
        return {"schema": MODEL_SCHEMA, "cores": self.cores, "cpu_count": self.cpu_count,
                "window": self.window,
                "source": dict(self.source),
                "segments": [asdict(s) for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkloadModel:
        """Inverse of :meth:`to_dict`; ValueError names a missing or bad field."""
        if not isinstance(d, dict) or not isinstance(d.get("segments"), list):
            raise ValueError("model dict needs a 'segments' list")
        segs = []
        names = set(Segment.__dataclass_fields__)
        for i, s in enumerate(d["segments"]):
            if not isinstance(s, dict):
                raise ValueError(f"model segments[{i}] must be a dict")
            kw = {k: (math.nan if v is None else v) for k, v in s.items() if k in names}
            for opt in ("arrival_rate", "submit_rate", "background_q", "rounds"):
                if s.get(opt) is None:
                    kw[opt] = None
            try:
                segs.append(Segment(**kw))
            except TypeError as exc:
                raise ValueError(f"model segments[{i}]: {exc}") from None
        cpu_count = d.get("cpu_count")
        return cls(segments=segs, cores=int(d.get("cores", 1)),
                   cpu_count=None if cpu_count is None else int(cpu_count),
                   window=int(d.get("window", 1_000_000_000)),
                   source=dict(d.get("source") or {}))

    # -- fitting ----------------------------------------------------------------
    @classmethod
    def fit(cls, trace: Trace, *, segments: list[float] | None = None,
            min_segment: int = 8) -> WorkloadModel:
        """Estimate the model from a recorded trace.

        Parameters
        ----------
        trace
            A live (or simulated) trace with ``completed``, ``busy``, ``latency_mean``
            and ``process_cpu_percent`` samples.
        segments
            Segment boundaries in trace seconds; default: ``phase`` events, else a
            change-point search on log latency.
        min_segment
            Fewest samples in a detected segment.
        """
        a = trace.to_arrays()
        t = a["t"]
        if len(t) < 3:
            raise ValueError(f"trace needs at least 3 samples to fit a model, has {len(t)}")
        fin = (a["completed"] + np.maximum(a["failed"], 0)).astype(float)
        if fin[0] < 0:
            raise ValueError("trace samples need 'completed' counts to fit a model")
        host = trace.header.get("host") or {}
        cores = int(host.get("cores") or 1)
        # a process pinned to fewer CPUs than the machine has: system CPU % is of all
        cpu_count = max(cores, int(host.get("cpu_count") or cores))
        dt = np.diff(t)
        n = np.diff(fin)
        ok = dt > 0
        x = np.where(ok, n / np.where(ok, dt, 1.0), 0.0)
        lat = a["latency_mean"][1:]
        pcpu = a["process_cpu_percent"][1:] * cores / 100.0  # cores in use
        busy = a["busy"][1:].astype(float)
        queued = a["queued"][1:].astype(float)
        if n.sum() <= 0:
            raise ValueError("trace has no completed tasks; cannot fit a workload model")
        util = pcpu / max(1.0, float(np.nanmax(pcpu)) if np.isfinite(pcpu).any() else 1.0)
        bounds = _segment_bounds(trace, t, lat, n, util, segments, min_segment)
        # the submitter's window: what was queued + running while backlogged
        in_sys = busy + queued
        back = queued > 0
        window = int(max(1, np.percentile(in_sys[back], 95))) if back.any() else \
            int(max(1, in_sys.max()))
        if trace.samples and trace.samples[0].get("submitted", -1) >= 0:
            sub = a["submitted"]
            if sub[-1] >= 0 and sub[1] >= fin[-1] - fin[0]:  # everything up front (map)
                window = max(window, int(sub[-1] - fin[0]))
        segs = []
        for lo_t, hi_t in itertools.pairwise(bounds):
            sel = (t[1:] > lo_t) & (t[1:] <= hi_t + 1e-9)
            seg = _fit_segment(a, sel, lo_t, hi_t, dt, n, x, lat, pcpu, busy, queued,
                               cores, window, cpu_count)
            if seg.arrival_rate is None and seg.submit_rate is None:
                seg.rounds = _rounds(trace, lo_t, hi_t, t[0], t[-1])
            segs.append(seg)
        src = {"policy": trace.policy_name, "samples": len(t),
               "duration_s": float(t[-1] - t[0]), "tasks": int(fin[-1] - fin[0]),
               "created": trace.header.get("created"),
               "workload": trace.header.get("workload") or {},
               "interval": trace.header.get("interval"),
               "sample_period": trace.header.get("sample_period"),
               "bounds": trace.header.get("bounds") or {},
               "initial_workers": int(a["workers"][0])}
        return cls(segments=segs, cores=cores, window=window, source=src,
                   cpu_count=cpu_count)


def _fit_segment(a: dict[str, np.ndarray], sel: np.ndarray, t0: float, t1: float,
                 dt: np.ndarray, n: np.ndarray, x: np.ndarray, lat: np.ndarray,
                 pcpu: np.ndarray, busy: np.ndarray, queued: np.ndarray, cores: int,
                 window: int, cpu_count: int) -> Segment:
    tasks = int(n[sel].sum())
    use = sel & (n > 0) & np.isfinite(lat) & (lat > 0)
    if tasks <= 0 or not use.any():
        # an idle phase: keep it as a pause with the neighbour's properties unknown
        return Segment(t0=t0, t1=t1, tasks=0, wait_s=1e-3, cpu_s=1e-5, cpu_slots=1.0,
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
    return Segment(
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


def _rounds(trace: Trace, t0: float, t1: float, start: float, end: float) -> int | None:
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


def _segment_bounds(trace: Trace, t: np.ndarray, lat: np.ndarray, n: np.ndarray,
                    util: np.ndarray, given: list[float] | None, min_segment: int
                    ) -> list[float]:
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
            cuts = _change_points(t[1:][calm], lat[calm], n[calm], min_segment)
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


def _change_points(t: np.ndarray, lat: np.ndarray, n: np.ndarray, min_len: int,
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
