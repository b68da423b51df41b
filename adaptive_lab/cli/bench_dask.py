"""``adaptive-lab bench-dask``: a scan on a Dask LocalCluster vs the local pool.

Side by side on one generated corpus (warm page cache), repetitions interleaved:
the scanner's default local pool, a fixed local thread pool and a local process pool
of the cluster's width, the cluster itself (started once, outside the timings), and
optionally the cluster sized by an adaptive_lab policy through ``PolicyAdaptive``
(starting from one worker). Every run's (path, status, digest) set must be the same;
the JSON says whether it was.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAME = "bench-dask"
HELP = ("scan a generated corpus on a Dask LocalCluster (2 worker processes by default) "
        "against the local pool, side by side; print and save JSON")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--files", type=int, default=None,
                        help="files in the generated corpus (default 5000; --quick 1000)")
    parser.add_argument("--dirs", type=int, default=50, help="leaf directories (default 50)")
    parser.add_argument("--size-mix", default="A", choices=("A", "B"),
                        help="A: log-normal sizes, median 8 KiB (default); B: all 4 KiB")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="corpus directory to reuse/create (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=1,
                        help="threads per Dask worker (default 1)")
    parser.add_argument("--in-process", action="store_true",
                        help="in-process Dask workers (threads) instead of worker processes")
    parser.add_argument("--repeat", type=int, default=None,
                        help="interleaved repetitions (default 5; --quick 1)")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="seconds of work per Dask batch (default 0.05)")
    parser.add_argument("--digest", default="sha256", help="hashlib algorithm (default sha256)")
    parser.add_argument("--profile", default="local",
                        help="workload profile of every run: local (default), latency, cpu, "
                             "mixed, step")
    parser.add_argument("--policy", default="utilization_band",
                        help="also run the cluster sized by this policy from 1 worker "
                             "(default utilization_band; 'none' to skip)")
    parser.add_argument("--interval", type=float, default=0.2,
                        help="PolicyAdaptive interval in seconds (default 0.2)")
    parser.add_argument("--output", type=Path, default=Path("bench_dask.json"),
                        help="results JSON (adaptive traces go to <stem>_traces/)")
    parser.add_argument("--quick", action="store_true", help="1000 files, 1 repetition")


def _positive(name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not isinstance(value, kind) or value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")


class _Fingerprint:
    """Order-independent digest of every (path, status, digest) a scan reported."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def __call__(self, r: Any) -> None:
        self.lines.append(b"%s %s %s" % (r.raw_path.hex().encode(), r.status.encode(),
                                         (r.digest or "-").encode()))

    def hexdigest(self) -> str:
        return hashlib.sha256(b"\n".join(sorted(self.lines))).hexdigest()


def _run_scan(fn: Callable[..., Any], root: str, digest: str, profile: Any
              ) -> dict[str, Any]:
    fp = _Fingerprint()
    s = fn(root, on_result=fp, digest=digest, profile=profile)
    return {"elapsed": s.elapsed, "files": s.files, "files_per_s": s.files_per_s,
            "mb_per_s": s.mb_per_s, "batches": s.batches, "max_in_flight": s.max_in_flight,
            "errors": s.errors, "fingerprint": fp.hexdigest()}


def _wait_workers(cluster: Any, n: int, timeout: float) -> bool:
    """Wait until ``n`` workers are planned and connected (False on timeout)."""
    end = time.monotonic() + timeout
    while len(cluster.scheduler.workers) != n or len(cluster.plan) != n:
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def run(args: argparse.Namespace) -> int:
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - optional extra
        raise ValueError("bench-dask needs the dask extra: pip install "
                         "adaptive-lab[dask]") from None
    from concurrent.futures import ProcessPoolExecutor

    from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
    from adaptive_lab.integrations.dask import DASK_BATCH_SECONDS, PolicyAdaptive, scan_on_dask
    from adaptive_lab.policies import make_policy
    from adaptive_lab.scanner.core import scan
    from adaptive_lab.scanner.corpus import make_corpus
    from adaptive_lab.scanner.profiles import profile_by_name
    from adaptive_lab.trace.format import host_info

    files = args.files or (1000 if args.quick else 5000)
    repeat = args.repeat or (1 if args.quick else 5)
    batch_seconds = args.batch_seconds or DASK_BATCH_SECONDS
    for name, value in (("--files", files), ("--dirs", args.dirs), ("--workers", args.workers),
                        ("--threads-per-worker", args.threads_per_worker),
                        ("--repeat", repeat)):
        _positive(name, value)
    _positive("--batch-seconds", float(batch_seconds), float)
    _positive("--interval", float(args.interval), float)
    policy = None if args.policy.lower() == "none" else make_policy(args.policy)
    profile = profile_by_name(args.profile)
    width = args.workers * args.threads_per_worker
    tmp = None
    if args.corpus is None:
        tmp = tempfile.mkdtemp(prefix="adaptive-lab-bench-dask-")
        corpus_dir = Path(tmp) / "corpus"
    else:
        corpus_dir = args.corpus
    traces_dir = args.output.with_name(args.output.stem + "_traces")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    # a second LocalCluster's scheduler finds the default HTTP port taken: harmless
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    out: dict[str, Any] = {"command": "bench-dask", "created": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": host_info(),
        "loadavg_before": os.getloadavg()}
    try:
        info = make_corpus(corpus_dir, files=files, dirs=args.dirs, size_mix=args.size_mix)
        root = info.root
        scan(root, digest=None)  # warm the page cache: every row reads from memory
        cluster_kw = dict(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                          processes=not args.in_process, dashboard_address=None,
                          silence_logs=logging.ERROR)
        t0 = time.perf_counter()
        cluster = LocalCluster(**cluster_kw)
        client = Client(cluster)
        start_s = time.perf_counter() - t0
        procs = ProcessPoolExecutor(width)
        list(procs.map(abs, range(width * 4)))  # start the processes before timing
        if policy is not None:
            a_cluster = LocalCluster(**{**cluster_kw, "n_workers": 1})
            a_client = Client(a_cluster)
        rows: dict[str, list[dict[str, Any]]] = {}
        labels = {
            "local-default": "scanner default (AdaptiveThreadPoolExecutor)",
            "local-threads": f"local thread pool, {width} threads",
            "local-processes": f"local ProcessPoolExecutor, {width} processes",
            "dask": f"Dask LocalCluster {args.workers} x {args.threads_per_worker} "
                    f"({'threads' if args.in_process else 'processes'})",
        }
        if policy is not None:
            labels["dask-adaptive"] = (f"Dask LocalCluster 1..{args.workers} workers, "
                                       f"PolicyAdaptive({policy.name})")
        try:
            for r in range(-1, repeat):  # r = -1: untimed warm-up (imports in workers)
                scan(root, digest=None)  # re-warm the page cache (others may drop it)
                with AdaptiveThreadPoolExecutor(width, policy=None) as pool:
                    contenders = {
                        "local-default": lambda root, **kw: scan(root, **kw),
                        "local-threads": lambda root, **kw: scan(root, pool, **kw),
                        "local-processes": lambda root, **kw: scan(root, procs, **kw),
                        "dask": lambda root, **kw: scan_on_dask(
                            root, client, batch_seconds=batch_seconds, **kw),
                    }
                    for name, fn in contenders.items():
                        res = _run_scan(fn, root, args.digest, profile)
                        if r >= 0:
                            rows.setdefault(name, []).append(res)
                if policy is not None:
                    if not _wait_workers(a_cluster, 1, 30.0):  # start from one worker
                        raise RuntimeError("the adaptive cluster did not return to 1 worker")
                    trace_path = traces_dir / (f"dask-adaptive-{r}.jsonl" if r >= 0
                                               else "dask-adaptive-warmup.jsonl")
                    adaptive = PolicyAdaptive(
                        a_cluster, policy=policy.with_params(), minimum=1,
                        maximum=args.workers, interval=args.interval, record=trace_path)
                    run_ = _run_scan(lambda root, **kw: scan_on_dask(
                        root, a_client, batch_seconds=batch_seconds,
                        max_in_flight=max(8, 4 * width), **kw), root, args.digest, profile)
                    adaptive.stop()
                    a_cluster.scale(1)  # the next run starts from one worker again
                    tr = adaptive.trace()
                    run_["trace"] = str(trace_path)
                    run_["scale_events"] = len(tr.scale_events()) if tr else 0
                    run_["max_workers_seen"] = max((s["alive"] for s in tr.samples),
                                                   default=1) if tr else 1
                    if r >= 0:
                        rows.setdefault("dask-adaptive", []).append(run_)
        finally:
            procs.shutdown()
            client.close()
            cluster.close()
            if policy is not None:
                a_client.close()
                a_cluster.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    fingerprints = {run_["fingerprint"] for runs in rows.values() for run_ in runs}
    base = statistics.median(x["files_per_s"] for x in rows["local-default"])
    table = []
    for name, runs in rows.items():
        med = statistics.median(x["files_per_s"] for x in runs)
        table.append({"name": name, "label": labels[name], "runs": runs,
                      "median_files_per_s": med,
                      "median_elapsed": statistics.median(x["elapsed"] for x in runs),
                      "ratio_vs_local_default": med / base if base else float("nan")})
    out.update(corpus=info.to_dict(), repeat=repeat, cluster=cluster_kw,
               cluster_start_s=start_s, batch_seconds=batch_seconds, digest=args.digest,
               profile=profile.to_dict(),
               policy=policy.describe() if policy else None, rows=table,
               digests_match=len(fingerprints) == 1, loadavg_after=os.getloadavg())
    out["corpus"]["root"] = None if tmp else out["corpus"]["root"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"corpus: {info.files} files, {info.bytes / 2**20:.0f} MiB (mix {args.size_mix}); "
          f"profile {profile.name}; {repeat} interleaved repetition(s); "
          f"cluster start {start_s:.2f} s; "
          f"load {out['loadavg_before'][0]:.1f} -> {out['loadavg_after'][0]:.1f}")
    print(f"{'setup':60s} {'files/s':>9s} {'s':>7s} {'vs default':>10s}")
    for row in table:
        print(f"{row['label']:60s} {row['median_files_per_s']:9.0f} "
              f"{row['median_elapsed']:7.3f} {row['ratio_vs_local_default']:10.2f}")
    print(f"digests identical across all runs: {out['digests_match']}")
    print(f"saved {args.output}")
    return 0 if out["digests_match"] else 1
