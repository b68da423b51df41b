"""One scan's use of the rescan cache: look-ups in the walk, writes after the reads.

:meth:`CacheRun.filter` sits between the walk and the batching, in the scanner's
calling thread. Per directory it loads that directory's entries in one query (a
dict for the directory, never the whole table), and per regular file it takes one
``stat`` by path (``lstat`` unless following symlinks) and compares the packed key:
a hit is yielded as a finished ``FileResult`` (``cached=True``) without opening the
file; a miss goes on to the readers. A file is read in full on any doubt: a key
that differs, a racy entry, another digest algorithm or signature set, a row that
fails its CRC, a ``stat`` that fails.

:meth:`CacheRun.store` records what the readers saw: the ``fstat`` of the descriptor
they read (after the last read) and the digest. An entry whose mtime or ctime is not
older than the batch's submission time minus the timestamp granularity is stored
*racy* and re-hashed next time: a write after the read that kept size and mtime
would otherwise be invisible (git's "racy clean" problem). Writes are batched in
short ``BEGIN IMMEDIATE`` transactions (at least every second), so a second scan of
the same file waits milliseconds, and ``kill -9`` loses at most the last second.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import struct
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from adaptive_lab.scanner._cache_db import (
    KEY,
    CacheWarning,
    crc,
    evict_lru,
    is_damaged,
    prune_age,
    rebuild_file,
)
from adaptive_lab.scanner.read import FileStat
from adaptive_lab.scanner.summary import ScanSummary
from adaptive_lab.scanner.walk import FileResult

__all__ = ["CacheRun"]

_BIG_DIR = 50_000  # larger directories are looked up file by file (bounded memory)
_FLUSH_ROWS = 2000
_FLUSH_SECONDS = 1.0
_KEEP_RUNS = 1000  # rows of run history kept
_new_result = tuple.__new__


class _BigDir:
    """A directory with more entries than fit a dict cheaply: point look-ups, and the
    names looked up remembered to find the absent ones at the end."""

    def __init__(self, con: sqlite3.Connection, dir_id: int) -> None:
        self.con = con
        self.dir_id = dir_id
        self.listed: set[bytes] = set()

    def __bool__(self) -> bool:
        return True

    def pop(self, name: bytes, default: Any = None) -> Any:
        self.listed.add(name)
        row = self.con.execute("SELECT name, key, digest, matches, chk FROM entries "
                               "WHERE dir = ? AND name = ?", (self.dir_id, name)).fetchone()
        return row if row is not None else default

    def absent(self) -> list[bytes]:
        return [n for (n,) in self.con.execute("SELECT name FROM entries WHERE dir = ?",
                                                (self.dir_id,)) if n not in self.listed]


class CacheRun:
    """A scan's session with one cache file (its own connection, used by one thread
    at a time: the thread consuming the scan's results)."""

    def __init__(self, con: sqlite3.Connection | None, *, failure: str | None = None,
                 name: str, root: bytes, root_is_dir: bool,
                 config: tuple[str, str], trust: frozenset[str], granularity_ns: int,
                 clock: Callable[[], int], max_age_runs: int, max_entries: int,
                 follow_symlinks: bool, summary: ScanSummary) -> None:
        # without a file (it could not be opened) a placeholder a disabled run never uses
        self.con: sqlite3.Connection = con if con is not None else sqlite3.connect(":memory:")
        self.name = name
        self.path = os.fsencode(name)
        self.summary = summary
        self.clock = clock
        self.granularity_ns = granularity_ns
        self.max_age_runs = max_age_runs
        self.max_entries = max_entries
        self.trust = trust
        self.ignore_inode = "ignore-inode" in trust
        self.ignore_ctime = "ignore-ctime" in trust
        self._stat = os.stat if follow_symlinks else os.lstat
        self._root_b = root
        self._root_abs = os.path.abspath(root)
        self._root_is_dir = root_is_dir
        self._rows: list[tuple] = []
        self._deletes: list[tuple[bytes, bytes]] = []
        self._touched: set[bytes] = set()
        self._last_flush = time.monotonic()
        self.run = 0
        self.config_id = 0
        self.written = self.racy = self.pruned = self.evicted = 0
        self.warnings: list[str] = []
        self.disabled: str | None = None
        self._damaged = False
        self._closed = False
        if con is None:  # read every file, and say why
            self._fail(failure or "cannot be opened")
        else:
            self._begin(root, config)
        self.state_ok = self.config_id << 2  # the state of a valid, non-racy entry

    def _begin(self, root: bytes, config: tuple[str, str]) -> None:
        """Register the run (its number dates directories) and the configuration."""
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT OR IGNORE INTO configs(algorithm, signatures) VALUES (?, ?)",
                        config)
            self.config_id = con.execute(
                "SELECT id FROM configs WHERE algorithm = ? AND signatures = ?",
                config).fetchone()[0]
            cur = con.execute("INSERT INTO runs(started, root, config) VALUES (?, ?, ?)",
                              (time.time(), self._root_abs, self.config_id))
            self.run = int(cur.lastrowid or 0)
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self._fail(exc)

    # -- look-ups (the walk) -----------------------------------------------------------
    def filter(self, items: Iterator[Any]) -> Iterator[Any]:
        """Pass the walk's items on, answering regular files from the cache where the
        entry is still valid (a ``FileResult`` with ``cached=True``)."""
        summary = self.summary
        stat_, pack, state_ok = self._stat, KEY.pack, self.state_ok
        exact = not (self.ignore_inode or self.ignore_ctime)
        isreg, loads, crc32 = stat.S_ISREG, json.loads, zlib.crc32
        enc, errors = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
        cur: bytes | None = None
        dir_key = b""
        rows: Any = {}
        partial = False
        try:
            for item in items:
                if type(item) is FileResult:
                    if item.raw_path == cur and item.reason is not None \
                            and item.reason.startswith("cannot list"):
                        partial = True  # this directory's listing is incomplete
                    yield item
                    continue
                path = item[0]
                d, sep, name = path.rpartition(b"/")
                if d != cur:
                    if cur is not None:
                        self._finish_dir(dir_key, rows, partial)
                    cur, partial = d, False
                    dir_key = self._dir_key(d, sep)
                    rows = self._load_dir(dir_key)
                row = rows.pop(name, None) if rows else None
                if row is not None:
                    try:
                        st = stat_(path)
                    except OSError:  # vanished, too long a path: the reader will say
                        st = None
                    if st is not None:
                        _, rkey, digest, matches, chk = row
                        try:
                            key = pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, state_ok,
                                       st.st_ino, st.st_dev)
                        except struct.error:  # a timestamp beyond 64 bits: never cached
                            key = b""
                        if (rkey == key if exact else self._matches(rkey, st)) \
                                and isreg(st.st_mode) and chk == (
                                    crc32(digest, crc32(rkey, crc32(name)))
                                    if matches is None and digest is not None
                                    else crc(name, rkey, digest, matches)):
                            yield _new_result(FileResult, (
                                path.decode(enc, errors), st.st_size,
                                digest.hex() if digest is not None else None,
                                tuple(loads(matches)) if matches is not None else (),
                                "ok", None, path, True))
                            continue
                        item = (path, st.st_size, item[2])  # sized for the batching
                summary.cache_misses += 1
                yield item
            if cur is not None:  # only on a walk that ended (not on close)
                self._finish_dir(dir_key, rows, partial)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # the walk's directory descriptor, at once

    def _matches(self, rkey: bytes, st: os.stat_result) -> bool:
        """The key comparison under ``--cache-trust`` (ignore-inode, ignore-ctime)."""
        size, mtime, ctime, state, ino, dev = KEY.unpack(rkey)
        if size != st.st_size or mtime != st.st_mtime_ns or state >> 2 != self.config_id \
                or state & 2:
            return False
        if not self.ignore_ctime and (ctime != st.st_ctime_ns or state & 1):
            return False
        return self.ignore_inode or (ino == st.st_ino and dev == st.st_dev)

    def _dir_key(self, d: bytes, sep: bytes) -> bytes:
        """A directory's absolute path (the walk's paths start with the root given)."""
        if self._root_is_dir and d.startswith(self._root_b):
            return self._root_abs + d[len(self._root_b):]
        return os.path.abspath(d if sep and d else b"/" if sep else b".")

    def _load_dir(self, dir_key: bytes) -> Any:
        if self.disabled:
            return {}
        self._touched.add(dir_key)
        try:
            found = self.con.execute("SELECT id FROM dirs WHERE path = ?",
                                     (dir_key,)).fetchone()
            if found is None:
                return {}
            cur = self.con.execute("SELECT name, key, digest, matches, chk FROM entries "
                                   "WHERE dir = ?", (found[0],))
            first = cur.fetchmany(_BIG_DIR + 1)
            if len(first) > _BIG_DIR:
                cur.close()
                return _BigDir(self.con, found[0])
            return {r[0]: r for r in first}
        except sqlite3.Error as exc:
            self._fail(exc)
            return {}

    def _finish_dir(self, dir_key: bytes, rows: Any, partial: bool) -> None:
        """A directory listed in full: entries for names no longer there are dropped."""
        if self.disabled:
            return
        if not partial and self._root_is_dir and rows:
            try:
                absent = rows.absent() if isinstance(rows, _BigDir) else list(rows)
            except sqlite3.Error as exc:
                self._fail(exc)
                return
            self._deletes.extend((dir_key, n) for n in absent)
        self._maybe_flush()

    # -- writes (after the reads) ------------------------------------------------------
    def now_ns(self) -> int:
        """The clock racy entries are judged on (take it before submitting a batch)."""
        return int(self.clock())

    def store(self, results: list[FileResult], stats: list[FileStat | None],
              submitted_ns: int) -> None:
        """Queue the readers' results of one batch for writing."""
        if self.disabled:
            return
        limit = submitted_ns - self.granularity_ns
        last_d: bytes | None = None
        dkey = b""
        for r, st in zip(results, stats, strict=True):
            d, sep, name = r.raw_path.rpartition(b"/")
            if d != last_d:
                last_d, dkey = d, self._dir_key(d, sep)
            if st is None or r.status != "ok":
                self._deletes.append((dkey, name))
                continue
            size, mtime, ctime, ino, dev = st
            racy = (mtime >= limit) << 1 | (ctime >= limit)
            try:
                key = KEY.pack(size, mtime, ctime, self.state_ok | racy, ino, dev)
            except struct.error:
                self._deletes.append((dkey, name))
                continue
            digest = bytes.fromhex(r.digest) if r.digest is not None else None
            matches = json.dumps(list(r.matches)) if r.matches else None
            self._rows.append((dkey, name, key, digest, matches,
                               crc(name, key, digest, matches)))
            self.racy += bool(racy)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self._rows) + len(self._deletes) >= _FLUSH_ROWS or \
                time.monotonic() - self._last_flush >= _FLUSH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        rows, deletes, touched = self._rows, self._deletes, self._touched
        self._rows, self._deletes, self._touched = [], [], set()
        self._last_flush = time.monotonic()
        if self.disabled or not (rows or deletes or touched):
            return
        con, run = self.con, self.run
        try:
            con.execute("BEGIN IMMEDIATE")
            ids: dict[bytes, int | None] = {}
            for dkey in touched.union(r[0] for r in rows):
                con.execute("INSERT INTO dirs(path, seen) VALUES (?, ?) ON CONFLICT(path) "
                            "DO UPDATE SET seen = max(seen, excluded.seen)", (dkey, run))
            for dkey in touched.union(r[0] for r in rows).union(d[0] for d in deletes):
                found = con.execute("SELECT id FROM dirs WHERE path = ?", (dkey,)).fetchone()
                ids[dkey] = found[0] if found else None
            con.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                            [(ids[r[0]], *r[1:]) for r in rows])
            con.executemany("DELETE FROM entries WHERE dir = ? AND name = ?",
                            [(ids[d], n) for d, n in deletes if ids[d] is not None])
            self._update_run(False, self.written + len(rows))
            con.execute("COMMIT")
            self.written += len(rows)
        except sqlite3.Error as exc:
            self._rollback()
            self._fail(exc)

    def _update_run(self, complete: bool, written: int) -> None:
        s = self.summary
        self.con.execute("UPDATE runs SET finished = ?, hits = ?, misses = ?, written = ?, "
                         "complete = ? WHERE id = ?",
                         (time.time(), s.cache_hits, s.cache_misses, written,
                          int(complete), self.run))

    def _rollback(self) -> None:
        try:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _fail(self, exc: BaseException | str) -> None:
        """Stop using the cache for this scan (the files are read instead) and say so;
        a damaged file is rebuilt when the scan ends."""
        if self.disabled:
            return
        self._damaged = is_damaged(exc) if isinstance(exc, BaseException) else False
        self.disabled = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) \
            else exc
        self._rows, self._deletes, self._touched = [], [], set()
        msg = (f"cache {self.name!r}: {exc}; not used for the rest of this scan (files "
               f"are read instead)" + ("; it will be rebuilt empty" if self._damaged else ""))
        self.warnings.append(msg)
        warnings.warn(msg, CacheWarning, stacklevel=3)

    # -- the end --------------------------------------------------------------------
    def close(self, complete: bool) -> dict[str, Any]:
        """Write what is queued, then (after a complete scan) drop entries not seen for
        ``max_age_runs`` runs and evict least-recently-used ones over ``max_entries``;
        returns the run's facts for the summary."""
        if not self._closed:
            self._closed = True
            self._flush()
            if not self.disabled:
                con = self.con
                try:
                    con.execute("BEGIN IMMEDIATE")
                    if complete:
                        self.pruned = prune_age(con, self.run, self.max_age_runs)
                        self.evicted = evict_lru(con, self.max_entries)
                    self._update_run(complete, self.written)
                    con.execute("DELETE FROM runs WHERE id <= ?", (self.run - _KEEP_RUNS,))
                    con.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._rollback()
                    self._fail(exc)
            try:
                self.con.close()
            except sqlite3.Error:
                pass
            if self._damaged:
                try:
                    rebuild_file(self.path)
                except OSError as exc:
                    self.warnings.append(f"cache {self.name!r}: cannot rebuild: {exc}")
        return self.facts()

    def facts(self) -> dict[str, Any]:
        """The run's details for :attr:`ScanSummary.cache`."""
        return {"path": self.name, "run": self.run, "written": self.written,
                "racy": self.racy, "pruned": self.pruned, "evicted": self.evicted,
                "trust": sorted(self.trust), "granularity": self.granularity_ns / 1e9,
                "disabled": self.disabled, "warnings": list(self.warnings)}
