"""Prometheus metrics that say what every live pool did and why (extra ``metrics``).

One custom collector reads, when it is scraped, the ``stats()`` of every live target
in :mod:`adaptive_lab.control.registry` (adaptive pools register through their
controller as it starts; anything else with ``stats()``, or a scanner, through
:func:`watch`), and the controller that drives it: its last decision (the target the
policy asked for) and its decisions by rule. Nothing is added to a pool's hot path:
the counts are the pool's own, the task-duration histogram is filled from the run
times the pool already keeps (:mod:`adaptive_lab.integrations._durations`), at each
controller tick and each scrape.

``serve(port)`` starts an HTTP endpoint in a daemon thread; ``register(registry)``
adds the collector to a registry you already expose. See ``docs/metrics.md``.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from adaptive_lab.control import registry as live_targets
from adaptive_lab.control.registry import rule_of
from adaptive_lab.integrations._durations import BUCKETS, TaskDurations

__all__ = ["BUCKETS", "FAMILIES", "AdaptiveLabCollector", "MetricsServer", "register",
           "serve", "watch"]

log = logging.getLogger("adaptive_lab")

POOL = ("pool",)
#: Every family the collector exports: name -> (type, label names, HELP text).
#: (Counter names are given without ``_total``, as prometheus_client wants them.)
FAMILIES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "adaptive_lab_workers": (
        "gauge", POOL, "Size of the pool: the workers it is moving towards (a limiter's "
        "limit, a Dask cluster's planned workers)."),
    "adaptive_lab_workers_alive": (
        "gauge", POOL, "Workers that exist now (threads started and not yet retired)."),
    "adaptive_lab_workers_target": (
        "gauge", POOL, "The size the controller last decided: the policy's target, within "
        "the bounds (absent before the first decision and for pools without a policy)."),
    "adaptive_lab_workers_min": (
        "gauge", POOL, "Lower bound the controller clamps every decision to."),
    "adaptive_lab_workers_max": (
        "gauge", POOL, "Upper bound the controller clamps every decision to."),
    "adaptive_lab_workers_busy": (
        "gauge", POOL, "Workers running a task now (a limiter: requests inside)."),
    "adaptive_lab_queue_depth": (
        "gauge", POOL, "Tasks submitted and waiting for a worker (a limiter: requests "
        "waiting for a slot)."),
    "adaptive_lab_tasks_submitted": (
        "counter", POOL, "Tasks submitted to the pool."),
    "adaptive_lab_tasks_completed": (
        "counter", POOL, "Tasks that returned normally."),
    "adaptive_lab_tasks_failed": (
        "counter", POOL, "Tasks that raised (a limiter: dropped requests)."),
    "adaptive_lab_task_cpu_seconds": (
        "counter", POOL, "CPU seconds used by the pool's worker threads, gone workers "
        "included (absent where thread CPU clocks cannot be read)."),
    "adaptive_lab_task_duration_seconds": (
        "histogram", POOL, "Run time of tasks (a limiter: time inside the guarded block), "
        "since the exporter first saw the pool; filled from the run times the pool keeps "
        "(see adaptive_lab_task_durations_estimated_total)."),
    "adaptive_lab_task_durations_estimated": (
        "counter", POOL, "Tasks counted in adaptive_lab_task_duration_seconds whose bucket "
        "was estimated from the others finished at the same time, because more finished "
        "between two reads than the pool keeps (0 means the histogram is exact)."),
    "adaptive_lab_scale_events": (
        "counter", ("pool", "direction", "rule"), "Changes of the pool's size, by "
        "direction (up, down) and rule (the first word of the decision's reason)."),
    "adaptive_lab_decisions": (
        "counter", ("pool", "rule"), "Decisions the controller took (holds included), by "
        "rule (the first word of the reason), since the exporter started."),
    "adaptive_lab_controller_errors": (
        "counter", POOL, "Controller ticks where stats(), the metrics source or the "
        "policy failed (the size was held)."),
    "adaptive_lab_scan_files": (
        "counter", ("scan", "status"), "Files a scan finished, by status: ok (read), "
        "skipped, error."),
    "adaptive_lab_scan_bytes": (
        "counter", ("scan",), "Bytes of the files a scan read (ok files)."),
}

_STATE = "prometheus"  # key of this exporter's state in a registry entry


class _PoolState:
    """What the exporter keeps per target: its histogram and decisions by rule."""

    def __init__(self) -> None:
        self.durations = TaskDurations(BUCKETS)
        self.decisions: dict[str, int] = {}
        self.last_decision: Any = None
        self.lock = threading.Lock()

    def note_decision(self, ctl: Any) -> None:
        """Count the controller's last decision if it is new (one decision per tick at
        most, and this runs after every tick)."""
        d = getattr(ctl, "last_decision", None)
        with self.lock:
            if d is None or d is self.last_decision:
                return
            self.last_decision = d
            rule = rule_of(getattr(d, "reason", None))
            self.decisions[rule] = self.decisions.get(rule, 0) + 1


def _state(entry: Any) -> _PoolState:
    st = entry.state.get(_STATE)
    if st is None:
        st = entry.state.setdefault(_STATE, _PoolState())
    return st


def _on_tick(controller: Any, stats: Any) -> None:
    """Tick hook: bring the histogram and decision counts up to date (controller's
    thread; a dictionary lookup for controllers nobody watches)."""
    entry = live_targets.lookup(controller)
    if entry is None:
        return
    s = _state(entry)
    s.durations.update(controller.target, stats)
    s.note_decision(controller)


def _families() -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for name, (kind, labels, help_text) in FAMILIES.items():
        if kind == "gauge":
            out[name] = GaugeMetricFamily(name, help_text, labels=labels)
        elif kind == "counter":
            out[name] = CounterMetricFamily(name, help_text, labels=labels)
        else:
            out[name] = HistogramMetricFamily(name, help_text, labels=labels)
    return out


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class AdaptiveLabCollector:
    """A ``prometheus_client`` collector of every live adaptive target (see module)."""

    def __init__(self) -> None:
        live_targets.add_tick_hook(_on_tick)

    def describe(self) -> list[Metric]:
        """The families, without samples (so registering does not scrape)."""
        return list(_families().values())

    def collect(self) -> Iterator[Metric]:
        fams = _families()
        for w in live_targets.live():
            try:
                if w.kind == "scan":
                    self._scan(fams, w)
                else:
                    self._pool(fams, w)
            except ReferenceError:  # the pool behind a controller was just collected
                continue
            except Exception as exc:  # one broken target must not fail the scrape
                log.debug("adaptive_lab metrics: %s %r skipped: %r", w.kind, w.name, exc)
        yield from fams.values()

    @staticmethod
    def _pool(fams: dict[str, Any], w: Any) -> None:
        st = w.target.stats()
        s = _state(w.entry)
        ctl = w.controller
        if ctl is not None:
            s.note_decision(ctl)
        s.durations.update(w.target, st)
        lab = [w.name]
        for name, value in (("adaptive_lab_workers", st.size),
                            ("adaptive_lab_workers_alive", st.alive),
                            ("adaptive_lab_workers_busy", st.busy),
                            ("adaptive_lab_queue_depth", st.queued),
                            ("adaptive_lab_tasks_submitted", st.submitted),
                            ("adaptive_lab_tasks_completed", st.completed),
                            ("adaptive_lab_tasks_failed", st.failed),
                            ("adaptive_lab_task_cpu_seconds",
                             getattr(st, "task_cpu_seconds", None))):
            v = _number(value)
            if v is not None:
                fams[name].add_metric(lab, v)
        buckets, count, total = s.durations.buckets()
        fams["adaptive_lab_task_duration_seconds"].add_metric(
            lab, [(repr(b), c) for b, c in buckets] + [("+Inf", float(count))], total)
        fams["adaptive_lab_task_durations_estimated"].add_metric(lab, s.durations.estimated)
        for (direction, rule), n in sorted(w.events.items()):
            fams["adaptive_lab_scale_events"].add_metric([w.name, direction, rule], n)
        if ctl is None:
            return
        decision = ctl.last_decision
        if decision is not None:
            fams["adaptive_lab_workers_target"].add_metric(lab, decision.target)
        fams["adaptive_lab_workers_min"].add_metric(lab, ctl.min_workers)
        fams["adaptive_lab_workers_max"].add_metric(lab, ctl.max_workers)
        fams["adaptive_lab_controller_errors"].add_metric(lab, ctl.errors)
        with s.lock:
            decisions = sorted(s.decisions.items())
        for rule, n in decisions:
            fams["adaptive_lab_decisions"].add_metric([w.name, rule], n)

    @staticmethod
    def _scan(fams: dict[str, Any], w: Any) -> None:
        sm = w.summary
        for status, n in (("ok", sm.files), ("skipped", sm.skipped), ("error", sm.errors)):
            fams["adaptive_lab_scan_files"].add_metric([w.name, status], n)
        fams["adaptive_lab_scan_bytes"].add_metric([w.name], sm.bytes)


_collectors: weakref.WeakKeyDictionary[Any, AdaptiveLabCollector] = (
    weakref.WeakKeyDictionary())
_collectors_lock = threading.Lock()


def register(registry: CollectorRegistry | None = None) -> AdaptiveLabCollector:
    """Add the collector to ``registry`` (default: prometheus_client's global
    ``REGISTRY``) and return it; a second call for the same registry returns the
    same collector."""
    reg = REGISTRY if registry is None else registry
    with _collectors_lock:
        col = _collectors.get(reg)
        if col is None:
            col = AdaptiveLabCollector()
            reg.register(col)
            _collectors[reg] = col
        return col


def watch(obj: Any, name: str | None = None) -> str:
    """Export ``obj``: a pool or limiter (anything with ``stats()``), a controller, or
    a scanner (its live summary); see :func:`adaptive_lab.control.registry.register`.
    Adaptive pools with a policy are watched from the start without this."""
    return live_targets.register(obj, name)


class MetricsServer:
    """A running ``/metrics`` endpoint (see :func:`serve`); ``close()`` stops it."""

    def __init__(self, httpd: Any, thread: threading.Thread, registry: Any) -> None:
        self._httpd = httpd
        self._thread = thread
        self.registry = registry
        self.addr: str = httpd.server_address[0]
        self.port: int = int(httpd.server_port)

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def serve(port: int, addr: str = "127.0.0.1", *,
          registry: CollectorRegistry | None = None) -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread (``port=0``: any free
    port, see ``.port``). By default a registry of its own holds just this collector;
    pass ``registry`` to serve one you already fill (the collector is added to it)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in [0, 65535], got {port!r}")
    if not isinstance(addr, str) or not addr:
        raise ValueError(f"addr must be a host name or address, got {addr!r}")
    reg = CollectorRegistry() if registry is None else registry
    register(reg)
    httpd, thread = start_http_server(port, addr=addr, registry=reg)
    return MetricsServer(httpd, thread, reg)
