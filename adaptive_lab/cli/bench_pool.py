"""``adaptive-lab bench-pool``: pool overhead against ThreadPoolExecutor (``--mode
overhead``), or the default pool against the best fixed size per workload (``--mode
workloads``)."""

from __future__ import annotations

import argparse

NAME = "bench-pool"
HELP = ("AdaptiveThreadPoolExecutor vs ThreadPoolExecutor: no-op overhead, or real "
        "workloads against the best fixed size (--mode workloads)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("overhead", "workloads"), default="overhead",
                   help="overhead: no-op task throughput at equal sizes; workloads: the "
                        "default pool, ThreadPoolExecutor() and a sweep of fixed sizes on "
                        "sleep/hash/pure-Python tasks, submitted all at once and bounded")
    p.add_argument("--sizes", default=None,
                   help="worker counts (comma-separated; overhead default 1,2,4,8,32, "
                        "workloads default: each workload's own sweep)")
    p.add_argument("--tasks", type=int, default=20_000, help="overhead: no-op tasks per run")
    p.add_argument("--repeat", type=int, default=None,
                   help="interleaved repetitions (overhead 7, workloads 3)")
    p.add_argument("--patterns", default=None,
                   help="overhead: batch,serial; workloads: all,bounded")
    p.add_argument("--growth", type=int, default=256, metavar="N",
                   help="overhead: also time a growth to N threads while 2 threads hold "
                        "the GIL (0: skip)")
    p.add_argument("--workloads", default=None,
                   help="workloads: comma-separated names (default all; 'tuned' or "
                        "'held-out' for either group)")
    p.add_argument("--window", type=int, default=128,
                   help="workloads: tasks in flight for the bounded pattern")
    p.add_argument("--scale", type=float, default=1.0,
                   help="workloads: multiply every workload's task count")
    p.add_argument("--deadline", type=float, default=1.5,
                   help="workloads: cut a run after this many seconds")
    p.add_argument("--output", default=None,
                   help="JSON output path (default results/pool_bench.json or "
                        "results/pool_workloads.json)")


def _ints(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError("--sizes must list worker counts >= 1")
    return sizes


def _run_workloads(args: argparse.Namespace) -> int:
    from adaptive_lab.bench.pool import save
    from adaptive_lab.bench.pool_workloads import (
        HELD_OUT,
        PATTERNS,
        WORKLOADS,
        format_table,
        run_workload_benchmark,
    )

    names = None
    if args.workloads:
        key = args.workloads.strip()
        if key == "tuned":
            names = [n for n in WORKLOADS if n not in HELD_OUT]
        elif key == "held-out":
            names = list(HELD_OUT)
        else:
            names = [n.strip() for n in key.split(",") if n.strip()]
    patterns = [p.strip() for p in (args.patterns or ",".join(PATTERNS)).split(",")]
    result = run_workload_benchmark(
        names, patterns, repeat=3 if args.repeat is None else args.repeat,
        scale=args.scale, window=args.window, deadline=args.deadline,
        sizes=_ints(args.sizes) if args.sizes else None, progress=print)
    print(format_table(result))
    path = save(result, args.output or "results/pool_workloads.json")
    print(f"saved {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.mode == "workloads":
        return _run_workloads(args)
    from adaptive_lab.bench.pool import run_growth_benchmark, run_pool_benchmark, save

    sizes = _ints(args.sizes or "1,2,4,8,32")
    result = run_pool_benchmark(sizes, args.tasks, 7 if args.repeat is None else args.repeat,
                                [p.strip() for p in (args.patterns or "batch,serial").split(",")],
                                progress=print)
    if args.growth < 0:
        raise ValueError(f"--growth must be >= 0, got {args.growth}")
    if args.growth:
        g = run_growth_benchmark(args.growth, repeat=7 if args.repeat is None else args.repeat)
        result["growth"] = g
        print(f"growth to {g['workers']} threads, {g['spinners']} threads holding the GIL: "
              f"TPE (a thread per submit) {g['tpe_seconds'] * 1e3:.0f} ms, adaptive "
              f"resize (tree) {g['adaptive_seconds'] * 1e3:.0f} ms: {g['speedup']:.1f}x")
    path = save(result, args.output or "results/pool_bench.json")
    print(f"lowest ratio adaptive/TPE: {result['min_ratio']:.2f} (target >= 0.90); saved {path}")
    return 0
