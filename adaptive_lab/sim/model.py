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

The MVA curve lives in :mod:`adaptive_lab.sim.mva`, the estimators in
:mod:`adaptive_lab.sim.fit`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adaptive_lab.sim.fit import fit_segment, segment_bounds, segment_rounds
from adaptive_lab.sim.mva import mva_throughput
from adaptive_lab.trace.format import Trace

MODEL_SCHEMA = "adaptive-lab/workload-model"


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
            kw: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in s.items()
                                  if k in names}
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
        bounds = segment_bounds(trace, t, lat, n, util, segments, min_segment)
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
            seg = Segment(**fit_segment(a, sel, lo_t, hi_t, dt, n, x, lat, pcpu, busy,
                                        queued, cores, window, cpu_count))
            if seg.arrival_rate is None and seg.submit_rate is None:
                seg.rounds = segment_rounds(trace, lo_t, hi_t, t[0], t[-1])
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
