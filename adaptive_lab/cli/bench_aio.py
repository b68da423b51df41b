"""``adaptive-lab bench-aio``: the asyncio limiter against fixed limits and every policy,
on a local aiohttp server (steady, capacity halved mid-run, load shedding)."""

from __future__ import annotations

import argparse

NAME = "bench-aio"
HELP = ("AdaptiveLimiter vs fixed asyncio.Semaphore limits and every policy, on a local "
        "HTTP server (needs the 'aio' extra: aiohttp)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: two short scenarios (a few seconds per contender)")
    p.add_argument("--scenarios", default=None,
                   help="comma-separated scenario names or kinds (steady, halved, shedding)")
    p.add_argument("--policies", default=None,
                   help="comma-separated policy names besides the default (default: all "
                        "registered; 'none' for only the default and the fixed limits)")
    p.add_argument("--clients", type=int, default=400,
                   help="concurrent client tasks on the event loop")
    p.add_argument("--output", default="results/aio_bench.json", help="JSON output path")


def run(args: argparse.Namespace) -> int:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise ValueError("bench-aio needs aiohttp: pip install 'adaptive-lab[aio]'") from None
    from adaptive_lab.bench.aio import format_table, run_benchmark, save
    from adaptive_lab.policies.registry import available_policies

    if args.clients < 1:
        raise ValueError(f"--clients must be >= 1, got {args.clients}")
    policies = None
    if args.policies is not None:
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
        if policies == ["none"]:
            policies = []
        unknown = sorted(set(policies) - set(available_policies()))
        if unknown:
            raise ValueError(f"--policies: unknown {unknown}; known: "
                             f"{', '.join(available_policies())}")
    names = [s.strip() for s in args.scenarios.split(",")] if args.scenarios else None
    result = run_benchmark(quick=args.quick, policies=policies, clients=args.clients,
                           names=names, progress=print)
    print(format_table(result))
    path = save(result, args.output)
    print(f"\nsaved {path} ({result['elapsed_s']:.0f} s)")
    return 0
