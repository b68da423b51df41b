"""``adaptive-lab scan ROOT``: hash and match a tree on an adaptive (or fixed) pool.

Exit status: 0 when no signature matched, 1 when one did (like ``clamscan``), 2 on bad
input (a ``--cache`` file that is not a cache too), 130 when interrupted (the partial
summary is still printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

from adaptive_lab.cli._common import add_policy_arguments, policy_from_args
from adaptive_lab.cli._metrics import add_metrics_arguments, start_metrics, stop_metrics

NAME = "scan"
HELP = "scan a directory tree: hash every file, match byte signatures, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", metavar="ROOT", help="directory (or file) to scan")
    add_policy_arguments(parser, default="adaptive")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="use a fixed pool of N threads instead of a policy")
    parser.add_argument("--processes", type=int, default=None, metavar="N",
                        help="scan on N worker processes (0: one per core) instead of "
                             "threads: fastest on warm local files, where threads "
                             "share one GIL; no policy, no trace")
    parser.add_argument("--record", metavar="TRACE.jsonl", default=None,
                        help="record the pool's trace (samples and scale events) here")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--results", metavar="FILE.jsonl", default=None,
                        help="write one JSON line per file here")
    parser.add_argument("--digest", default="sha256",
                        help="hashlib algorithm: sha256 (default), blake2b, md5, ... or none")
    parser.add_argument("--signatures", metavar="FILE", default=None,
                        help="signature file, or 'builtin' for the shipped samples (EICAR)")
    parser.add_argument("--profile", default="local",
                        help="workload profile: local, latency, cpu, mixed, step "
                             "(latency is emulated with a sleep per file)")
    parser.add_argument("--latency-ms", type=float, default=None, metavar="L",
                        help="emulated latency per file in ms (sets the profile's latency)")
    parser.add_argument("--cpu-work", type=int, default=None, metavar="N",
                        help="pure-Python loop iterations per file (sets the profile's cpu_work)")
    parser.add_argument("--follow-symlinks", action="store_true",
                        help="follow symlinks that stay inside ROOT (loops are detected)")
    parser.add_argument("--max-file-size", type=int, default=None, metavar="BYTES",
                        help="skip files larger than this")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress line even on a terminal")
    parser.add_argument("--cache", metavar="PATH", default=None,
                        help="rescan cache (an SQLite file, created 0600): unchanged files "
                             "are answered from it without being read")
    parser.add_argument("--cache-trust", action="append", default=None,
                        choices=("ignore-inode", "ignore-ctime"),
                        help="leave inode and device, or ctime, out of the cache's "
                             "comparison (filesystems where they change by themselves); "
                             "repeatable")
    parser.add_argument("--cache-max-age", type=int, default=None, metavar="RUNS",
                        help="drop entries of directories not listed for RUNS runs "
                             "(default 20)")
    parser.add_argument("--cache-max-entries", type=int, default=None, metavar="N",
                        help="evict least-recently-used entries over N (default 2000000)")
    add_metrics_arguments(parser)


def _profile(args: argparse.Namespace) -> Any:
    from adaptive_lab.scanner.profiles import profile_by_name

    overrides: dict[str, Any] = {}
    if args.latency_ms is not None:
        overrides["latency_ms"] = args.latency_ms
    if args.cpu_work is not None:
        overrides["cpu_work"] = args.cpu_work
    profile = profile_by_name(args.profile, **overrides)
    if overrides and args.profile == "local":
        from dataclasses import replace

        profile = replace(profile, name="custom")
    return profile


def _executor(args: argparse.Namespace, profile: Any) -> Any:
    from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor

    workload = {"kind": "scan", "root": args.root, "profile": profile.to_dict(),
                "digest": args.digest}
    if args.processes is not None:
        from concurrent.futures import ProcessPoolExecutor

        if args.processes < 0:
            raise ValueError(f"--processes must be >= 0, got {args.processes}")
        for flag, given in (("--workers", args.workers is not None),
                            ("--record", args.record), ("--set", args.set_params),
                            ("--policy", args.policy != "adaptive")):
            if given:
                raise ValueError(f"{flag} applies to the thread pool; it cannot be used "
                                 f"with --processes")
        return ProcessPoolExecutor(args.processes or os.cpu_count() or 1)
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        if args.set_params:
            raise ValueError("--set applies to a policy; it cannot be used with --workers")
        return AdaptiveThreadPoolExecutor(args.workers, thread_name_prefix="scan", policy=None,
                                          record=args.record, workload=workload)
    return AdaptiveThreadPoolExecutor(thread_name_prefix="scan", policy=policy_from_args(args),
                                      record=args.record, workload=workload)


class Progress:
    """A one-line ``\\r`` progress display on a terminal (no dependency)."""

    def __init__(self, stream: TextIO, pool: Any, period: float = 0.2) -> None:
        self.stream = stream
        self.pool = pool
        self.period = period
        self.next = 0.0
        self.shown = False

    def update(self, summary: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self.next:
            return
        self.next = now + self.period
        rate = summary.files / summary.elapsed if summary.elapsed > 0 else 0.0
        line = (f"\r{summary.files_seen:>10,} files  {summary.bytes / 2**20:>9.1f} MiB  "
                f"{rate / 1000:6.1f} k/s  skipped {summary.skipped}  errors {summary.errors}"
                f"  matched {summary.matched_files}  workers {_width(self.pool)}")
        self.stream.write(line)
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _width(pool: Any) -> int:
    """Workers now: an adaptive pool's size, else the executor's fixed maximum."""
    from adaptive_lab.scanner.core import _executor_width

    return _executor_width(pool) or 0


def _pool_report(pool: Any) -> dict[str, Any]:
    if not hasattr(pool, "controller"):  # worker processes: fixed, no policy
        n = _width(pool)
        return {"policy": None, "executor": "processes", "scale_events": 0,
                "final_size": n, "min_workers": n, "max_workers": n}
    ctl = pool.controller
    return {
        "policy": ctl.policy.describe() if ctl is not None and ctl.policy else None,
        "scale_events": ctl.scale_events if ctl is not None else 0,
        "final_size": pool.size,
        "min_workers": pool.min_workers,
        "max_workers": pool.max_workers,
    }


def _print_table(summary: Any, pool: dict[str, Any], out: TextIO) -> None:
    rows = [
        ("root", summary.root),
        ("files", f"{summary.files} ok, {summary.skipped} skipped, {summary.errors} errors, "
                  f"{summary.not_scanned} not scanned ({summary.files_seen} seen)"),
        ("bytes", f"{summary.bytes / 2**20:.1f} MiB"),
        ("elapsed", f"{summary.elapsed:.2f} s ({summary.files_per_s / 1000:.1f} k files/s, "
                    f"{summary.mb_per_s:.0f} MB/s)"),
        ("digest", str(summary.digest)),
        ("profile", summary.profile),
        ("matches", f"{summary.matched_files} files"
         + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(summary.match_counts.items()))
            + ")" if summary.match_counts else "")),
    ]
    for reason, count in sorted(summary.reasons.items(), key=lambda kv: -kv[1]):
        rows.append(("  " + reason, str(count)))
    policy = pool["policy"]["name"] if pool["policy"] else "none (fixed size)"
    if pool.get("executor") == "processes":
        policy = f"none ({pool['final_size']} worker processes)"
    rows.append(("pool", f"policy {policy}: {pool['scale_events']} scale events, final size "
                         f"{pool['final_size']} (bounds {pool['min_workers']}.."
                         f"{pool['max_workers']})"))
    if summary.cache is not None:
        c, rate = summary.cache, summary.cache_hit_rate
        rows.append(("cache", f"{summary.cache_hits} hits, {summary.cache_misses} misses"
                              + (f" ({rate:.1%} hit rate)" if rate is not None else "")
                              + f", {c['written']} written ({c['racy']} racy), "
                              f"{c['pruned'] + c['evicted']} dropped: {c['path']}"))
        if c["disabled"]:
            rows.append(("", f"not used after an error: {c['disabled']}"))
    if summary.cancelled:
        rows.append(("cancelled", "yes: the scan was interrupted"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}", file=out)


def _cache(args: argparse.Namespace) -> Any:
    """``--cache`` and its settings as a ScanCache (None without ``--cache``)."""
    extra = {k: v for k, v in (("max_age_runs", args.cache_max_age),
                               ("max_entries", args.cache_max_entries)) if v is not None}
    if args.cache is None:
        if args.cache_trust or extra:
            raise ValueError("--cache-trust, --cache-max-age and --cache-max-entries "
                             "need --cache")
        return None
    from adaptive_lab.scanner.cache import ScanCache

    return ScanCache(args.cache, trust=args.cache_trust, **extra)


def _warn_one_line(message: Any, category: Any, filename: str, lineno: int,
                   file: Any = None, line: str | None = None) -> None:
    print(f"adaptive-lab scan: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = _warn_one_line
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from adaptive_lab.scanner.core import Scanner

    profile = _profile(args)
    digest = None if args.digest.lower() == "none" else args.digest
    cache = _cache(args)
    pool = _executor(args, profile)
    results_fh = None
    metrics = None
    interrupted = False
    try:
        scanner = Scanner(args.root, pool, digest=digest, signatures=args.signatures,
                          profile=profile, follow_symlinks=args.follow_symlinks,
                          max_file_size=args.max_file_size, cache=cache)
        metrics = start_metrics(args, scanner, pool)  # None without --metrics-port
        if args.results:
            results_fh = open(args.results, "w", encoding="utf-8")
        progress = (Progress(sys.stderr, pool)
                    if sys.stderr.isatty() and not args.no_progress else None)
        try:
            for result in scanner.results():
                if results_fh is not None:
                    results_fh.write(json.dumps(result.to_dict()) + "\n")
                if progress is not None:
                    progress.update(scanner.summary)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if progress is not None:
                progress.close()
    finally:
        if results_fh is not None:
            results_fh.close()
        pool.shutdown(wait=True, cancel_futures=True)
        stop_metrics(metrics)
    summary = scanner.summary
    report = _pool_report(pool)
    if args.json:
        print(json.dumps({**summary.to_dict(), "pool": report,
                          "profile_params": profile.to_dict()}))
    else:
        _print_table(summary, report, sys.stdout)
    if interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    return 1 if summary.matched_files else 0
