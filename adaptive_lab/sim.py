"""Replay and simulation: the public entry points, and live recording of workloads.

* :func:`~adaptive_lab.replay.replay` (open loop) and
  :func:`~adaptive_lab.replay.simulate` (closed loop, through the real controller),
* :class:`~adaptive_lab.model.WorkloadModel` (fitted from a trace),
* :func:`~adaptive_lab.sweep.sweep` (parameter grids, Pareto front),
* :func:`record_live`: run a small real workload on a live
  :class:`~adaptive_lab.pool.AdaptiveThreadPoolExecutor` and return its trace. Used
  by ``adaptive-lab validate-sim`` and ``scripts/record_data.py`` (``data/*.jsonl``).

Live workloads (real threads, real files, real ``time.sleep``): each task reads one
file of a small corpus (made once in a directory, then warm in the page cache) in
64 KiB chunks and hashes it with sha256, after sleeping ``latency`` seconds if the
profile says so. A submitting thread keeps at most ``window`` tasks queued or
running (backpressure, as the scanner does), so the queue a policy sees is real.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Segment, WorkloadModel
from .policies.base import Policy
from .replay import SimulatedMetrics, SimulatedPool, replay, simulate
from .sweep import SweepResult, sweep
from .trace import Trace

__all__ = ["PROFILES", "LiveProfile", "Segment", "SimulatedMetrics", "SimulatedPool",
           "SweepResult", "WorkloadModel", "make_files", "record_live", "record_scan", "replay",
           "simulate", "sweep"]


@dataclass(frozen=True)
class LiveProfile:
    """A synthetic live workload: phases of (tasks fraction, sleep seconds, file size).

    ``phases`` is a tuple of ``(fraction_of_tasks, latency_s, file_kib, name)``; a
    ``phase`` event is recorded at each change. ``mix`` > 0 makes each task pick the
    second phase's shape with that probability instead (a mixed workload, one phase).
    """

    name: str
    phases: tuple[tuple[float, float, int, str], ...]
    mix: float = 0.0
    description: str = ""


PROFILES: dict[str, LiveProfile] = {
    "local": LiveProfile("local", ((1.0, 0.0, 64, "read+sha256 64 KiB"),),
                         description="warm page cache: read + sha256 of 64 KiB files"),
    "latency": LiveProfile("latency", ((1.0, 0.005, 4, "sleep 5 ms + 4 KiB"),),
                           description="latency-bound: sleep 5 ms, then read + hash 4 KiB"),
    "step": LiveProfile("step", ((0.5, 0.002, 4, "latency 2 ms"),
                                 (0.5, 0.010, 4, "latency 10 ms")),
                        description="latency steps from 2 ms to 10 ms half way through"),
    "mixed": LiveProfile("mixed", ((1.0, 0.0, 64, "cpu"), (0.0, 0.005, 4, "latency")),
                         mix=0.5,
                         description="each task at random: read+sha256 64 KiB, or sleep 5 ms "
                         "+ 4 KiB"),
}


def profile(name: str) -> LiveProfile:
    """The live profile called ``name``; ValueError lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {name!r}") from None


def make_files(directory: str | os.PathLike, sizes_kib: tuple[int, ...] = (4, 64),
               count: int = 64, seed: int = 0) -> dict[int, list[Path]]:
    """Create (once) ``count`` files of each size in ``directory``; returns paths by size."""
    rng = random.Random(seed)
    root = Path(directory)
    out: dict[int, list[Path]] = {}
    for kib in sizes_kib:
        d = root / f"{kib}k"
        d.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(count):
            p = d / f"f{i:04d}.bin"
            if not p.exists() or p.stat().st_size != kib * 1024:
                p.write_bytes(rng.randbytes(kib * 1024))
            paths.append(p)
        out[kib] = paths
    return out


def _task(path: Path, latency: float) -> str:
    if latency > 0:
        time.sleep(latency)
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 16):
            h.update(chunk)
    return h.hexdigest()


def record_live(prof: str | LiveProfile, policy: Policy, *, tasks: int = 20_000,
                corpus: str | os.PathLike | None = None, min_workers: int = 2,
                max_workers: int = 64, initial_workers: int | None = None,
                interval: float = 1.0, sample_period: float = 0.25, window: int = 48,
                seed: int = 0, path: str | os.PathLike | None = None,
                on_progress: Callable[[int], object] | None = None) -> Trace:
    """Run ``tasks`` tasks of a live profile under ``policy`` and return the trace.

    Parameters
    ----------
    prof
        A :data:`PROFILES` name or a :class:`LiveProfile`.
    policy
        The scaling policy (a fresh copy is used).
    corpus
        Directory for the files (default: a temp directory, reused between runs).
    window
        Most tasks queued or running at once (the submitter's backpressure).
    path
        Also write the trace there as it is recorded.
    """
    from .pool import AdaptiveThreadPoolExecutor

    p = profile(prof) if isinstance(prof, str) else prof
    if tasks < 1:
        raise ValueError(f"tasks must be >= 1, got {tasks}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    corpus = Path(corpus) if corpus is not None else Path(
        os.environ.get("TMPDIR", "/tmp")) / "adaptive-lab-sim-corpus"
    files = make_files(corpus, tuple(sorted({ph[2] for ph in p.phases})))
    for paths in files.values():  # warm the page cache
        for f in paths:
            f.read_bytes()
    rng = random.Random(seed)
    plan: list[tuple[int, float, int, str]] = []  # (first task index, latency, kib, name)
    start = 0
    for frac, lat, kib, name in p.phases:
        plan.append((start, lat, kib, name))
        start += round(frac * tasks)
    from .trace import Recorder

    rec = Recorder(path)
    workload = {"profile": p.name, "description": p.description, "tasks": tasks,
                "window": window, "phases": [list(ph) for ph in p.phases], "mix": p.mix,
                "driver": "adaptive_lab.sim.record_live", "seed": seed}
    slots = threading.BoundedSemaphore(window)
    pool = AdaptiveThreadPoolExecutor(
        max_workers, min_workers=min_workers, policy=policy.with_params(),
        interval=interval, sample_period=sample_period,
        initial_workers=initial_workers or min_workers, record=rec, workload=workload)
    ctl = pool.controller
    assert ctl is not None

    def release(_f: object) -> None:
        slots.release()

    try:
        phase_i = -1
        for i in range(tasks):
            while phase_i + 1 < len(plan) and plan[phase_i + 1][0] <= i:
                phase_i += 1
                ctl.phase(plan[phase_i][3], latency_s=plan[phase_i][1],
                          file_kib=plan[phase_i][2])
            _, lat, kib, _ = plan[phase_i]
            if p.mix > 0 and len(p.phases) > 1 and rng.random() < p.mix:
                _, lat, kib, _ = p.phases[1][0], p.phases[1][1], p.phases[1][2], ""
            slots.acquire()
            f = pool.submit(_task, files[kib][i % len(files[kib])], lat)
            f.add_done_callback(release)
            if on_progress is not None and not i % 1000:
                on_progress(i)
        for _ in range(window):  # wait for the tail
            slots.acquire()
    finally:
        pool.shutdown(wait=True)  # stops the controller, takes a last sample, closes
        rec.close()
    return rec.trace()


def record_scan(phases: list[tuple[Any, int]], policy: Policy, *,
                corpus: str | os.PathLike, files: int = 2000, size_mix: str = "B",
                min_workers: int = 2, max_workers: int = 24,
                initial_workers: int | None = None, interval: float = 0.5,
                sample_period: float = 0.1, path: str | os.PathLike | None = None,
                digest: str = "sha256") -> Trace:
    """Record a real scan under ``policy``: the scanner over a warm corpus, in phases.

    Parameters
    ----------
    phases
        ``[(profile, passes), ...]``: each phase scans the corpus ``passes`` times with
        a :mod:`~adaptive_lab.workloads` profile (a name or a ``Profile``); a ``phase``
        event marks each start. A fixed amount of work, so makespans compare.
    corpus
        Directory for :func:`~adaptive_lab.workloads.make_corpus` (made once; a first
        untimed pass warms the page cache).
    files, size_mix
        Corpus size and size mix ("A" log-normal, "B" 4 KiB).
    """
    from .pool import AdaptiveThreadPoolExecutor
    from .scanner import scan
    from .trace import Recorder
    from .workloads import Profile, make_corpus, profile_by_name

    if not phases:
        raise ValueError("phases must not be empty")
    profs = []
    for prof, passes in phases:
        pr = profile_by_name(prof) if isinstance(prof, str) else prof
        if not isinstance(pr, Profile):
            raise ValueError(f"phases: profile must be a name or Profile, got {prof!r}")
        if not isinstance(passes, int) or passes < 1:
            raise ValueError(f"phases: passes must be an int >= 1, got {passes!r}")
        profs.append((pr, passes))
    info = make_corpus(corpus, files=files, dirs=max(1, min(100, files // 50)),
                       size_mix=size_mix)
    scan(info.root, digest=digest)  # warm the page cache (own executor, not recorded)
    rec = Recorder(path)
    workload = {"driver": "adaptive_lab.sim.record_scan", "corpus": info.to_dict(),
                "digest": digest,
                "phases": [{"profile": pr.to_dict(), "passes": n} for pr, n in profs]}
    pool = AdaptiveThreadPoolExecutor(
        max_workers, min_workers=min_workers, policy=policy.with_params(),
        interval=interval, sample_period=sample_period,
        initial_workers=initial_workers or min_workers, record=rec, workload=workload,
        thread_name_prefix="adaptive-lab-record")
    ctl = pool.controller
    assert ctl is not None
    try:
        for pr, passes in profs:
            ctl.phase(pr.name, profile=pr.to_dict(), passes=passes)
            for _ in range(passes):
                scan(info.root, pool, digest=digest, profile=pr)
    finally:
        pool.shutdown(wait=True)  # stops the controller, takes a last sample, closes
        rec.close()
    return rec.trace()


def closed_form_makespan(model: WorkloadModel, workers: int) -> float:
    """Seconds a fixed pool of ``workers`` needs for the model's tasks (backlogged)."""
    total = 0.0
    for i, s in enumerate(model.segments):
        if s.tasks <= 0:
            continue
        x = model.throughput(min(workers, model.window), i)
        if s.arrival_rate is not None:
            x = min(x, s.arrival_rate)
        total += s.tasks / x if x > 0 else math.inf
    return total


def describe_model(model: WorkloadModel) -> list[dict[str, Any]]:
    """One row per segment: the fitted numbers, for printing."""
    rows = []
    for s in model.segments:
        rows.append({"t0": round(s.t0, 2), "t1": round(s.t1, 2), "tasks": s.tasks,
                     "wait_ms": round(s.wait_s * 1e3, 3), "cpu_us": round(s.cpu_s * 1e6, 1),
                     "cpu_slots": round(s.cpu_slots, 2), "efficiency": round(s.efficiency, 3),
                     "capacity_per_s": round(s.capacity, 1),
                     "arrivals": "backlog" if s.arrival_rate is None else
                     round(s.arrival_rate, 1), "fit_rel_rms": round(s.fit_error, 3)})
    return rows
