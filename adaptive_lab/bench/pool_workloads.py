"""The default pool against the best fixed ``ThreadPoolExecutor`` size, per workload.

Each workload is a fixed number of tasks (waits of 1-50 ms, GIL-releasing hashing of
large buffers, pure-Python loops), run under two submission patterns: ``all`` (a loop
of ``submit`` over every task, as ``map`` does, then wait) and ``bounded`` (at most
``window`` tasks in flight, the next submitted when one finishes, as a scanner or a
crawler feeds a pool). The contenders run on a fresh pool each (its ramp-up counts),
interleaved in shuffled order per repetition, so a noisy shared machine affects all
alike: ``AdaptiveThreadPoolExecutor`` with the package's default policy,
``ThreadPoolExecutor()`` (``min(32, cores + 4)`` threads) and a sweep of fixed
``ThreadPoolExecutor`` sizes, the best of which is the reference. The result is a
ratio of median throughputs (tasks/s). A run still busy after ``deadline`` seconds is
cut (queued tasks cancelled) and scored by the tasks finished by then.

Workloads in :data:`HELD_OUT` are never used to tune the policy; reports list them apart.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import gc
import hashlib
import math
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
from adaptive_lab.trace.format import host_info

SCHEMA = "adaptive-lab/pool-workloads"
VERSION = 1


@dataclass(frozen=True)
class Workload:
    """``tasks`` calls of ``make(i)()``; ``sizes`` is the fixed-size sweep."""

    name: str
    description: str
    tasks: int
    sizes: tuple[int, ...]
    make: Callable[[int], Callable[[], object]]
    held_out: bool = False


_BUFFERS: dict[int, bytes] = {}


def _buffer(size: int) -> bytes:
    if size not in _BUFFERS:
        _BUFFERS[size] = os.urandom(size)
    return _BUFFERS[size]


def _sleep(seconds: float) -> Callable[[int], Callable[[], object]]:
    return lambda i: lambda: time.sleep(seconds)


def _hash(algo: str, size: int) -> Callable[[int], Callable[[], object]]:
    buf = _buffer(size)

    def make(i: int) -> Callable[[], object]:
        return lambda: hashlib.new(algo, buf).digest()
    return make


def _loop(n: int) -> Callable[[], object]:
    def run() -> int:
        acc = 0
        for k in range(n):
            acc += k * k
        return acc
    return run


def _sleep_then_hash(seconds: float, size: int) -> Callable[[int], Callable[[], object]]:
    def make(i: int) -> Callable[[], object]:
        buf = _buffer(size)

        def run() -> bytes:
            time.sleep(seconds)
            return hashlib.sha256(buf).digest()
        return run
    return make


def _lognormal_sleep(median: float, sigma: float) -> Callable[[int], Callable[[], object]]:
    rng = random.Random(12345)
    delays = [median * math.exp(sigma * rng.gauss(0.0, 1.0)) for _ in range(100_000)]
    return lambda i: lambda: time.sleep(min(1.0, delays[i % len(delays)]))


_CPU = (1, 2, 4, 8)

WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("sleep-1ms", "time.sleep(0.001)", 24_000, (16, 32, 64, 128), _sleep(0.001)),
    Workload("sleep-5ms", "time.sleep(0.005)", 20_000, (32, 64, 128, 256), _sleep(0.005)),
    Workload("sleep-20ms", "time.sleep(0.02)", 16_000, (128, 256, 384, 512),
             _sleep(0.02)),
    Workload("sleep-50ms", "time.sleep(0.05)", 10_000, (128, 256, 384, 512), _sleep(0.05)),
    Workload("sha256-1MiB", "hashlib.sha256 of a 1 MiB buffer (releases the GIL)", 4_000,
             _CPU, _hash("sha256", 1 << 20)),
    Workload("python-loop", "a pure-Python loop of 20,000 additions (holds the GIL)",
             1_200, _CPU, lambda i: _loop(20_000)),
    # held out: never used to tune the policy
    Workload("sleep-3ms-sha64k", "time.sleep(0.003), then sha256 of 64 KiB", 16_000,
             (16, 32, 64, 128, 256), _sleep_then_hash(0.003, 64 << 10), held_out=True),
    Workload("lognormal-5ms", "time.sleep of a log-normal delay (median 5 ms, sigma 1)",
             14_000, (64, 128, 256, 512), _lognormal_sleep(0.005, 1.0), held_out=True),
    Workload("blake2b-256KiB", "hashlib.blake2b of a 256 KiB buffer", 7_000, _CPU,
             _hash("blake2b", 256 << 10), held_out=True),
)}

HELD_OUT = tuple(name for name, w in WORKLOADS.items() if w.held_out)
PATTERNS = ("all", "bounded")


def _run_all(ex: cf.Executor, fns: list[Callable[[], object]], window: int,
             deadline: float) -> int:
    fs = [ex.submit(fn) for fn in fns]
    done, _ = cf.wait(fs, timeout=deadline)
    return len(done)


def _run_bounded(ex: cf.Executor, fns: list[Callable[[], object]], window: int,
                 deadline: float) -> int:
    slots = threading.BoundedSemaphore(window)
    end = time.perf_counter() + deadline
    fs = []
    for fn in fns:
        if not slots.acquire(timeout=max(0.0, end - time.perf_counter())):
            break
        f = ex.submit(fn)
        f.add_done_callback(lambda _f: slots.release())
        fs.append(f)
    done, _ = cf.wait(fs, timeout=max(0.0, end - time.perf_counter()))
    return len(done)


RUNNERS = {"all": _run_all, "bounded": _run_bounded}


def default_pool() -> cf.Executor:
    """The pool a user gets with no arguments (the package's default policy)."""
    return AdaptiveThreadPoolExecutor()


def _contenders(sizes: Sequence[int]) -> dict[str, Callable[[], cf.Executor]]:
    makers: dict[str, Callable[[], cf.Executor]] = {
        "adaptive": default_pool, "tpe-default": cf.ThreadPoolExecutor}
    for s in sizes:
        makers[f"tpe-{s}"] = functools.partial(cf.ThreadPoolExecutor, s)
    return makers


def run_once(make: Callable[[], cf.Executor], w: Workload, pattern: str, tasks: int,
             window: int, deadline: float) -> dict[str, Any]:
    """One run on a fresh pool: tasks/s over the run (pool creation included)."""
    fns = [w.make(i) for i in range(tasks)]
    gc.collect()
    t0 = time.perf_counter()
    ex = make()
    try:
        done = RUNNERS[pattern](ex, fns, window, deadline)
        elapsed = time.perf_counter() - t0
        size = getattr(ex, "size", None)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return {"tasks_per_s": done / elapsed if elapsed > 0 else math.nan, "done": done,
            "seconds": elapsed, "cut": done < tasks, "final_size": size}


def run_workload_benchmark(workloads: Sequence[str] | None = None,
                           patterns: Sequence[str] = PATTERNS, repeat: int = 3,
                           scale: float = 1.0, window: int = 128, deadline: float = 1.5,
                           sizes: Sequence[int] | None = None, seed: int = 0,
                           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every workload x pattern; returns a JSON-friendly dict (``rows``)."""
    names = list(WORKLOADS) if workloads is None else list(workloads)
    for name in names:
        if name not in WORKLOADS:
            raise ValueError(f"unknown workload {name!r}; known: {sorted(WORKLOADS)}")
    for p in patterns:
        if p not in PATTERNS:
            raise ValueError(f"unknown pattern {p!r}; known: {list(PATTERNS)}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not deadline > 0:
        raise ValueError(f"deadline must be > 0, got {deadline}")
    if sizes is not None and (not sizes or min(sizes) < 1):
        raise ValueError("sizes must list worker counts >= 1")
    rng = random.Random(seed)
    rows = []
    for name in names:
        w = WORKLOADS[name]
        tasks = max(1, round(w.tasks * scale))
        makers = _contenders(sizes or w.sizes)
        for pattern in patterns:
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in makers}
            for _ in range(repeat):
                order = list(makers)
                rng.shuffle(order)
                for k in order:
                    runs[k].append(run_once(makers[k], w, pattern, tasks, window, deadline))
            rows.append(_row(w, pattern, tasks, runs))
            if progress:
                progress(format_row(rows[-1]))
    return {"schema": SCHEMA, "version": VERSION, "host": host_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repeat": repeat, "window": window, "deadline_s": deadline, "scale": scale,
            "held_out": [n for n in names if WORKLOADS[n].held_out], "rows": rows}


def _row(w: Workload, pattern: str, tasks: int, runs: dict[str, list[dict[str, Any]]]
         ) -> dict[str, Any]:
    med = {k: statistics.median(r["tasks_per_s"] for r in v) for k, v in runs.items()}
    fixed = {k: v for k, v in med.items() if k.startswith("tpe-") and k != "tpe-default"}
    best = max(fixed, key=lambda k: fixed[k])
    ref = fixed[best]
    return {"workload": w.name, "pattern": pattern, "held_out": w.held_out, "tasks": tasks,
            "median_tasks_per_s": med, "best_fixed": int(best[4:]),
            "best_fixed_tasks_per_s": ref,
            "adaptive_ratio": med["adaptive"] / ref if ref > 0 else math.nan,
            "default_ratio": med["tpe-default"] / ref if ref > 0 else math.nan,
            "adaptive_run_ratios": [r["tasks_per_s"] / ref for r in runs["adaptive"]],
            "adaptive_final_sizes": [r["final_size"] for r in runs["adaptive"]],
            "runs": runs}


def format_row(row: dict[str, Any]) -> str:
    runs = ", ".join(f"{r:.2f}" for r in row["adaptive_run_ratios"])
    return (f"{row['workload']:17s} {row['pattern']:8s} best fixed {row['best_fixed']:4d} "
            f"{row['best_fixed_tasks_per_s']:8.0f}/s  adaptive {row['adaptive_ratio']:5.2f} "
            f"({runs})  TPE() {row['default_ratio']:5.2f}")


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table, held-out workloads apart."""
    head = (f"{'workload':17s} {'pattern':8s} {'best fixed':>15s}  {'adaptive':>8s} "
            f"(runs)  TPE()")
    lines = []
    for held in (False, True):
        rows = [r for r in result["rows"] if r["held_out"] == held]
        if rows:
            lines += ["held out" if held else "tuned on", head] + [format_row(r) for r in rows]
    low = [r["adaptive_ratio"] for r in result["rows"]]
    if low:
        lines.append(f"lowest adaptive ratio: {min(low):.2f} (target >= 0.90)")
    return "\n".join(lines)
