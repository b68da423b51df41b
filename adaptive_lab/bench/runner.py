"""Running the benchmark: one scan per (profile, configuration, round), interleaved.

The configurations and settings are in :mod:`adaptive_lab.bench.config`;
:func:`run_benchmark` writes the corpus (or reuses one), runs every configuration
``repeat`` times in a shuffled order per round, measures each run (throughput, task
times, CPU, RSS, the pool's size over time, scale events) and hands the runs to
:func:`adaptive_lab.bench.report.aggregate`.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_lab.bench.config import (
    SCHEMA,
    VERSION,
    BenchConfig,
    BenchProfile,
    BenchSettings,
    build_configs,
)
from adaptive_lab.bench.stats import (
    ResourceSampler,
    TaskTimer,
    TimedThreadPoolExecutor,
    direction_changes,
    resource_stats,
    task_stats,
    timed_pool_class,
    timeline,
)


def make_executor(config: BenchConfig, timer: TaskTimer, record: Path | None,
                  workload: dict | None = None) -> Executor:
    """Build the executor of ``config`` (our pool records to ``record``)."""
    if config.kind in ("baseline", "tpe_default"):
        return TimedThreadPoolExecutor(timer, config.workers if config.kind == "baseline" else None)
    from adaptive_lab.policies import THRESHOLD_DEFAULTS, ThresholdPolicy, make_policy

    cls = timed_pool_class()
    kw: dict[str, Any] = {"record": record, "workload": workload,
                          "thread_name_prefix": "bench-pool"}
    if config.kind == "fixed":
        ex = cls(max_workers=config.workers, policy=None, **kw)
    elif config.kind == "report":  # the threshold policy as the original report set it
        ex = cls(max_workers=THRESHOLD_DEFAULTS["max_workers"],
                 min_workers=THRESHOLD_DEFAULTS["min_workers"], policy=ThresholdPolicy(),
                 interval=float(THRESHOLD_DEFAULTS["interval"]), **kw)
    else:
        ex = cls(policy=make_policy(config.policy or ""), **kw)
    ex._bench_timer = timer
    return ex


def drop_caches() -> None:
    """``sync; echo 3 > /proc/sys/vm/drop_caches`` (root only; OSError otherwise)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def can_drop_caches() -> tuple[bool, str]:
    """Whether this process may drop the page cache, and why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "dropping the page cache needs root"
    if not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        return False, "/proc/sys/vm/drop_caches is not writable (container?)"
    return True, ""


# -- one run -----------------------------------------------------------------------
def scanner_profile(profile: BenchProfile, step_at: float) -> Any:
    """The scanner :class:`~adaptive_lab.Profile` a bench profile scans with."""
    from adaptive_lab.scanner.profiles import profile_by_name

    p = profile.params
    if profile.scanner_profile == "latency":
        return profile_by_name("latency", latency_ms=p["latency_ms"])
    if profile.scanner_profile == "step":
        return profile_by_name("step", latency_ms=p["latency_ms"],
                               step_latency_ms=p["latency_after_ms"],
                               step_after_files=None, step_after_s=step_at)
    return profile_by_name(profile.scanner_profile)


def _reference_run(kind: str, root: Path, digest: str, corpus_files: int) -> dict[str, Any]:
    from adaptive_lab.bench.references import plain_loop_scan, process_pool_scan, run_native_scan

    if kind == "plain-loop":
        r = plain_loop_scan(root, digest)
        files, secs = r["files"], r["seconds"]
        extra = {"command": f"plain_loop_scan(ROOT, {digest!r})"}
    elif kind == "scan-processes":
        files, secs, extra = process_pool_scan(root, digest)
    else:
        r = run_native_scan(root, digest)
        if r["returncode"] != 0:
            raise RuntimeError(f"native reference failed ({r['returncode']}): {r['command']}")
        files, secs = corpus_files, r["seconds"]
        extra = {"command": r["command"]}
    return {"files_done": files, "files_seen": files, "skipped": 0, "errors": 0,
            "not_scanned": 0, "unwalked": corpus_files - files, "elapsed_s": secs,
            "capped": False, "accounted": files == corpus_files,
            "files_per_s": files / secs if secs > 0 else 0.0,
            "ms_per_file": 1000 * secs / files if files else None, **extra}


def run_once(profile: BenchProfile, config: BenchConfig, root: Path, corpus_files: int,
             settings: BenchSettings, trace_path: Path | None,
             scan_fn: Callable[..., Any] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """One scan of ``root`` under ``config``; returns the run record and the
    completion times (s since start) of every file, for convergence analysis."""
    if profile.cold:
        drop_caches()
    if config.kind == "reference":
        return _reference_run(config.name, root, settings.digest, corpus_files), np.empty(0)
    if scan_fn is None:
        from adaptive_lab.scanner.core import scan

        scan_fn = scan
    step = profile.scanner_profile == "step"
    cap = settings.step_time_cap if step else settings.time_cap
    if step and config.kind in ("fixed", "baseline", "tpe_default"):
        cap = settings.step_fixed_cap
    timer = TaskTimer()
    workload = {"bench_profile": profile.name, "config": config.name}
    ex = make_executor(config, timer, trace_path, workload)
    perf = time.perf_counter
    done_t: list[float] = []  # completion time of every ok file
    other: list[int] = [0]  # skipped and error results

    def on_result(r: Any) -> None:
        if r.status == "ok":
            done_t.append(perf())
        else:
            other[0] += 1

    cancel = threading.Event()
    cap_timer = threading.Timer(cap, cancel.set)
    sampler = ResourceSampler(ex).start()
    t0 = perf()
    cap_timer.start()
    try:
        summary = scan_fn(root, ex, profile=scanner_profile(profile, settings.step_at),
                          digest=settings.digest, cancel_event=cancel,
                          on_result=on_result)
    finally:
        cap_timer.cancel()
        wall = perf() - t0
        rows = sampler.stop()  # before shutdown: the last sample sees the live workers
        ex.shutdown(wait=True)
    times = np.asarray(done_t, dtype=np.float64) - t0
    seen = summary.files_seen
    capped = bool(summary.cancelled)
    unwalked = corpus_files - seen
    if capped:  # files/s over the capped window; files finishing after it are not counted
        elapsed = cap
        done = int(np.count_nonzero(times <= cap))
    else:
        elapsed = summary.elapsed or wall
        done = summary.files
    rec: dict[str, Any] = {
        "files_done": summary.files, "files_seen": seen, "skipped": summary.skipped,
        "errors": summary.errors, "not_scanned": summary.not_scanned,
        "unwalked": unwalked, "capped": capped, "cap_s": cap,
        "accounted": unwalked >= 0 and (capped or unwalked == 0)
        and len(done_t) == summary.files and other[0] == summary.skipped + summary.errors,
        "elapsed_s": elapsed, "wall_s": wall,
        "files_per_s": done / elapsed if elapsed > 0 else 0.0,
        "ms_per_file": 1000 * elapsed / done if done else None,
        "batches": summary.batches, "bytes": summary.bytes,
    }
    if capped:
        rows = rows[rows[:, 0] <= cap + sampler.period]
    rec.update(task_stats(timer.times))
    rec.update(resource_stats(rows))
    rec["timeline"] = timeline(rows, times)
    if config.uses_our_pool:
        rec.update(trace_stats(ex, elapsed))
        rec["trace"] = str(trace_path) if trace_path is not None else None
    else:
        rec.update(scale_events=0, direction_changes_per_min=0.0, trace=None)
    return rec, times


def trace_stats(executor: Any, elapsed: float) -> dict[str, Any]:
    """Scale events and direction changes per minute from our pool's recorded trace."""
    trace = executor.trace()
    events = [e for e in trace.scale_events() if e["t"] <= elapsed] if trace is not None else []
    sizes = [events[0]["from"]] + [e["to"] for e in events] if events else []
    minutes = elapsed / 60.0
    return {"scale_events": len(events),
            "direction_changes_per_min": direction_changes(sizes) / minutes
            if minutes > 0 else 0.0}


# -- the whole benchmark -----------------------------------------------------------
def _step_tree(corpus: Path, copies: int) -> tuple[Path, int]:
    """A tree of ``copies`` hard links to every corpus file (no data copied), next to
    the corpus, so the step profile has enough files to run well past the step."""
    root = Path(tempfile.mkdtemp(prefix=".adaptive-lab-step-", dir=corpus.parent)) / "t"
    n = 0
    try:
        for k in range(copies):
            for dirpath, _dirs, names in os.walk(corpus):
                sub = root / f"c{k}" / os.path.relpath(dirpath, corpus)
                sub.mkdir(parents=True, exist_ok=True)
                for name in names:
                    os.link(os.path.join(dirpath, name), sub / name)
                    n += 1
    except OSError as exc:
        shutil.rmtree(root.parent, ignore_errors=True)
        raise ValueError(f"corpus: the step profile hard-links the corpus files next to "
                         f"it and could not ({exc}); use a corpus on a writable disk") from None
    return root, n


def step_copies(settings: BenchSettings, corpus_files: int) -> int:
    """Copies of the corpus the step profile needs so that even the fastest pool
    (about 14 k files/s before the step, 10 k after, on 2 cores) has files left at
    the time cap."""
    need = 14_000 * settings.step_at + 10_000 * (settings.step_time_cap - settings.step_at)
    return max(2, math.ceil(need / max(1, corpus_files)))


def _manifest_params(corpus: Path) -> dict[str, Any]:
    """The generator's parameters from a reused corpus's manifest, if it has one."""
    import json

    from adaptive_lab.scanner.corpus import MANIFEST_NAME

    try:
        body = json.loads((corpus / MANIFEST_NAME).read_text())
        return {"bytes": body["bytes"], **body["params"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _failed_run(exc: BaseException) -> dict[str, Any]:
    return {"error": f"{type(exc).__name__}: {exc}", "files_done": 0, "files_seen": 0,
            "skipped": 0, "errors": 0, "not_scanned": 0, "unwalked": 0, "capped": False,
            "accounted": False, "elapsed_s": 0.0, "files_per_s": 0.0, "trace": None}


def _count_files(root: Path) -> int:
    return sum(len(names) for _d, _s, names in os.walk(root))


def _reference_configs() -> list[BenchConfig]:
    """Warm-local references: a plain Python loop, the native tools, and our scanner on
    worker processes instead of threads."""
    return [BenchConfig("plain-loop", "reference"), BenchConfig("native-xargs", "reference"),
            BenchConfig("scan-processes", "reference")]


def run_benchmark(settings: BenchSettings, progress: Callable[[str], object] | None = None,
                  scan_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run every (profile, configuration) ``settings.repeat`` times, interleaved, and
    return the results document (schema ``SCHEMA`` version ``VERSION``)."""
    from adaptive_lab.bench.report import aggregate
    from adaptive_lab.scanner.corpus import make_corpus
    from adaptive_lab.trace.format import host_info

    say = progress or (lambda _m: None)
    out_dir = Path(settings.output).resolve().parent
    trace_dir = out_dir / (Path(settings.output).stem + "_traces")
    trace_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="adaptive-lab-bench-"))
    started = time.time()
    cleanup = [work]
    try:
        if settings.corpus is not None and Path(settings.corpus).is_dir() and any(
                Path(settings.corpus).iterdir()):
            corpus = Path(settings.corpus)
            corpus_info: dict[str, Any] = {"root": str(corpus), "reused": True}
            corpus_info.update(_manifest_params(corpus))
        else:
            corpus = Path(settings.corpus) if settings.corpus else work / "corpus"
            say(f"writing a {settings.files_count}-file corpus to {corpus} ...")
            corpus_info = make_corpus(corpus, files=settings.files_count,
                                      seed=settings.seed).to_dict()
            corpus_info["reused"] = False
        corpus_files = _count_files(corpus)
        corpus_info["files"] = corpus_files
        roots = {p.name: (corpus, corpus_files) for p in settings.profiles}
        if any(p.scanner_profile == "step" for p in settings.profiles):
            copies = step_copies(settings, corpus_files)
            step_root, n = _step_tree(corpus, copies)
            cleanup.append(step_root.parent)
            for p in settings.profiles:
                if p.scanner_profile == "step":
                    roots[p.name] = (step_root, n)
        configs = build_configs(settings.baseline_workers, settings.fixed_sizes,
                                settings.policies)
        ok_cold, why_cold = can_drop_caches()
        plan: dict[str, list[BenchConfig]] = {}
        unavailable: dict[str, str] = {}
        for p in settings.profiles:
            if p.cold and not ok_cold:
                unavailable[p.name] = why_cold
                continue
            extra = _reference_configs() if (
                settings.references and p.scanner_profile == "local" and not p.cold) else []
            plan[p.name] = configs + extra
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        completions: dict[tuple[str, str], list[np.ndarray]] = {}
        rng = random.Random(settings.seed)
        total = sum(len(c) for c in plan.values()) * settings.repeat
        k = 0
        profiles = {p.name: p for p in settings.profiles}
        for rep in range(settings.repeat):
            for pname, pconfigs in plan.items():
                order = list(pconfigs)
                rng.shuffle(order)
                root, nfiles = roots[pname]
                for pos, cfg in enumerate(order):
                    k += 1
                    safe = cfg.name.replace(":", "-")
                    tpath = trace_dir / f"{pname}__{safe}__r{rep}.jsonl" \
                        if cfg.uses_our_pool else None
                    try:
                        rec, times = run_once(profiles[pname], cfg, root, nfiles, settings,
                                              tpath, scan_fn)
                    except Exception as exc:  # one broken run must not lose the others
                        rec, times = _failed_run(exc), np.empty(0)
                    rec.update(rep=rep, position=pos, cache=profiles[pname].cache)
                    if rec.get("trace"):
                        rec["trace"] = os.path.relpath(rec["trace"], out_dir)
                    runs.setdefault((pname, cfg.name), []).append(rec)
                    completions.setdefault((pname, cfg.name), []).append(times)
                    say(f"[{k}/{total}] r{rep} {pname:<13} {cfg.name:<24} "
                        f"{rec['files_per_s']:>9.0f} files/s"
                        + (" (capped)" if rec.get("capped") else "")
                        + (f" FAILED: {rec['error']}" if "error" in rec else ""))
        doc: dict[str, Any] = {
            "schema": SCHEMA, "version": VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": None, "host": host_info(), "command": list(sys.argv),
            "settings": _settings_dict(settings), "corpus": corpus_info,
            "shared_machine_note": "other processes may share this machine; compare "
                                   "configurations side by side, as ratios",
        }
        doc["profiles"] = aggregate(settings, profiles, plan, unavailable, runs,
                                    completions, roots)
        doc["duration_s"] = time.time() - started
        return doc
    finally:
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)


def _settings_dict(s: BenchSettings) -> dict[str, Any]:
    return {"profiles": [p.name for p in s.profiles], "policies": list(s.policies),
            "baseline_workers": s.baseline_workers, "files_count": s.files_count,
            "repeat": s.repeat, "fixed_sizes": list(s.fixed_sizes),
            "time_cap_s": s.time_cap, "step_time_cap_s": s.step_time_cap,
            "step_at_s": s.step_at, "seed": s.seed, "quick": s.quick, "digest": s.digest,
            "output": str(s.output), "corpus": str(s.corpus) if s.corpus else None}
