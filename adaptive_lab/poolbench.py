"""Pool overhead benchmark: no-op task throughput, ours against ThreadPoolExecutor.

Both executors run the same no-op tasks at the same worker counts, in interleaved
repetitions (A, B, A, B, ...) within one process, so a noisy shared machine affects
both alike; the result is reported as a ratio of medians. Two patterns: "batch"
(submit all, then wait: about 85 k tasks/s here) and "serial" (submit one and wait:
wake-up latency dominates).
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .pool import AdaptiveThreadPoolExecutor
from .trace import host_info

SCHEMA = "adaptive-lab/pool-bench"
VERSION = 1


def _noop() -> None:
    return None


def _run_batch(ex: cf.Executor, tasks: int) -> float:
    t0 = time.perf_counter()
    fs = [ex.submit(_noop) for _ in range(tasks)]
    cf.wait(fs)
    return tasks / (time.perf_counter() - t0)


def _run_serial(ex: cf.Executor, tasks: int) -> float:
    t0 = time.perf_counter()
    for _ in range(tasks):
        ex.submit(_noop).result()
    return tasks / (time.perf_counter() - t0)


PATTERNS: dict[str, Callable[[cf.Executor, int], float]] = {
    "batch": _run_batch,
    "serial": _run_serial,
}


def run_pool_benchmark(sizes: Sequence[int] = (1, 2, 4, 8, 32), tasks: int = 20_000,
                       repeat: int = 7, patterns: Sequence[str] = ("batch", "serial"),
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure tasks/s of both executors; returns a JSON-friendly result dict."""
    for name in patterns:
        if name not in PATTERNS:
            raise ValueError(f"unknown pattern {name!r}; known: {sorted(PATTERNS)}")
    if tasks < 1 or repeat < 1:
        raise ValueError("tasks and repeat must be >= 1")
    rows = []
    for pattern in patterns:
        run = PATTERNS[pattern]
        n_tasks = tasks if pattern == "batch" else max(1, tasks // 4)
        for size in sizes:
            makers = {
                "ThreadPoolExecutor": lambda s=size: cf.ThreadPoolExecutor(s),
                "AdaptiveThreadPoolExecutor": lambda s=size: AdaptiveThreadPoolExecutor(s),
            }
            rates: dict[str, list[float]] = {k: [] for k in makers}
            pools = {k: make() for k, make in makers.items()}
            try:
                for ex in pools.values():  # warm up: start the threads
                    run(ex, min(n_tasks, 2000))
                for r in range(repeat):
                    order = list(pools) if r % 2 == 0 else list(reversed(pools))
                    for k in order:
                        gc.collect()
                        rates[k].append(run(pools[k], n_tasks))
            finally:
                for ex in pools.values():
                    ex.shutdown()
            tpe = statistics.median(rates["ThreadPoolExecutor"])
            ours = statistics.median(rates["AdaptiveThreadPoolExecutor"])
            row = {"pattern": pattern, "workers": size, "tasks": n_tasks,
                   "tpe_tasks_per_s": tpe, "adaptive_tasks_per_s": ours,
                   "ratio": ours / tpe, "tpe_runs": rates["ThreadPoolExecutor"],
                   "adaptive_runs": rates["AdaptiveThreadPoolExecutor"]}
            rows.append(row)
            if progress:
                progress(f"{pattern:6s} workers={size:3d}  TPE {tpe / 1e3:7.1f} k/s  "
                         f"adaptive {ours / 1e3:7.1f} k/s  ratio {ours / tpe:5.2f}")
    return {"schema": SCHEMA, "version": VERSION, "host": host_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repeat": repeat, "rows": rows,
            "min_ratio": min(r["ratio"] for r in rows)}


def save(result: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2))
    return p
