"""Scan a directory tree on any ``concurrent.futures.Executor``: read, hash, match.

Design (see docs/scanner.md):

* The walk (:mod:`adaptive_lab.scanner.walk`) runs in the calling thread and never opens
  anything but directories, nor stats files (the readers measure sizes; a ``stat``
  here is one more GIL hand-off per file). Regular files are grouped into *batches*
  worth about ``batch_seconds`` of work, estimated online from EWMAs of the measured
  seconds per cost unit (one file + ``size / 32 KiB``) and cost units per file of
  completed batches; the size follows the estimate only when it moves by over 3x, so
  a policy resizing the pool does not resize the tasks it measures. One file per task
  would spend more time in the pool than in the file (12-25 us per task).
* At most ``max_in_flight`` batches are submitted and not yet collected
  (backpressure; default ``2 * workers + 4``, where ``workers`` is a resizable pool's
  *current* size, read again as it changes, else ``max_workers``), so memory stays
  flat on any tree, results lag the work by at most about one batch per worker, and
  the executor's queue depth is real demand a scaling policy can act on.
* Batches run :func:`scan_batch`, a module-level (picklable) function, so a
  ``ProcessPoolExecutor`` works too. Files are read in chunks of at least 64 KiB
  (hashlib releases the GIL only for large buffers), opened with ``O_NONBLOCK`` and
  checked with ``fstat`` so a file replaced by a FIFO can never block a worker, and
  re-checked after reading so a file that changed is reported, not silently hashed.
* Results stream back as :class:`FileResult` records; nothing holds all of them.
* With ``cache=PATH`` (:mod:`adaptive_lab.scanner.cache`) this thread looks files up
  in a rescan cache first (a ``stat`` per file, a query per directory): unchanged
  ones are results at once (``cached=True``), the rest are read and stored.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Executor, Future
from typing import Any

from adaptive_lab.scanner._cache_run import CacheRun
from adaptive_lab.scanner.cache import ScanCache, open_cache, record_cache_event
from adaptive_lab.scanner.profiles import Profile, profile_by_name
from adaptive_lab.scanner.read import (
    MIN_CHUNK,
    CancelToken,
    ScanOptions,
    check_digest,
    scan_batch,
    scan_batch_stats,
)
from adaptive_lab.scanner.signatures import load_signatures
from adaptive_lab.scanner.summary import ScanSummary
from adaptive_lab.scanner.walk import Entry, FileResult, failed, walk

__all__ = ["CancelToken", "FileResult", "ScanOptions", "ScanSummary", "Scanner",
           "scan", "scan_batch"]

_UNIT_BYTES = 32 * 1024  # bytes of reading+hashing that cost about one file open
_MAX_BATCH_FILES = 1024
_PROBES = 4
#: Batches are re-sized only when the cost estimate moved by more than this factor: a
#: task's run time also grows with the pool's contention (2 threads taking turns on the
#: GIL double it), and batches that shrank as the pool grew would make a policy's
#: tasks/s favour more threads (it compares tasks/s across sizes). Workload changes
#: (1 -> 20 ms storage, cold -> warm cache) move it far more.
_RESIZE_FACTOR = 3.0
_THREAD_BATCH_S = 0.0015  # default batch_seconds on threads
_PROCESS_BATCH_S = 0.01  # and on worker processes (a pipe round trip per batch)


def _executor_width(executor: Executor | None) -> int | None:
    """Worker count to size the in-flight bound on: a resizable pool's current size
    (read again as it changes), else ``max_workers``."""
    for attr in ("size", "max_workers", "_max_workers"):
        value = getattr(executor, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _in_flight_bound(executor: Executor | None) -> int:
    """Default batches in flight: ``2 * workers + 4`` (4..1024). It follows a resizable
    pool's current size, so results lag the work by about one batch per worker at most
    and the queue depth a policy sees is this scan's real backlog."""
    return max(4, min(1024, 2 * (_executor_width(executor) or 8) + 4))


def _check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


class Scanner:
    """A configured scan of one tree; iterate :meth:`results` or call :meth:`run`.

    Parameters
    ----------
    root
        Directory (or single file) to scan: str, bytes or path-like.
    executor
        Any ``concurrent.futures.Executor``. ``None`` creates an
        :class:`~adaptive_lab.pool.AdaptiveThreadPoolExecutor` for this scan and shuts
        it down at the end.
    digest
        ``hashlib`` algorithm name (``"sha256"`` default, ``"blake2b"``, ...) or None to
        only read.
    signatures
        ``None``, a signature file path, ``"builtin"``, a list of ``(name, bytes)``, or a
        :class:`~adaptive_lab.signatures.SignatureSet`.
    profile
        A :class:`~adaptive_lab.workloads.Profile` or profile name applied in the read
        path (``"local"``, ``"latency"``, ``"cpu"``, ``"mixed"``, ``"step"``).
    follow_symlinks
        Follow symlinks that stay inside ``root`` (loops are detected).
    max_file_size
        Files larger than this are skipped with reason ``"over max_file_size"``.
    chunk_size
        Read size for large files, at least 64 KiB.
    cancel_event
        A ``threading.Event``; setting it stops the scan promptly.
    max_in_flight
        Batches submitted but not collected (default ``2 * workers + 4``, 4..1024,
        following a resizable pool's current size).
    batch_seconds
        Target work per batch in seconds. Default: 1.5 ms on threads (short tasks
        keep the queue a fine-grained signal for a policy), 10 ms on a
        ``ProcessPoolExecutor`` (each batch costs a round trip through a pipe; 10 ms
        batches scanned a warm corpus 20 % faster than 1.5 ms ones here).
    cache
        A rescan cache (a path, or a :class:`~adaptive_lab.scanner.cache.ScanCache` for
        its settings): unchanged files are not read; ValueError if it is not a cache.
    cache_trust
        With a path for ``cache``: ``"ignore-inode"`` and/or ``"ignore-ctime"``.
    """

    def __init__(self, root: str | bytes | os.PathLike, executor: Executor | None = None, *,
                 digest: str | None = "sha256", signatures: Any = None,
                 profile: Profile | str | None = None, follow_symlinks: bool = False,
                 max_file_size: int | None = None, chunk_size: int = MIN_CHUNK,
                 cancel_event: threading.Event | None = None,
                 max_in_flight: int | None = None, batch_seconds: float | None = None,
                 cache: ScanCache | str | bytes | os.PathLike | None = None,
                 cache_trust: str | list[str] | None = None) -> None:
        if executor is not None and not isinstance(executor, Executor):
            raise ValueError(f"executor must be a concurrent.futures.Executor, "
                             f"got {type(executor).__name__}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) \
                or chunk_size < MIN_CHUNK:
            raise ValueError(f"chunk_size must be an int >= {MIN_CHUNK}, got {chunk_size!r}")
        if max_file_size is not None and (isinstance(max_file_size, bool) or
                                          not isinstance(max_file_size, int)
                                          or max_file_size < 0):
            raise ValueError(f"max_file_size must be an int >= 0 or None, "
                             f"got {max_file_size!r}")
        if max_in_flight is not None and (not isinstance(max_in_flight, int)
                                          or max_in_flight < 1):
            raise ValueError(f"max_in_flight must be an int >= 1, got {max_in_flight!r}")
        _check_positive("batch_seconds", batch_seconds, allow_none=True)
        if isinstance(profile, str):
            profile = profile_by_name(profile)
        if profile is not None and not isinstance(profile, Profile):
            raise ValueError(f"profile must be a Profile or a name, got {profile!r}")
        self.root = root
        self.executor = executor
        self.follow_symlinks = bool(follow_symlinks)
        self.max_file_size = max_file_size
        hooks = profile if profile is not None and not profile.is_noop else None
        self.options = ScanOptions(digest=check_digest(digest), chunk_size=chunk_size,
                                   signatures=load_signatures(signatures), profile=hooks,
                                   follow_symlinks=self.follow_symlinks)
        self.token = CancelToken(cancel_event)
        self.max_in_flight = max_in_flight
        if batch_seconds is None:
            batch_seconds = _PROCESS_BATCH_S if _is_process_pool(executor) else _THREAD_BATCH_S
        self.batch_seconds = float(batch_seconds)
        self.summary = ScanSummary(root=os.fsdecode(os.fsencode(root)),
                                   digest=self.options.digest,
                                   profile=profile.name if profile else "local")
        self._sec_per_unit: float | None = None
        self._batch_cost: float | None = None  # the estimate batches are sized on
        self._units_per_file = 1.0  # EWMA over results: cost of a file of unknown size
        self._started = False
        self.cache = open_cache(cache, cache_trust)

    def cancel(self) -> None:
        """Ask the scan to stop; safe from any thread (or a signal handler)."""
        self.token.set()

    @property
    def cancelled(self) -> bool:
        return self.token.is_set()

    def run(self, on_result: Callable[[FileResult], object] | None = None) -> ScanSummary:
        """Scan to the end (or until cancelled), calling ``on_result`` per file."""
        for result in self.results():
            if on_result is not None:
                on_result(result)
        return self.summary

    # -- the pipeline ---------------------------------------------------------------
    def results(self) -> Iterator[FileResult]:
        """Stream one :class:`FileResult` per file; updates :attr:`summary` as it goes.

        Closing the iterator early (``break``) or an exception in the consumer
        (KeyboardInterrupt) cancels the outstanding work and, if the scanner created
        its executor, shuts it down before returning.
        """
        if self._started:
            raise RuntimeError("a Scanner runs once; create a new one")
        self._started = True
        summary = self.summary
        own = self.executor is None
        # with a cache, its own pool starts at the first file to read (maybe never)
        executor = self.executor
        if executor is None and self.cache is None:
            executor = _default_executor()
        summary.executor = type(executor).__name__ if executor is not None else "none"
        started = time.monotonic()
        options = ScanOptions(**{**self.options.__dict__, "started": started})
        token = self.token if not _is_process_pool(executor) else None
        done: queue.SimpleQueue[Future] = queue.SimpleQueue()
        pending: dict[Future, list[Entry]] = {}
        # no stat per file in this thread (see walk's ``sizes``): the readers measure
        items = walk(self.root, follow_symlinks=self.follow_symlinks,
                     max_file_size=self.max_file_size, sizes=False)
        run: CacheRun | None = None
        submitted: dict[Future, int] = {}  # cache clock at submission (racy entries)
        if self.cache is not None:
            run = self.cache.begin(self.root, digest=options.digest,
                                   signatures=options.signatures,
                                   follow_symlinks=self.follow_symlinks, summary=summary)
            items = run.filter(items)
        t0 = time.perf_counter()
        carry: list[Entry] = []
        exhausted = False
        clean_exit = False
        cancelled_pending = False
        try:
            while True:
                bound = self.max_in_flight or _in_flight_bound(executor)
                summary.max_in_flight = max(summary.max_in_flight, bound)
                # until a batch has been measured, probe with a few one-file batches
                while not exhausted and not self.token.is_set() and len(pending) < (
                        bound if self._sec_per_unit is not None else min(bound, _PROBES)):
                    batch, direct, exhausted = self._next_batch(items, carry)
                    for result in direct:
                        summary.add(result)
                        yield result
                    if batch:
                        if executor is None:
                            executor = _default_executor()
                            summary.executor = type(executor).__name__
                            token = self.token if not _is_process_pool(executor) else None
                        fut: Future[Any]
                        if run is not None:
                            at = run.now_ns()  # before any read: the racy reference
                            fut = executor.submit(scan_batch_stats, batch, options, token)
                            submitted[fut] = at
                        else:
                            fut = executor.submit(scan_batch, batch, options, token)
                        pending[fut] = batch
                        summary.batches += 1
                        fut.add_done_callback(done.put)
                if not pending:
                    break
                if self.token.is_set() and not cancelled_pending:
                    cancelled_pending = True  # once: nothing new is submitted after this
                    for f in pending:
                        f.cancel()
                try:
                    fut = done.get(timeout=0.05)
                except queue.Empty:
                    continue
                batch = pending.pop(fut)
                at, stats = submitted.pop(fut, 0), None
                try:
                    if run is not None:
                        results, elapsed, left, stats = fut.result()
                    else:
                        results, elapsed, left = fut.result()
                except CancelledError:
                    summary.not_scanned += len(batch)
                    continue
                except Exception as exc:  # e.g. a worker process died: error records
                    reason = f"task failed: {type(exc).__name__}"
                    results, elapsed, left = [failed(e[0], reason, e[1]) for e in batch], 0, 0
                summary.not_scanned += left
                if stats is not None and run is not None:
                    run.store(results, stats, at)
                if elapsed:
                    self._learn(results, elapsed)
                for result in results:
                    summary.add(result)
                    yield result
                summary.elapsed = time.perf_counter() - t0
            clean_exit = True
        finally:
            if not clean_exit or self.token.is_set():
                self.token.set()
                for f in pending:
                    f.cancel()
                # count what the walk had found but nobody will scan
                summary.not_scanned += sum(map(len, pending.values())) + len(carry)
            _close(items)
            if own and executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
            elif pending:
                _wait_quietly(pending)
            summary.cancelled = self.token.is_set()
            if run is not None:
                summary.cache = run.close(complete=clean_exit and not summary.cancelled)
                record_cache_event(executor, summary)
            summary.elapsed = time.perf_counter() - t0

    def _next_batch(self, items: Iterator[Any], carry: list[Entry]
                    ) -> tuple[list[Entry], list[FileResult], bool]:
        """Pull entries until the batch is worth ``batch_seconds`` of estimated work."""
        per_unit = self._batch_cost
        if per_unit is None:  # no estimate yet: one file per batch until one completes
            limit = 1
            budget = float("inf")
        else:
            limit = _MAX_BATCH_FILES
            budget = self.batch_seconds / per_unit  # in cost units
        batch: list[Entry] = []
        direct: list[FileResult] = []
        units = 0.0
        mean_units = self._units_per_file  # for files the walk did not stat
        if carry:
            batch.append(carry.pop())
            size = batch[0][1]
            units = 1.0 + size / _UNIT_BYTES if size >= 0 else mean_units
        deadline = time.perf_counter() + self.batch_seconds
        n = 0
        for item in items:
            n += 1
            if type(item) is FileResult:
                direct.append(item)
                if len(direct) >= 256:
                    return batch, direct, False
                continue
            size = item[1]
            cost = 1.0 + size / _UNIT_BYTES if size >= 0 else mean_units
            if batch and units + cost > budget:
                carry.append(item)
                return batch, direct, False
            batch.append(item)
            units += cost
            if len(batch) >= limit or units >= budget:
                return batch, direct, False
            if not n & 63 and time.perf_counter() > deadline:  # a slow walk: ship it
                return batch, direct, False
        return batch, direct, True

    def _learn(self, results: list[FileResult], elapsed: float) -> None:
        if not results:
            return
        units = len(results) + sum(r.size for r in results) / _UNIT_BYTES
        sample = elapsed / units
        per_file = units / len(results)
        old = self._sec_per_unit
        if old is None:
            self._sec_per_unit = sample
            self._units_per_file = per_file
        else:  # EWMAs; one outlier (a GIL stall, a page fault storm) moves it at most 4x
            self._units_per_file = 0.9 * self._units_per_file + 0.1 * per_file
            self._sec_per_unit = 0.8 * old + 0.2 * min(max(sample, old / 4), old * 4)
        est, cost = self._sec_per_unit, self._batch_cost
        if cost is None or not cost / _RESIZE_FACTOR <= est <= cost * _RESIZE_FACTOR:
            self._batch_cost = est
        self.summary.sec_per_unit = self._sec_per_unit


def _is_process_pool(executor: Executor | None) -> bool:
    from concurrent.futures import ProcessPoolExecutor

    return isinstance(executor, ProcessPoolExecutor)


def _default_executor() -> Executor:
    try:
        from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
    except ImportError:  # pragma: no cover - the pool ships with the package
        from concurrent.futures import ThreadPoolExecutor

        return ThreadPoolExecutor(thread_name_prefix="adaptive-lab-scan")
    # Adaptive by default, as the pool itself: the right size differs by two orders of
    # magnitude between warm local files (about 2) and 20 ms storage (about 300).
    return AdaptiveThreadPoolExecutor(thread_name_prefix="adaptive-lab-scan")


def _close(items: Iterator) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


def _wait_quietly(pending: dict[Future, list]) -> None:
    for f in list(pending):
        try:
            f.result()
        except BaseException:  # already counted as not scanned
            pass


def scan(root: str | bytes | os.PathLike, executor: Executor | None = None, *,
         on_result: Callable[[FileResult], object] | None = None, **options: Any
         ) -> ScanSummary:
    """Scan ``root`` and return a :class:`ScanSummary`; see :class:`Scanner` for options.

    ``on_result`` is called with each :class:`FileResult` as it arrives, in the calling
    thread. Setting ``cancel_event`` (a ``threading.Event``) stops the scan promptly;
    the summary then has ``cancelled=True`` and counts the files not scanned.
    """
    return Scanner(root, executor, **options).run(on_result)
