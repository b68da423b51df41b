"""Recording real scans for traces and fidelity checks: :func:`record_scan`.

The scanner over a warm generated corpus, in phases, on an
:class:`~adaptive_lab.AdaptiveThreadPoolExecutor` recording a trace; used by
``adaptive-lab validate-sim`` and ``scripts/record_data.py`` (the traces in ``data/``).
Kept apart from :mod:`adaptive_lab.sim`, which only simulates.
"""

from __future__ import annotations

import os
from typing import Any

from adaptive_lab.policies.base import Policy
from adaptive_lab.trace.format import Trace

__all__ = ["record_scan"]


def record_scan(phases: list[tuple[Any, int]], policy: Policy, *,
                corpus: str | os.PathLike, files: int = 2000, size_mix: str = "B",
                min_workers: int = 2, max_workers: int = 24,
                initial_workers: int | None = None, interval: float = 0.5,
                sample_period: float = 0.1, path: str | os.PathLike | None = None,
                digest: str = "sha256", batch_seconds: float | None = None,
                batch_files: int | None = None) -> Trace:
    """Record a real scan under ``policy``: the scanner over a warm corpus, in phases.

    Parameters
    ----------
    phases
        ``[(profile, passes), ...]``: each phase scans the corpus ``passes`` times with
        a scanner profile (a name or a :class:`~adaptive_lab.Profile`); a ``phase``
        event marks each start. A fixed amount of work, so makespans compare.
    corpus
        Directory for :func:`~adaptive_lab.make_corpus` (made once; a first
        untimed pass warms the page cache).
    files, size_mix
        Corpus size and size mix ("A" log-normal, "B" 4 KiB).
    batch_seconds
        The scanner's batch target (default its own, 1.5 ms). A tiny value (1e-9)
        makes one file per task, so runs count the same tasks.
    batch_files
        Instead of the scanner, tasks of exactly this many files (the last of a pass
        may be shorter): the same walk, read, hash and match
        (:func:`~adaptive_lab.scanner.read.scan_batch`) and the scanner's backpressure, but a
        task is the same unit of work in every run. The scanner sizes its batches from
        measured batch times, which include waiting for the GIL (and being
        preempted), so its task count depends on the pool size and the machine's
        state, and varies between runs of the same policy.
    """
    from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
    from adaptive_lab.scanner.core import scan
    from adaptive_lab.scanner.corpus import make_corpus
    from adaptive_lab.scanner.profiles import Profile, profile_by_name
    from adaptive_lab.trace.recorder import Recorder

    if not phases:
        raise ValueError("phases must not be empty")
    if batch_files is not None and (isinstance(batch_files, bool) or
                                    not isinstance(batch_files, int) or batch_files < 1):
        raise ValueError(f"batch_files must be an int >= 1 or None, got {batch_files!r}")
    if batch_files is not None and batch_seconds is not None:
        raise ValueError("batch_files and batch_seconds exclude each other")
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
    extra: dict[str, Any] = {} if batch_seconds is None else {"batch_seconds": batch_seconds}
    if batch_files is not None:
        extra = {"batch_files": batch_files}
    workload = {"driver": "adaptive_lab.scanner.record.record_scan", "corpus": info.to_dict(),
                "digest": digest, **extra,
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
                if batch_files is None:
                    scan(info.root, pool, digest=digest, profile=pr, **extra)
                else:
                    _scan_fixed_batches(info.root, pool, batch_files, digest, pr,
                                        2 * max_workers + 4)
    finally:
        pool.shutdown(wait=True)  # stops the controller, takes a last sample, closes
        rec.close()
    return rec.trace()


def _scan_fixed_batches(root: str, pool: Any, batch_files: int, digest: str,
                        profile: Any, bound: int) -> int:
    """One pass of the scanner's pipeline with tasks of ``batch_files`` files: walk in
    this thread, at most ``bound`` tasks submitted and not collected; returns files ok."""
    import itertools
    import queue
    import time

    from adaptive_lab.scanner.read import ScanOptions, check_digest, scan_batch
    from adaptive_lab.scanner.walk import FileResult, walk

    opts = ScanOptions(digest=check_digest(digest), profile=profile,
                       started=time.monotonic())
    done: queue.SimpleQueue = queue.SimpleQueue()
    # regular files only (the walk reports other names as results)
    items = (e for e in walk(root) if not isinstance(e, FileResult))
    pending, ok, exhausted = 0, 0, False
    while True:
        while not exhausted and pending < bound:
            batch = list(itertools.islice(items, batch_files))
            if not batch:
                exhausted = True
                break
            pool.submit(scan_batch, batch, opts, None).add_done_callback(done.put)
            pending += 1
        if not pending:
            return ok
        results, _, _ = done.get().result()
        pending -= 1
        ok += sum(1 for r in results if r.status == "ok")
