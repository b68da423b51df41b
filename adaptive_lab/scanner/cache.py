"""A persistent rescan cache: skip reading files that have not changed since last time.

``scan(root, cache=PATH)`` (or ``cache=ScanCache(PATH, ...)``) keeps one SQLite file
(the standard library's ``sqlite3``, WAL mode, created 0600). Each entry is keyed by
the file's path (bytes, exact) and holds the device, inode, size, mtime_ns and
ctime_ns seen when it was hashed, the digest, the digest algorithm and the signature
matches. A cached result is used only if all of those still match a fresh ``stat``,
the digest algorithm and the signature set (a fingerprint of it) are the same, and
the entry is not *racy*; otherwise the file is read again. The design follows what
git, restic and borg learned (see docs/scanner.md, "Rescan cache"):

* ctime as well as mtime (programs restore mtime; nobody can set ctime), and the
  inode (a file replaced by ``rename`` with copied size and mtime has a new one).
  ``trust`` relaxes this for filesystems whose inodes or ctimes are unstable, as
  restic's ``--ignore-inode``/``--ignore-ctime`` do.
* Racy entries: a file whose mtime or ctime is not older, by the filesystem's
  timestamp ``granularity`` (2 s assumed, FAT's), than the moment it was hashed may
  change again without its timestamps moving; it is re-hashed next time.
* Expiry as borg does: entries of directories not listed for ``max_age_runs`` runs are
  dropped, and over ``max_entries`` the least recently used go first.

The file layout and the safety rules (a foreign or non-SQLite file is refused, a
damaged cache is rebuilt, every row carries a CRC) are in
:mod:`adaptive_lab.scanner._cache_db`; the per-scan look-ups and writes in
:mod:`adaptive_lab.scanner._cache_run`.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from adaptive_lab.scanner._cache_db import (
    CacheWarning,
    describe,
    evict_lru,
    is_damaged,
    is_ours,
    open_db,
    prune_age,
    rebuild_file,
)
from adaptive_lab.scanner._cache_run import CacheRun
from adaptive_lab.scanner.signatures import SignatureSet
from adaptive_lab.scanner.summary import ScanSummary

__all__ = ["TRUST_MODES", "CacheWarning", "ScanCache", "open_cache", "parse_trust",
           "record_cache_event", "signature_fingerprint"]

TRUST_MODES = ("ignore-inode", "ignore-ctime")
DEFAULT_MAX_AGE_RUNS = 20  # borg's files cache TTL
DEFAULT_MAX_ENTRIES = 2_000_000
DEFAULT_GRANULARITY = 2.0  # seconds: FAT's mtime; finer filesystems lose nothing but
# a re-hash of files changed in the 2 s before their scan
_MATCHER_VERSION = 1  # bump when matching rules change: cached matches then expire


def parse_trust(trust: str | Iterable[str] | None) -> frozenset[str]:
    """``None``, ``"ignore-inode"``, ``"ignore-inode,ignore-ctime"`` or a list of modes."""
    if trust is None:
        return frozenset()
    items = trust.split(",") if isinstance(trust, str) else list(trust)
    modes = set()
    for item in items:
        mode = str(item).strip()
        if mode not in TRUST_MODES:
            raise ValueError(f"cache_trust: unknown mode {item!r}; use "
                             + " or ".join(TRUST_MODES))
        modes.add(mode)
    return frozenset(modes)


def signature_fingerprint(signatures: SignatureSet | None) -> str:
    """A stable fingerprint of a signature set (names and patterns, in any order)."""
    if signatures is None:
        return "none"
    h = hashlib.sha256(b"adaptive-lab signatures %d\0" % _MATCHER_VERSION)
    for sig in sorted(signatures.signatures, key=lambda s: s.name):
        name = sig.name.encode("utf-8", "surrogatepass")
        h.update(len(name).to_bytes(4, "little") + name)
        h.update(len(sig.pattern).to_bytes(4, "little") + sig.pattern)
    return h.hexdigest()[:32]


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


class ScanCache:
    """A rescan cache file and its settings; pass it as ``scan(root, cache=...)``.

    Opening checks the file (creating it, 0600, if missing): ValueError if it is not
    a cache (not SQLite, or another application's database: never changed); a cache of
    an older schema or one SQLite reports damaged is rebuilt empty with a
    :class:`CacheWarning`. Each scan opens its own connection, so one ``ScanCache``
    serves scans in several threads, and several processes can share the file.

    Parameters
    ----------
    path
        The cache file (str, bytes or path-like); parent directories are created 0700.
    trust
        ``"ignore-inode"`` and/or ``"ignore-ctime"``: leave inode and device, or
        ctime, out of the comparison (filesystems where they change by themselves).
    max_age_runs
        Entries of directories not listed in this many runs are dropped (borg's TTL).
    max_entries
        Over this many entries, the least recently used are evicted.
    granularity
        Filesystem timestamp granularity in seconds (2.0 assumed): entries whose
        mtime or ctime is not older than the hash by this much are re-hashed next time.
    clock
        Wall clock in nanoseconds (default ``time.time_ns``); tests inject one.
    timeout
        Seconds to wait for another scan's write transaction before giving up.
    create
        Create the file if missing, and check it now (``False``: ValueError if missing;
        the methods check it, and ``clear`` rebuilds a damaged one).
    """

    def __init__(self, path: str | bytes | os.PathLike, *,
                 trust: str | Iterable[str] | None = None,
                 max_age_runs: int = DEFAULT_MAX_AGE_RUNS,
                 max_entries: int = DEFAULT_MAX_ENTRIES,
                 granularity: float = DEFAULT_GRANULARITY,
                 clock: Callable[[], int] | None = None, timeout: float = 30.0,
                 create: bool = True) -> None:
        if not isinstance(path, (str, bytes, os.PathLike)) or not os.fspath(path):
            raise ValueError(f"cache: expected a file path, got {path!r}")
        self.path = os.fsencode(path)
        self.name = os.fsdecode(self.path)
        self.trust = parse_trust(trust)
        self.max_age_runs = _check_int("max_age_runs", max_age_runs, 1)
        self.max_entries = _check_int("max_entries", max_entries, 0)
        for pname, value in (("granularity", granularity), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"{pname} must be a finite number >= 0, got {value!r}")
        if clock is not None and not callable(clock):
            raise ValueError(f"clock must be callable, got {clock!r}")
        self.granularity = float(granularity)
        self.clock: Callable[[], int] = clock or time.time_ns
        self.timeout = float(timeout)
        if create:
            open_db(self.path, create=True, timeout=self.timeout).close()
        elif not os.path.exists(self.path):  # each method opens (and checks) the file
            raise ValueError(f"cache: {self.name!r} does not exist")

    def __repr__(self) -> str:
        return (f"ScanCache({self.name!r}, trust={sorted(self.trust)}, "
                f"max_age_runs={self.max_age_runs}, max_entries={self.max_entries})")

    def begin(self, root: str | bytes | os.PathLike, *, digest: str | None,
              signatures: SignatureSet | None, follow_symlinks: bool,
              summary: ScanSummary) -> CacheRun:
        """Start one scan's session (the scanner calls this)."""
        root_b = os.fsencode(root)
        if len(root_b) > 1:
            root_b = root_b.rstrip(b"/") or b"/"
        try:
            con = open_db(self.path, create=True, timeout=self.timeout)
            failure = None
        except ValueError as exc:  # replaced or locked since: scan without it
            con, failure = None, str(exc)
        return CacheRun(con, failure=failure, name=self.name, root=root_b,
                        root_is_dir=os.path.isdir(root_b),
                        config=(digest or "", signature_fingerprint(signatures)),
                        trust=self.trust, granularity_ns=int(self.granularity * 1e9),
                        clock=self.clock, max_age_runs=self.max_age_runs,
                        max_entries=self.max_entries, follow_symlinks=follow_symlinks,
                        summary=summary)

    def stats(self) -> dict[str, Any]:
        """Entries, directories, runs, racy and damaged entries, file size, last runs."""
        con = open_db(self.path, create=False, timeout=self.timeout, rebuild=False)
        try:
            info = describe(con)
        except sqlite3.Error as exc:
            raise ValueError(f"cache: cannot read {self.name!r}: {exc}") from None
        finally:
            con.close()
        size = 0
        for suffix in (b"", b"-wal"):
            try:
                size += os.stat(self.path + suffix).st_size
            except OSError:
                pass
        return {"path": self.name, "bytes": size, **info}

    def prune(self, *, max_age_runs: int | None = None, max_entries: int | None = None
              ) -> dict[str, int]:
        """Drop entries not seen for ``max_age_runs`` runs and evict over
        ``max_entries`` (default: this cache's settings), then compact the file."""
        age = _check_int("max_age_runs", self.max_age_runs if max_age_runs is None
                         else max_age_runs, 1)
        cap = _check_int("max_entries", self.max_entries if max_entries is None
                         else max_entries, 0)
        con = open_db(self.path, create=False, timeout=self.timeout, rebuild=False)
        try:
            con.execute("BEGIN IMMEDIATE")
            run = con.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0]
            pruned = prune_age(con, run, age)
            evicted = evict_lru(con, cap)
            con.execute("COMMIT")
            left = con.execute("SELECT count(*) FROM entries").fetchone()[0]
            _compact(con)
        except sqlite3.Error as exc:
            raise ValueError(f"cache: cannot prune {self.name!r}: {exc}") from None
        finally:
            con.close()
        return {"pruned": pruned, "evicted": evicted, "entries": left}

    def clear(self) -> int:
        """Remove every entry (a damaged cache is rebuilt); returns entries removed."""
        try:
            con = open_db(self.path, create=False, timeout=self.timeout, rebuild=False)
        except ValueError:
            if not is_ours(self.path):
                raise
            rebuild_file(self.path)  # damaged, or of an old schema: start afresh
            open_db(self.path, timeout=self.timeout).close()
            return 0
        try:
            con.execute("BEGIN IMMEDIATE")
            removed = con.execute("DELETE FROM entries").rowcount
            con.execute("DELETE FROM dirs")
            con.execute("COMMIT")
            _compact(con)
        except sqlite3.Error as exc:
            con.close()
            if not is_damaged(exc):
                raise ValueError(f"cache: cannot clear {self.name!r}: {exc}") from None
            rebuild_file(self.path)
            open_db(self.path, timeout=self.timeout).close()
            return 0
        con.close()
        return max(removed, 0)


def open_cache(cache: Any, trust: Any = None) -> ScanCache | None:
    """The scanner's ``cache=`` as a :class:`ScanCache` (opened and checked now, so bad
    input fails before the scan starts)."""
    if cache is None:
        if trust is not None:
            raise ValueError("cache_trust needs a cache")
        return None
    if isinstance(cache, ScanCache):
        if trust is not None:
            raise ValueError("cache_trust: set trust on the ScanCache instead")
        return cache
    return ScanCache(cache, trust=trust)


def record_cache_event(executor: Any, summary: ScanSummary) -> None:
    """A ``cache`` event (hits, misses, hit rate) in the executor's trace, if it
    records one (an adaptive pool with ``record=``)."""
    ctl = getattr(executor, "controller", None)
    recorder = getattr(ctl, "recorder", None)
    if recorder is None or ctl is None:
        return
    facts = summary.cache or {}
    recorder.event({"t": round(ctl.now(), 6), "type": "cache", "hits": summary.cache_hits,
                    "misses": summary.cache_misses, "hit_rate": summary.cache_hit_rate,
                    "written": facts.get("written", 0), "racy": facts.get("racy", 0),
                    "path": facts.get("path")})


def _compact(con: sqlite3.Connection) -> None:
    """Give freed pages back (skipped while another scan uses the file)."""
    try:
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError:
        pass
