"""``adaptive-lab bench``: fixed pools vs the default vs the oracle vs every policy."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

NAME = "bench"
HELP = ("benchmark the scanner under fixed pools, the ThreadPoolExecutor default, a sweep "
        "of sizes (the oracle), the original report's threshold policy and every "
        "registered policy")

QUICK = {"files_count": 2000, "repeat": 1, "time_cap": 0.5, "step_time_cap": 1.0,
         "step_at": 0.25}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fixed-sizes expects comma-separated ints, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--fixed-sizes must be ints >= 1, got {text!r}")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline-workers", type=int, default=4,
                        help="size of the fixed ThreadPoolExecutor baseline (default 4)")
    parser.add_argument("--files-count", type=int, default=None,
                        help="files in the generated corpus (default 10000; --quick 2000)")
    parser.add_argument("--profile", default="all",
                        help="profile name, comma-separated names, or 'all' (local, cold, "
                             "latency-1ms, latency-5ms, latency-20ms, cpu, mixed, step)")
    parser.add_argument("--policy", default="all",
                        help="registered policy name(s), comma-separated, 'all' (every one "
                             "but 'fixed', which the sweep covers) or 'none'")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repetitions, interleaved (default 3; --quick 1)")
    parser.add_argument("--fixed-sizes", type=_sizes, default=None,
                        help="fixed pool sizes of the sweep (default "
                             "1,2,4,8,16,32,64,128,256,384; --quick 4,64,256)")
    parser.add_argument("--time-cap", type=float, default=None,
                        help="stop a run after this many seconds and report files/s over "
                             "the files done (default 2; --quick 0.5)")
    parser.add_argument("--step-time-cap", type=float, default=None,
                        help="time cap of the step profile's adaptive runs (default 6; "
                             "fixed pools stop 2 s after the step)")
    parser.add_argument("--step-at", type=float, default=None,
                        help="seconds into a step-profile run when the latency steps "
                             "(default 1)")
    parser.add_argument("--output", type=Path, default=Path("benchmark_results.json"),
                        help="results JSON (traces go to <stem>_traces/ next to it)")
    parser.add_argument("--html", type=Path, default=None, help="also write an HTML report")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write a compact Markdown summary (for a README)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="reuse this corpus directory (created there if empty/missing)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the corpus and of the run order shuffle")
    parser.add_argument("--no-references", action="store_true",
                        help="skip the plain-loop and native reference rows")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 2000 files, 1 repetition, 3 fixed sizes, 0.5 s cap")
    parser.add_argument("--quiet", action="store_true", help="no per-run progress lines")


def run(args: argparse.Namespace) -> int:
    from adaptive_lab.bench.config import (
        DEFAULT_FIXED_SIZES,
        QUICK_FIXED_SIZES,
        BenchSettings,
        resolve_policies,
        resolve_profiles,
    )
    from adaptive_lab.bench.render import format_markdown, format_table, write_html
    from adaptive_lab.bench.runner import run_benchmark

    quick = args.quick

    def pick(value: Any, name: str, default: Any) -> Any:
        return value if value is not None else (QUICK[name] if quick else default)

    settings = BenchSettings(
        profiles=resolve_profiles(args.profile), policies=resolve_policies(args.policy),
        baseline_workers=args.baseline_workers,
        files_count=pick(args.files_count, "files_count", 10_000),
        repeat=pick(args.repeat, "repeat", 3),
        fixed_sizes=args.fixed_sizes or (QUICK_FIXED_SIZES if quick else DEFAULT_FIXED_SIZES),
        output=args.output, corpus=args.corpus,
        time_cap=pick(args.time_cap, "time_cap", 2.0),
        step_time_cap=pick(args.step_time_cap, "step_time_cap", 6.0),
        step_at=pick(args.step_at, "step_at", 1.0),
        seed=args.seed, quick=quick, references=not args.no_references,
    )
    t0 = time.perf_counter()
    progress = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    doc = run_benchmark(settings, progress=progress)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n",
                           encoding="utf-8")
    print(format_table(doc))
    print(f"\nwrote {args.output} ({time.perf_counter() - t0:.0f} s)")
    if args.markdown is not None:
        args.markdown.write_text(format_markdown(doc) + "\n", encoding="utf-8")
        print(f"wrote {args.markdown}")
    if args.html is not None:
        out = write_html(doc, args.html)
        if out is not None:
            print(f"wrote {out}")
    return 0
