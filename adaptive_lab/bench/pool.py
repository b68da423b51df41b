"""Pool overhead benchmark: no-op task throughput, ours against ThreadPoolExecutor.

ThreadPoolExecutor, our pool at a fixed size (``policy=None``) and our pool held at
that size by a policy (the controller sampling as it runs, as by default) run the same
no-op tasks at the same worker counts, in interleaved repetitions within one process,
so a noisy shared machine affects them alike; results are ratios of medians. Two
patterns: "batch" (submit all, then wait: about 85 k tasks/s here) and "serial"
(submit one and wait: wake-up latency dominates). :func:`run_growth_benchmark` times a
growth by many threads while other threads hold the GIL.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import json
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
from adaptive_lab.policies.fixed import FixedPolicy
from adaptive_lab.trace.format import host_info

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
    rows: list[dict[str, Any]] = []
    for pattern in patterns:
        run = PATTERNS[pattern]
        n_tasks = tasks if pattern == "batch" else max(1, tasks // 4)
        for size in sizes:
            makers = {
                "ThreadPoolExecutor": lambda s=size: cf.ThreadPoolExecutor(s),
                "AdaptiveThreadPoolExecutor":
                    lambda s=size: AdaptiveThreadPoolExecutor(s, policy=None),
                # the same size held by a policy: the controller samples as it runs
                "controlled": lambda s=size: AdaptiveThreadPoolExecutor(
                    s, min_workers=s, policy=FixedPolicy(n=s)),
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
            ctl = statistics.median(rates["controlled"])
            row = {"pattern": pattern, "workers": size, "tasks": n_tasks,
                   "tpe_tasks_per_s": tpe, "adaptive_tasks_per_s": ours,
                   "ratio": ours / tpe, "tpe_runs": rates["ThreadPoolExecutor"],
                   "adaptive_runs": rates["AdaptiveThreadPoolExecutor"],
                   "controlled_tasks_per_s": ctl, "controlled_ratio": ctl / tpe,
                   "controlled_runs": rates["controlled"]}
            rows.append(row)
            if progress:
                progress(f"{pattern:6s} workers={size:3d}  TPE {tpe / 1e3:7.1f} k/s  "
                         f"adaptive {ours / 1e3:7.1f} k/s  ratio {ours / tpe:5.2f}  "
                         f"with controller {ctl / 1e3:7.1f} k/s  ratio {ctl / tpe:5.2f}")
    return {"schema": SCHEMA, "version": VERSION, "host": host_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repeat": repeat, "rows": rows,
            "min_ratio": min(min(r["ratio"], r["controlled_ratio"]) for r in rows)}


def _spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():  # pure Python: holds the GIL but for forced switches
        for _ in range(1000):
            x += 1


def _time_to_running(n: int, start: Callable[[Callable[[], None]], object],
                     release: threading.Event) -> float:
    """Seconds from ``start(task)`` until ``n`` tasks run at once (a barrier)."""
    barrier = threading.Barrier(n + 1)

    def task() -> None:
        barrier.wait()
        release.wait()

    t0 = time.perf_counter()
    start(task)
    barrier.wait(timeout=60)
    return time.perf_counter() - t0


def run_growth_benchmark(workers: int = 256, spinners: int = 2, repeat: int = 5
                         ) -> dict[str, Any]:
    """Time until ``workers`` blocking tasks all run, while ``spinners`` threads run
    pure Python (holding the GIL): ``ThreadPoolExecutor(workers)`` starting one thread
    per submit, against our pool grown by ``resize(workers)`` with the tasks queued
    (threads started as a tree). Interleaved; returns medians and their ratio."""
    if workers < 1 or spinners < 0 or repeat < 1:
        raise ValueError("workers, repeat must be >= 1 and spinners >= 0")
    stop = threading.Event()
    spin = [threading.Thread(target=_spin, args=(stop,), daemon=True)
            for _ in range(spinners)]
    for t in spin:
        t.start()
    times: dict[str, list[float]] = {"ThreadPoolExecutor": [], "AdaptiveThreadPoolExecutor": []}
    try:
        for r in range(repeat):
            order = list(times) if r % 2 == 0 else list(reversed(times))
            for name in order:
                release = threading.Event()
                if name == "ThreadPoolExecutor":
                    ex: cf.Executor = cf.ThreadPoolExecutor(workers)

                    def start(task: Callable[[], None], ex: cf.Executor = ex) -> None:
                        for _ in range(workers):
                            ex.submit(task)
                else:
                    ex = AdaptiveThreadPoolExecutor(workers, min_workers=1, policy=None,
                                                    initial_workers=1)

                    def start(task: Callable[[], None],  # type: ignore[misc]
                              ex: AdaptiveThreadPoolExecutor = ex) -> None:
                        for _ in range(workers):
                            ex.submit(task)
                        ex.resize(workers)
                try:
                    times[name].append(_time_to_running(workers, start, release))
                finally:
                    release.set()
                    ex.shutdown()
    finally:
        stop.set()
        for t in spin:
            t.join()
    tpe = statistics.median(times["ThreadPoolExecutor"])
    ours = statistics.median(times["AdaptiveThreadPoolExecutor"])
    return {"workers": workers, "spinners": spinners, "repeat": repeat,
            "tpe_seconds": tpe, "adaptive_seconds": ours, "speedup": tpe / ours,
            "tpe_runs": times["ThreadPoolExecutor"],
            "adaptive_runs": times["AdaptiveThreadPoolExecutor"]}


def save(result: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2))
    return p
