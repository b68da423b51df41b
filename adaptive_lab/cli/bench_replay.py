"""``adaptive-lab bench-replay``: how fast are replay, sweeps and simulation?

Targets: open-loop replay of a one-hour trace (3,600 samples) <= 20 ms; a
1,000-point threshold sweep over it <= 2 s; a closed-loop simulation of one hour fast
enough for a slider (<= 100 ms). Timings are best-of-N wall times in this process
(the machine may be shared: read them as ratios to the targets).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAME = "bench-replay"
HELP = "measure replay, sweep and simulation speed on a one-hour trace; save JSON"

_DATA = Path(__file__).resolve().parents[2] / "data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", default=None,
                        help="source trace, tiled to --samples (default data/latency.jsonl)")
    parser.add_argument("--samples", type=int, default=3600,
                        help="samples in the benchmark trace (default 3600 = 1 h at 1 s)")
    parser.add_argument("--repeat", type=int, default=7, help="runs per timing (best of)")
    parser.add_argument("--grid", type=int, default=1000, help="sweep points (default 1000)")
    parser.add_argument("--output", default="bench-replay.json", metavar="JSON",
                        help="where to save the results (default bench-replay.json)")


def tile_trace(trace: Any, samples: int, period: float = 1.0,
               interval: float = 5.0) -> Any:
    """Repeat ``trace``'s samples to ``samples`` samples, ``period`` s apart.

    Counters stay cumulative across copies; the header's interval becomes ``interval``
    and its sample period ``period``. A one-hour trace from a short real one.
    """
    from adaptive_lab.trace.format import Trace

    src = trace.samples
    if not src:
        raise ValueError("trace has no samples to tile")
    if samples < 2:
        raise ValueError(f"samples must be >= 2, got {samples}")
    counters = ("submitted", "completed", "failed")
    last = {k: max(0, src[-1].get(k, 0) or 0) for k in counters}
    first = {k: max(0, src[0].get(k, 0) or 0) for k in counters}
    out = []
    for i in range(samples):
        rep, j = divmod(i, len(src))
        s = dict(src[j])
        s["t"] = round(i * period, 6)
        for k in counters:
            if s.get(k) is not None and s[k] >= 0:
                s[k] = s[k] + rep * (last[k] - first[k])
        out.append(s)
    header = dict(trace.header)
    header["interval"] = interval
    header["sample_period"] = period
    header["tiled_from"] = {"samples": len(src), "created": trace.header.get("created")}
    return Trace(header=header, samples=out, events=[])


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Minimum wall time over ``repeat`` calls, and the last result."""
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from adaptive_lab.policies import FixedPolicy, ThresholdPolicy
    from adaptive_lab.sim.closed_loop import simulate
    from adaptive_lab.sim.model import WorkloadModel
    from adaptive_lab.sim.open_loop import replay
    from adaptive_lab.sim.parameter_sweep import sweep
    from adaptive_lab.trace.format import Trace

    if args.samples < 2 or args.repeat < 1 or args.grid < 1:
        raise ValueError("--samples must be >= 2, --repeat and --grid >= 1")
    src_path = Path(args.trace) if args.trace else _DATA / "latency.jsonl"
    if not src_path.is_file():
        raise ValueError(f"--trace: no such file: {src_path}")
    hour = tile_trace(Trace.load(src_path), args.samples)
    res: dict[str, Any] = {
        "source": str(src_path), "samples": len(hour.samples),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "loadavg": list(os.getloadavg())},
        "repeat": args.repeat, "results": {},
    }
    r = res["results"]

    def record(name: str, seconds: float, target: float | None, **extra: Any) -> None:
        r[name] = {"seconds": seconds, "target_s": target,
                   "meets_target": None if target is None else seconds <= target, **extra}
        tgt = "" if target is None else f"  (target {target * 1e3:.0f} ms: " + (
            "ok)" if seconds <= target else "MISSED)")
        print(f"{name:<42} {seconds * 1e3:9.1f} ms{tgt}")

    pol = ThresholdPolicy(scale_up_queue=10)
    t0 = time.perf_counter()
    out = replay(hour, pol)
    record("replay_open_cold", time.perf_counter() - t0, None,
           note="first replay of a freshly loaded trace (builds the column cache)")
    sec, out = best_of(lambda: replay(hour, pol), args.repeat)
    record("replay_open_interval5", sec, 0.020, decisions=len(hour.samples) // 5,
           scale_events=len(out.scale_events()))
    sec, out = best_of(lambda: replay(hour, pol, interval=1.0), args.repeat)
    record("replay_open_interval1", sec, 0.020, decisions=len(hour.samples),
           scale_events=len(out.scale_events()))
    # 1,000-point threshold grid
    side = max(1, round(args.grid ** (1 / 3)))
    grid = {"scale_up_queue": np.linspace(0, 40, side).round().astype(int).tolist(),
            "moderate_queue": np.linspace(0, 40, side).round().astype(int).tolist(),
            "scale_down_cpu": np.linspace(40, 100, side).round().tolist()}
    n = int(np.prod([len(v) for v in grid.values()]))
    sec, sw = best_of(lambda: sweep(hour, ThresholdPolicy, grid, mode="open"),
                      max(1, args.repeat // 3))
    record(f"sweep_open_threshold_{n}_points", sec, 2.0, vectorised=sw.vectorised,
           valid=int(sw.valid.sum()))
    small = {k: v[:3] for k, v in grid.items()}
    sec, sw2 = best_of(lambda: sweep(hour, ThresholdPolicy, small, mode="open",
                                     vectorise=False), 1)
    record("sweep_open_threshold_scalar_per_point", sec / len(sw2), None,
           note="the per-policy path, per point (27 points timed)")
    # closed loop: one hour of simulated time
    model = WorkloadModel.fit(Trace.load(src_path))
    sec, sim = best_of(lambda: simulate(model, ThresholdPolicy(), duration=3600.0,
                                        tasks=10**12, interval=5.0, sample_period=1.0),
                       max(1, args.repeat // 2))
    record("simulate_closed_1h_sample1s", sec, 0.100, samples=len(sim.samples))
    sec, sim = best_of(lambda: simulate(model, FixedPolicy(8), interval=5.0,
                                        sample_period=1.0), args.repeat)
    record("simulate_closed_source_workload", sec, None, samples=len(sim.samples),
           note="the source run's own work (ends when done)")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0
