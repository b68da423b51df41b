"""``adaptive-lab demo``: the main job, end to end, in about half a minute.

Generates a corpus, scans it through an :class:`AdaptiveThreadPoolExecutor` driven by
a scaling policy on an emulated network-storage latency (where pool size matters),
prints what the policy did and writes the trace; then scans the same corpus with
``ThreadPoolExecutor``'s default size, side by side, so the comparison is honest.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import tempfile
import time
from pathlib import Path
from typing import Any

from adaptive_lab.cli._common import add_policy_arguments, policy_from_args
from adaptive_lab.cli._metrics import (
    add_metrics_arguments,
    start_metrics,
    stop_metrics,
    watch_metrics,
)

NAME = "demo"
HELP = "scan a generated corpus with the adaptive pool, print the scaling, write a trace"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_policy_arguments(p, default="adaptive")
    p.add_argument("--files", type=int, default=3000, help="files in the corpus (3000)")
    p.add_argument("--latency-ms", type=float, default=5.0,
                   help="emulated storage latency per file in ms (5; 0 = local disk)")
    p.add_argument("--dir", default=None, help="corpus directory (default: a temp dir)")
    p.add_argument("--trace", default="out/demo_trace.jsonl", help="trace output path")
    p.add_argument("--no-compare", action="store_true",
                   help="skip the ThreadPoolExecutor comparison run")
    add_metrics_arguments(p)


def _scan(root: str, executor: cf.Executor, profile: Any, metrics: Any = None) -> Any:
    from adaptive_lab.scanner.core import Scanner

    scanner = Scanner(root, executor, profile=profile, signatures="builtin")
    watch_metrics(metrics, scanner)  # its files and bytes, with --metrics-port
    return scanner.run()


def run(args: argparse.Namespace) -> int:
    from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
    from adaptive_lab.scanner.corpus import make_corpus
    from adaptive_lab.scanner.profiles import profile_by_name
    from adaptive_lab.trace.format import Trace

    if args.files < 1:
        raise ValueError(f"--files must be >= 1, got {args.files}")
    if args.latency_ms < 0:
        raise ValueError(f"--latency-ms must be >= 0, got {args.latency_ms}")
    policy = policy_from_args(args)
    metrics = start_metrics(args)  # None without --metrics-port
    profile = (profile_by_name("latency", latency_ms=args.latency_ms) if args.latency_ms > 0
               else profile_by_name("local"))
    with tempfile.TemporaryDirectory(prefix="adaptive-lab-demo-") as tmp:
        root = args.dir or str(Path(tmp) / "corpus")
        info = make_corpus(root, files=args.files, seed=0, eicar=2)
        print(f"corpus: {info.files} files, {info.bytes / 1e6:.1f} MB in {root} "
              f"(2 EICAR test files planted)")
        print(f"profile: {profile.name}" + (f", {args.latency_ms:g} ms per file (emulated "
              "network storage latency)" if args.latency_ms > 0 else ""))
        print(f"policy: {policy!r}\n")

        trace_path = Path(args.trace)
        pool = AdaptiveThreadPoolExecutor(policy=policy, record=trace_path,
                                          thread_name_prefix="demo",
                                          workload={"profile": profile.name,
                                                    "latency_ms": args.latency_ms,
                                                    "files": info.files})
        t0 = time.perf_counter()
        with pool:
            summary = _scan(root, pool, profile, metrics)
        elapsed = time.perf_counter() - t0
        trace = Trace.load(trace_path)
        events = trace.scale_events()
        print(f"adaptive pool [{policy.name}]: {summary.files} files in {elapsed:.2f} s "
              f"= {summary.files / elapsed:,.0f} files/s; "
              f"{summary.matched_files} files matched a signature "
              f"{dict(summary.match_counts)}; skipped {summary.skipped}, "
              f"errors {summary.errors}")
        print(f"what the policy did ({len(events)} scale events, bounds "
              f"[{pool.min_workers}, {pool.max_workers}]):")
        shown = events if len(events) <= 12 else events[:8] + events[-3:]
        for i, e in enumerate(shown):
            if len(events) > 12 and i == 8:
                print(f"  ... {len(events) - 11} more ...")
            print(f"  t={e['t']:6.2f}s  {e['from']:4d} -> {e['to']:4d}  {e['reason']}")
        s = trace.summary()
        print(f"mean workers {s['mean_workers']:.1f}, peak {s['max_workers']}, "
              f"worker-seconds {s['worker_seconds']:.1f}")
        print(f"trace: {trace_path} ({len(trace.samples)} samples; load it with "
              f"adaptive_lab.Trace.load, replay it with `adaptive-lab replay`)")

        if not args.no_compare:
            with cf.ThreadPoolExecutor() as tpe:
                t0 = time.perf_counter()
                base = _scan(root, tpe, profile)
                base_elapsed = time.perf_counter() - t0
            rate, base_rate = summary.files / elapsed, base.files / base_elapsed
            print(f"\nThreadPoolExecutor() default ({tpe._max_workers} workers): "
                  f"{base.files} files in {base_elapsed:.2f} s = {base_rate:,.0f} files/s")
            verdict = "faster" if rate > base_rate else "slower"
            print(f"adaptive / default throughput ratio: {rate / base_rate:.2f} "
                  f"(adaptive is {verdict} on this workload)")
    stop_metrics(metrics)
    return 0
