"""The scanner's read path: what the executor's workers run on a batch of files.

:func:`scan_batch` is module-level and picklable (process pools work); files are
opened with ``O_NONBLOCK`` (a file swapped for a FIFO after the walk cannot block a
worker), read in chunks of at least 64 KiB (hashlib releases the GIL only for large
buffers) into one reused buffer, and checked with ``fstat`` after reading (see
:func:`scan_batch` for what counts as a change). The walk that finds the files is
:mod:`adaptive_lab.scanner.walk`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adaptive_lab.scanner.walk import (
    SAFE_PATH,
    Entry,
    FileResult,
    error_reason,
    failed,
    open_path,
    skipped,
)

if TYPE_CHECKING:
    from adaptive_lab.scanner.profiles import Profile
    from adaptive_lab.scanner.signatures import SignatureSet

__all__ = ["MIN_CHUNK", "CancelToken", "ScanOptions", "check_digest", "scan_batch",
           "scan_batch_stats"]

MIN_CHUNK = 1 << 16
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


class CancelToken:
    """A cancel flag shared with worker threads; pickles as a never-set flag.

    Worker processes cannot see the caller's flag; they stop when their pending
    batches are cancelled instead.
    """

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event if event is not None else threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self) -> None:
        self.event.set()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.event = threading.Event()


@dataclass(frozen=True)
class ScanOptions:
    """What a worker needs to scan a batch (small and picklable)."""

    digest: str | None = "sha256"
    chunk_size: int = MIN_CHUNK
    signatures: SignatureSet | None = None
    profile: Profile | None = None
    follow_symlinks: bool = False
    started: float = 0.0  # time.monotonic() at scan start (for step profiles)


def _hasher(name: str | None) -> Callable[[], Any] | None:
    if name is None:
        return None
    ctor = getattr(hashlib, name, None)
    if name in hashlib.algorithms_guaranteed and callable(ctor):
        return ctor
    return lambda: hashlib.new(name)


def check_digest(name: str | None) -> str | None:
    """Validate a digest name (any fixed-length ``hashlib`` algorithm, or None)."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"digest must be a hashlib algorithm name, got {name!r}")
    try:
        h = hashlib.new(name)
    except (ValueError, TypeError):
        raise ValueError(f"digest: unknown hash algorithm {name!r}; available: "
                         + ", ".join(sorted(hashlib.algorithms_available))) from None
    if h.digest_size == 0 or name.startswith("shake"):
        raise ValueError(f"digest: {name!r} has no fixed length; use sha256 or blake2b")
    return name


def scan_batch(items: list[Entry], options: ScanOptions, token: CancelToken | None = None
               ) -> tuple[list[FileResult], float, int]:
    """Scan a batch of files; return (results, seconds spent, files left unscanned).

    Module-level and free of closures so process pools can pickle it. Stops between
    files when ``token`` is set; the files not reached are counted, not reported.

    A file is *changed during scan* (an ``error`` record) when the bytes read differ
    from its size after reading, or, for a file read in several chunks, when its size
    or mtime moved between the first chunk and the end. A file that is no longer a
    regular file is ``skipped``. Reads stop at the size seen after the first chunk, so
    a file that grows without end (or a device swapped in) cannot keep a worker busy.
    """
    t0 = time.perf_counter()
    new_hash, buf, view, flags = _batch_tools(options)
    out: list[FileResult] = []
    append = out.append
    for i, item in enumerate(items):
        if token is not None and token.is_set():
            return out, time.perf_counter() - t0, len(items) - i
        append(_scan_file(item, options, flags, new_hash, buf, view))
    return out, time.perf_counter() - t0, 0


def _batch_tools(options: ScanOptions) -> tuple[Callable[[], Any] | None, bytearray,
                                               memoryview, int]:
    """What every file of a batch shares: the hasher, one read buffer, open flags."""
    buf = bytearray(max(options.chunk_size, MIN_CHUNK))
    flags = _READ_FLAGS if options.follow_symlinks else _READ_FLAGS | os.O_NOFOLLOW
    return _hasher(options.digest), buf, memoryview(buf), flags


#: What a rescan cache keys an entry on: (size, mtime_ns, ctime_ns, ino, dev).
FileStat = tuple[int, int, int, int, int]


def scan_batch_stats(items: list[Entry], options: ScanOptions,
                     token: CancelToken | None = None
                     ) -> tuple[list[FileResult], float, int, list[FileStat | None]]:
    """:func:`scan_batch` that also returns, per result, the ``fstat`` of the very
    descriptor that was read, taken after the last read (``None`` for records that
    are not ok): what a rescan cache stores beside the digest. Module-level, so
    process pools can pickle it."""
    t0 = time.perf_counter()
    new_hash, buf, view, flags = _batch_tools(options)
    out: list[FileResult] = []
    stats: list[FileStat | None] = []
    seen: list[FileStat | None] = [None]
    for i, item in enumerate(items):
        if token is not None and token.is_set():
            return out, time.perf_counter() - t0, len(items) - i, stats
        seen[0] = None
        out.append(_scan_file(item, options, flags, new_hash, buf, view, seen))
        stats.append(seen[0])
    return out, time.perf_counter() - t0, 0, stats


_new_result = tuple.__new__  # FileResult(...) without the namedtuple's Python __new__


def _scan_file(item: Entry, options: ScanOptions, flags: int,
               new_hash: Callable[[], Any] | None, buf: bytearray, view: memoryview,
               seen: list[FileStat | None] | None = None) -> FileResult:
    """Read one file: one ``open``, ``readv`` and ``fstat`` for a file smaller than
    the buffer (most files; each system call is a GIL hand-off between threads).
    ``seen[0]`` receives the final ``fstat`` of an ok file (for a rescan cache)."""
    path, walk_size, index = item
    profile = options.profile
    if profile is not None:
        profile.before_read(path, index, options.started)
    try:
        fd = os.open(path, flags) if len(path) < SAFE_PATH else open_path(path, flags)
    except OSError as exc:
        return failed(path, error_reason(exc), walk_size)
    try:
        h = new_hash() if new_hash is not None else None
        matcher = options.signatures.matcher() if options.signatures is not None else None
        n = total = os.readv(fd, (buf,))
        first = None  # fstat after a full first chunk: the reference for a long read
        if n == len(buf):
            first = os.fstat(fd)
            if not stat.S_ISREG(first.st_mode):
                return skipped(path, _CHANGED_TYPE, walk_size)
        if profile is not None:
            profile.inspect(bytes(view[:n]), path)  # the first chunk (empty files too)
        while n:
            chunk = view[:n]
            if h is not None:
                h.update(chunk)
            if matcher is not None:
                matcher.feed(chunk)
            if first is None or total > first.st_size:
                break
            n = os.readv(fd, (buf,))
            total += n
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return skipped(path, _CHANGED_TYPE, walk_size)
        if total != st.st_size or (first is not None and (
                first.st_size != st.st_size or first.st_mtime_ns != st.st_mtime_ns)):
            return failed(path, "changed during scan", total)
        matches = tuple(sorted(matcher.found)) if matcher is not None else ()
        digest = h.hexdigest() if h is not None else None
        if seen is not None:
            seen[0] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
        return _new_result(FileResult, (os.fsdecode(path), total, digest, matches, "ok",
                                        None, path, False))
    except OSError as exc:
        return _read_failed(fd, path, exc, walk_size)
    finally:
        os.close(fd)


_CHANGED_TYPE = "not a regular file: changed type during scan"


def _read_failed(fd: int, path: bytes, exc: OSError, size: int) -> FileResult:
    """A read error: ``skipped`` if the name now holds something else (a FIFO with a
    writer fails with EAGAIN), else an ``error`` naming the cause."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return skipped(path, _CHANGED_TYPE, size)
    except OSError:
        pass
    return failed(path, error_reason(exc), size)
