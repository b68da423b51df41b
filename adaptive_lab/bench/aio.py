"""The asyncio limiter benchmark: fixed limits and every policy against a real server.

Each scenario starts the local HTTP server (:mod:`adaptive_lab.bench.aio_server`) in
a process of its own and runs, one after another, the same closed-loop client (hundreds
of tasks on one event loop, each sending ``GET /work`` with aiohttp's ``ClientSession``
through a guard) under each contender: ``asyncio.Semaphore(n)`` for a sweep of fixed
limits, and an :class:`~adaptive_lab.aio.AdaptiveLimiter` per registered policy (the
default ``AdaptiveLimiter()`` among them). A 503 is marked with ``limiter.drop()``.

Per contender it reports throughput (answers 200 per second), the median and p95
latency of the guarded request (its round trip: the wait for a slot is not counted,
since with closed-loop clients it only mirrors the throughput), the share of requests
dropped, and the limit over time. Ratios are taken against the best fixed limit's
throughput and the latency of the fixed limit equal to the server's capacity.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from adaptive_lab.aio import AdaptiveLimiter
from adaptive_lab.bench.aio_server import ServerConfig, ServerProcess
from adaptive_lab.executors.aio import ResizableLimiter
from adaptive_lab.policies.registry import available_policies
from adaptive_lab.trace.format import host_info

SCHEMA = "adaptive-lab/aio-bench"
VERSION = 1
DEFAULT = "AdaptiveLimiter()"
BIN = 0.25  # seconds per time bin of the timelines


@dataclass(frozen=True)
class Scenario:
    """A server and a run: ``kind`` steady, halved (capacity halves at ``change_at``)
    or shedding (503 past ``shed_queue`` waiting). Measured from ``warmup`` s on
    (halved: from ``change_at`` on, for the new best)."""

    name: str
    kind: str
    capacity: int
    service_ms: float
    duration: float
    warmup: float
    shed_queue: int | None = None
    change_at: float | None = None

    @property
    def config(self) -> ServerConfig:
        return ServerConfig(self.capacity, self.service_ms, self.shed_queue)

    def fixed_limits(self) -> list[int]:
        c = self.capacity
        return sorted({max(1, c // 2), c, 2 * c, 8 * c})


def scenarios(quick: bool = False) -> list[Scenario]:
    """The benchmark's scenarios (``quick``: short runs of two of them, a smoke test)."""
    if quick:
        return [Scenario("steady c16 10ms", "steady", 16, 10, 2.0, 0.5),
                Scenario("shedding c16 10ms", "shedding", 16, 10, 2.0, 1.0, shed_queue=16)]
    return [
        Scenario("steady c4 20ms", "steady", 4, 20, 3.5, 1.5),
        Scenario("steady c8 1ms", "steady", 8, 1, 3.5, 1.5),
        Scenario("steady c16 10ms", "steady", 16, 10, 3.5, 1.5),
        Scenario("steady c64 50ms", "steady", 64, 50, 3.5, 1.5),
        Scenario("halved c32 20ms", "halved", 32, 20, 9.0, 2.0, change_at=3.5),
        Scenario("shedding c16 10ms", "shedding", 16, 10, 8.0, 5.0, shed_queue=16),
    ]


@dataclass
class Run:
    """What one contender did in one scenario."""

    name: str
    kind: str  # "fixed", "policy" or "default"
    t: np.ndarray = field(repr=False)  # end of each request, s since the start
    latency: np.ndarray = field(repr=False)  # its guarded round trip, s
    ok: np.ndarray = field(repr=False)  # answered 200
    limits: list[tuple[float, int]] = field(repr=False)
    scale_events: int = 0

    def window(self, t0: float, t1: float) -> dict[str, float]:
        sel = (self.t >= t0) & (self.t < t1)
        good = sel & self.ok
        n, dur = int(sel.sum()), max(1e-9, t1 - t0)
        lat = self.latency[good]
        lims = [n for (t, n) in self.limits if t0 <= t < t1] or [self.limits[-1][1]]
        return {"throughput": float(good.sum()) / dur,
                "p50_ms": float(np.median(lat)) * 1e3 if lat.size else math.nan,
                "p95_ms": float(np.percentile(lat, 95)) * 1e3 if lat.size else math.nan,
                "dropped": (n - int(good.sum())) / n if n else math.nan,
                "limit_median": float(np.median(lims))}

    def timeline(self, end: float) -> list[dict[str, float]]:
        """Per :data:`BIN`: throughput, median latency (ms) and limit."""
        out = []
        for i in range(math.ceil(end / BIN)):
            w = self.window(i * BIN, (i + 1) * BIN)
            out.append({"t": round(i * BIN, 3), "throughput": w["throughput"],
                        "p50_ms": w["p50_ms"], "limit": w["limit_median"]})
        return out


async def _drive(url: str, guard: Any, sc: Scenario, clients: int) -> Run:
    loop = asyncio.get_running_loop()
    drop: Callable[[], None] | None = getattr(guard, "drop", None)
    ends: list[float] = []
    lats: list[float] = []
    oks: list[bool] = []
    limits: list[tuple[float, int]] = []
    now = loop.time
    start = now()
    end = start + sc.duration
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        work = url + "/work"

        async def client() -> None:
            while now() < end:
                ok, t0 = False, now()
                try:
                    async with guard:
                        t0 = now()
                        async with session.get(work) as r:
                            await r.read()
                            ok = r.status == 200
                        if not ok and drop is not None:
                            drop()
                        t1 = now()
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    t1 = now()
                ends.append(t1 - start)
                lats.append(t1 - t0)
                oks.append(ok)

        async def watch() -> None:
            changed = sc.change_at is None
            while now() < end:
                t = now() - start
                limits.append((t, int(guard.limit)))
                if not changed and t >= (sc.change_at or 0.0):
                    changed = True
                    async with session.post(f"{url}/capacity?n={max(1, sc.capacity // 2)}"):
                        pass
                await asyncio.sleep(0.05)

        await asyncio.gather(watch(), *(client() for _ in range(clients)))
    return Run("", "", np.asarray(ends), np.asarray(lats), np.asarray(oks, dtype=bool),
               limits, scale_events=getattr(getattr(guard, "controller", None),
                                            "scale_events", 0))


class _FixedGuard(asyncio.Semaphore):
    """``asyncio.Semaphore(n)`` that tells the watcher its limit."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.limit = n


async def _run_one(url: str, sc: Scenario, name: str, kind: str, make: Callable[[], Any],
                   clients: int) -> Run:
    async with aiohttp.ClientSession() as s:  # a fresh server state between contenders
        async with s.post(f"{url}/capacity?n={sc.capacity}"):
            pass
    guard = make()
    try:
        run = await _drive(url, guard, sc, clients)
    finally:
        if isinstance(guard, AdaptiveLimiter):
            guard.close()
    run.name, run.kind = name, kind
    return run


def contenders(sc: Scenario, policies: Sequence[str]) -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, kind, factory) per contender: the fixed sweep, the default, each policy."""
    out: list[tuple[str, str, Callable[[], Any]]] = [
        (f"Semaphore({n})", "fixed", functools.partial(_FixedGuard, n))
        for n in sc.fixed_limits()]
    out.append((DEFAULT, "default", AdaptiveLimiter))
    for p in policies:
        out.append((f"policy={p}", "policy", functools.partial(AdaptiveLimiter, p)))
    return out


def summarise(sc: Scenario, runs: list[Run]) -> dict[str, Any]:
    """Ratios to the best fixed limit and to the latency at capacity, per contender."""
    t0 = sc.change_at if sc.kind == "halved" and sc.change_at is not None else sc.warmup
    if sc.kind == "halved":
        t0 += sc.warmup
    w = {r.name: r.window(t0, sc.duration) for r in runs}
    fixed = [r for r in runs if r.kind == "fixed"]
    best = max(fixed, key=lambda r: w[r.name]["throughput"])
    cap = sc.capacity // 2 if sc.kind == "halved" else sc.capacity
    at_cap = next((r for r in fixed if r.name == f"Semaphore({cap})"), best)
    x_best, lat_cap = w[best.name]["throughput"], w[at_cap.name]["p50_ms"]
    rows = []
    for r in runs:
        m = w[r.name]
        row = {"name": r.name, "kind": r.kind, **m,
               "throughput_ratio": m["throughput"] / x_best if x_best > 0 else math.nan,
               "latency_ratio": m["p50_ms"] / lat_cap if lat_cap > 0 else math.nan,
               "scale_events": r.scale_events}
        if sc.kind == "halved" and sc.change_at is not None:
            row.update(_recovery(r, sc, x_best, lat_cap))
        if sc.kind == "shedding":
            row["dropped_first_5s"] = r.window(0.0, min(5.0, sc.duration))["dropped"]
        rows.append(row)
    return {"scenario": vars(sc) | {"fixed_limits": sc.fixed_limits()},
            "best_fixed": best.name, "at_capacity": at_cap.name,
            "best_throughput": x_best, "latency_at_capacity_ms": lat_cap, "rows": rows,
            "timelines": {r.name: r.timeline(sc.duration) for r in runs}}


def _recovery(r: Run, sc: Scenario, x_best: float, lat_cap: float) -> dict[str, float]:
    """Seconds after the change until a 1 s window reaches 90 % of the new best
    throughput, and until one has a median latency within 1.5 x the new latency at
    capacity (NaN: never in the run)."""
    assert sc.change_at is not None
    out = {"recovery_throughput_s": math.nan, "recovery_latency_s": math.nan}
    t = sc.change_at
    while t + 1.0 <= sc.duration + 1e-9:
        m = r.window(t, t + 1.0)
        if math.isnan(out["recovery_throughput_s"]) and m["throughput"] >= 0.9 * x_best:
            out["recovery_throughput_s"] = round(t - sc.change_at, 3)
        if math.isnan(out["recovery_latency_s"]) and m["p50_ms"] <= 1.5 * lat_cap:
            out["recovery_latency_s"] = round(t - sc.change_at, 3)
        t += BIN
    return out


def run_scenario(sc: Scenario, policies: Sequence[str], clients: int,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    runs = []
    with ServerProcess(sc.config, lifetime=sc.duration * 60 + 120) as server:
        for name, kind, make in contenders(sc, policies):
            gc.collect()
            runs.append(asyncio.run(_run_one(server.url, sc, name, kind, make, clients)))
            if progress is not None:
                w = runs[-1].window(sc.warmup, sc.duration)
                progress(f"  {sc.name:<20} {name:<26} {w['throughput']:8.0f}/s "
                         f"p50 {w['p50_ms']:7.1f} ms drop {w['dropped']:.3f} "
                         f"limit {w['limit_median']:.0f}")
    return summarise(sc, runs)


async def _overhead(n: int, rounds: int) -> dict[str, float]:
    async def per_op(cm: Any) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            async with cm:
                pass
        return (time.perf_counter() - t0) / n

    guards = {"asyncio.Semaphore": asyncio.Semaphore(1_000_000),
              "ResizableLimiter": ResizableLimiter(1_000_000),
              "AdaptiveLimiter()": AdaptiveLimiter(initial_limit=1000)}
    times: dict[str, list[float]] = {k: [] for k in guards}
    for _ in range(rounds):  # interleaved: a noisy machine hits all alike
        for k, g in guards.items():
            times[k].append(await per_op(g))
            await asyncio.sleep(0.001)  # let the controller tick between rounds
    guards["AdaptiveLimiter()"].close()  # type: ignore[attr-defined]
    best = {k: min(v) * 1e9 for k, v in times.items()}
    sem = best["asyncio.Semaphore"]
    return {**{f"{k}_ns": v for k, v in best.items()},
            **{f"{k}_ratio": v / sem for k, v in best.items() if k != "asyncio.Semaphore"}}


def measure_overhead(n: int = 20_000, rounds: int = 30) -> dict[str, float]:
    """Uncontended ``async with`` cost (best of ``rounds``, ns) and ratios to
    ``asyncio.Semaphore``."""
    return asyncio.run(_overhead(n, rounds))


def run_benchmark(quick: bool = False, policies: Sequence[str] | None = None,
                  clients: int = 400, names: Sequence[str] | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every scenario (or those ``names``), every contender, and the overhead."""
    pols = list(policies) if policies is not None else available_policies()
    scs = [s for s in scenarios(quick) if not names or s.name in names or s.kind in names]
    if not scs:
        raise ValueError(f"no scenario matches {names!r}")
    t0 = time.perf_counter()
    out = {"schema": SCHEMA, "version": VERSION, "host": host_info(), "clients": clients,
           "policies": pols, "overhead": measure_overhead(5_000 if quick else 20_000,
                                                          10 if quick else 30),
           "scenarios": [run_scenario(s, pols, clients, progress) for s in scs]}
    out["elapsed_s"] = time.perf_counter() - t0
    return out


def format_table(result: dict[str, Any]) -> str:
    """The results as text: one block per scenario, the default marked with ``*``."""
    lines = []
    for s in result["scenarios"]:
        sc = s["scenario"]
        lines.append(f"\n{sc['name']}: best fixed {s['best_fixed']} "
                     f"{s['best_throughput']:.0f}/s, latency at capacity "
                     f"{s['latency_at_capacity_ms']:.1f} ms")
        extra = {"halved": "  rec.thr rec.lat", "shedding": "  drop<5s"}.get(sc["kind"], "")
        lines.append(f"  {'contender':<26} {'req/s':>7} {'x best':>6} {'p50 ms':>7} "
                     f"{'x cap':>6} {'drop':>6} {'limit':>6}{extra}")
        for r in s["rows"]:
            mark = "*" if r["kind"] == "default" else " "
            tail = ""
            if sc["kind"] == "halved":
                tail = f"  {r['recovery_throughput_s']:7.2f} {r['recovery_latency_s']:7.2f}"
            elif sc["kind"] == "shedding":
                tail = f"  {r['dropped_first_5s']:7.3f}"
            lines.append(f"{mark} {r['name']:<26} {r['throughput']:7.0f} "
                         f"{r['throughput_ratio']:6.2f} {r['p50_ms']:7.1f} "
                         f"{r['latency_ratio']:6.2f} {r['dropped']:6.3f} "
                         f"{r['limit_median']:6.0f}{tail}")
    o = result["overhead"]
    lines.append(f"\nuncontended async with: Semaphore {o['asyncio.Semaphore_ns']:.0f} ns, "
                 f"ResizableLimiter {o['ResizableLimiter_ns']:.0f} ns "
                 f"(x{o['ResizableLimiter_ratio']:.2f}), AdaptiveLimiter() "
                 f"{o['AdaptiveLimiter()_ns']:.0f} ns (x{o['AdaptiveLimiter()_ratio']:.2f})")
    return "\n".join(lines)


def save(result: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(_plain(result), indent=1, allow_nan=False))
    return p


def _plain(v: Any) -> Any:
    """JSON-ready: NaN as null, numpy scalars as Python numbers."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
