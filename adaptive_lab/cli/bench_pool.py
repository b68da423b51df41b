"""``adaptive-lab bench-pool``: pool overhead against ThreadPoolExecutor."""

from __future__ import annotations

import argparse

NAME = "bench-pool"
HELP = "no-op task throughput of AdaptiveThreadPoolExecutor vs ThreadPoolExecutor (ratio)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="1,2,4,8,32", help="worker counts (comma-separated)")
    p.add_argument("--tasks", type=int, default=20_000, help="no-op tasks per run")
    p.add_argument("--repeat", type=int, default=7, help="interleaved repetitions")
    p.add_argument("--patterns", default="batch,serial", help="batch and/or serial")
    p.add_argument("--growth", type=int, default=256, metavar="N",
                   help="also time a growth to N threads while 2 threads hold the GIL "
                        "(0: skip)")
    p.add_argument("--output", default="results/pool_bench.json", help="JSON output path")


def run(args: argparse.Namespace) -> int:
    from adaptive_lab.bench.pool import run_growth_benchmark, run_pool_benchmark, save

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError("--sizes must list worker counts >= 1")
    result = run_pool_benchmark(sizes, args.tasks, args.repeat,
                                [p.strip() for p in args.patterns.split(",")], progress=print)
    if args.growth < 0:
        raise ValueError(f"--growth must be >= 0, got {args.growth}")
    if args.growth:
        g = run_growth_benchmark(args.growth, repeat=args.repeat)
        result["growth"] = g
        print(f"growth to {g['workers']} threads, {g['spinners']} threads holding the GIL: "
              f"TPE (a thread per submit) {g['tpe_seconds'] * 1e3:.0f} ms, adaptive "
              f"resize (tree) {g['adaptive_seconds'] * 1e3:.0f} ms: {g['speedup']:.1f}x")
    path = save(result, args.output)
    print(f"lowest ratio adaptive/TPE: {result['min_ratio']:.2f} (target >= 0.90); saved {path}")
    return 0
