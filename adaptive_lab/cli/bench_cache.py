"""``adaptive-lab bench-cache``: uncached scan vs cached rescans, in one run; save JSON.

Target: a cached rescan of an unchanged tree of 20,000 files of 16-48 KiB (warm page
cache) takes at most 0.2 x the uncached scan's time. Each scan runs in a fresh
process; see :mod:`adaptive_lab.bench.cache`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

NAME = "bench-cache"
HELP = "time an uncached scan, a cached rescan and a rescan after 1 percent changed; save JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="DIR",
                        help="benchmark tree (made here if missing, reused if made before)")
    parser.add_argument("--files", type=int, default=20_000, help="files (default 20000)")
    parser.add_argument("--kib", default="16-48", metavar="MIN-MAX",
                        help="file sizes in KiB (default 16-48)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats (default 3)")
    parser.add_argument("--change", type=float, default=1.0, metavar="PERCENT",
                        help="percent of files rewritten before the last rescan (default 1)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="scan on ThreadPoolExecutor(N) (default: scan()'s own pool)")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="where the cache file goes (default: beside DIR)")
    parser.add_argument("--output", default="bench-cache.json", metavar="JSON",
                        help="where to save the results (default bench-cache.json)")


def _kib(text: str) -> tuple[int, int]:
    try:
        low, _, high = text.partition("-")
        return int(low), int(high or low)
    except ValueError:
        raise ValueError(f"--kib: expected MIN-MAX in KiB, got {text!r}") from None


def _print(rec: dict[str, Any]) -> None:
    extra = f"  hits {rec['hits']:>6} misses {rec['misses']:>6}" if rec["phase"] != "uncached" \
        else ""
    print(f"  repeat {rec['repeat']}  {rec['phase']:<9} {rec['elapsed']:7.3f} s"
          f"{extra}  rss {rec['peak_rss_mb']:5.0f} MB  load {rec['load']:.1f}"
          f"{'' if rec['correct'] else '  RESULTS DIFFER'}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from adaptive_lab.bench.cache import bench_cache

    low, high = _kib(args.kib)
    report = bench_cache(args.root, files=args.files, repeats=args.repeats,
                         change_fraction=args.change / 100, workers=args.workers,
                         cache_dir=args.cache_dir, min_kib=low, max_kib=high,
                         progress=_print)
    report["command"] = ["adaptive-lab", *sys.argv[1:]]
    with open(args.output, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    med, ratio = report["median_s"], report["ratio"]
    print(f"{'phase':<10} {'median s':>9} {'x uncached':>10} {'peak RSS MB':>12}")
    for phase in med:
        print(f"{phase:<10} {med[phase]:9.3f} {ratio[phase]:10.3f} "
              f"{report['peak_rss_mb'][phase]:12.0f}")
    met = report["target"]["met"]
    print(f"target: unchanged <= {report['target']['unchanged_ratio_max']} x uncached: "
          f"{'met' if met else 'MISSED'}; results equal to an uncached scan: "
          f"{'yes' if report['correct'] else 'NO'}; saved {args.output}")
    return 0 if report["correct"] else 1
