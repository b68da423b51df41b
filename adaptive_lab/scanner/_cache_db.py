"""The rescan cache's SQLite file: schema, opening safely, and eviction.

One file (WAL mode, created 0600, its ``-wal`` and ``-shm`` companions get the same
mode from SQLite). It is marked with an SQLite ``application_id`` and a schema
``user_version``, so a file that is not a cache is never changed: a file that is not
SQLite, or an SQLite database of another application, is refused with a
``ValueError``; a cache of an older schema, or one SQLite reports as damaged, is
rebuilt empty with a :class:`CacheWarning`.

Tables:

* ``dirs(id, path, seen)``: a directory's absolute path (bytes, exact) and the run
  that last listed it. A scan lists every file of a directory it enters, so every
  entry of a directory was last used in that run: eviction by runs not seen (``seen``)
  and least-recently-used eviction both work on it.
* ``entries(dir, name, key, digest, matches, chk)``: one file. ``key`` is a 48-byte
  record of what must be unchanged for a hit (:data:`KEY`: size, mtime_ns, ctime_ns,
  state, inode, device; state = configuration id << 2 | racy-mtime << 1 |
  racy-ctime); ``digest`` the raw digest; ``matches`` a JSON list of signature
  names (NULL for none); ``chk`` a CRC-32 of name, key, digest and matches, so a
  damaged row is a miss, never a wrong result.
* ``configs(id, algorithm, signatures)``: digest algorithm and signature-set
  fingerprint; ``runs``: one row per scan (hits, misses, entries written).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import struct
import warnings
import zlib
from typing import Any

__all__ = ["APPLICATION_ID", "KEY", "SCHEMA_VERSION", "CacheWarning", "connect", "crc", "describe",
           "evict_lru", "is_damaged", "is_ours", "open_db", "prune_age", "rebuild_file"]

APPLICATION_ID = 0x414C5343  # "ALSC": adaptive-lab scan cache
SCHEMA_VERSION = 1
MAGIC = b"SQLite format 3\x00"
#: size, mtime_ns, ctime_ns, state, inode, device (little-endian)
KEY = struct.Struct("<qqqqQQ")
_TABLES = ("meta", "configs", "dirs", "entries", "runs")
_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE configs(id INTEGER PRIMARY KEY, algorithm TEXT NOT NULL,
                     signatures TEXT NOT NULL, UNIQUE(algorithm, signatures));
CREATE TABLE dirs(id INTEGER PRIMARY KEY AUTOINCREMENT, path BLOB NOT NULL UNIQUE,
                  seen INTEGER NOT NULL);
CREATE TABLE entries(dir INTEGER NOT NULL, name BLOB NOT NULL, key BLOB NOT NULL,
                     digest BLOB, matches TEXT, chk INTEGER NOT NULL,
                     PRIMARY KEY(dir, name)) WITHOUT ROWID;
CREATE TABLE runs(id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL,
                  finished REAL, root BLOB NOT NULL, config INTEGER NOT NULL,
                  hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0,
                  written INTEGER NOT NULL DEFAULT 0, complete INTEGER NOT NULL DEFAULT 0);
INSERT INTO meta VALUES ('format', 'adaptive-lab/scan-cache');
"""


class CacheWarning(UserWarning):
    """The rescan cache was rebuilt or could not be used; results stay correct."""


def crc(name: bytes, key: bytes, digest: bytes | None, matches: str | None) -> int:
    """The row check: CRC-32 of name, key, digest and matches."""
    c = zlib.crc32(key, zlib.crc32(name))
    if digest is not None:
        c = zlib.crc32(digest, c)
    if matches is not None:
        c = zlib.crc32(matches.encode("utf-8", "surrogatepass"), c)
    return c


def is_damaged(exc: BaseException) -> bool:
    """Whether an sqlite3 error says the file itself is damaged (not busy, not full)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    text = str(exc)
    return "malformed" in text or "not a database" in text


def connect(path: bytes, timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit)."""
    con = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                          check_same_thread=False)
    con.execute("PRAGMA synchronous=NORMAL")  # WAL: consistent after a crash, fewer fsyncs
    return con


def _companions(path: bytes) -> tuple[bytes, ...]:
    return path, path + b"-wal", path + b"-shm"


def _create_file(path: bytes) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:  # another scan created it first
        pass


def _head(path: bytes) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(100)


def open_db(path: bytes, *, create: bool = True, timeout: float = 30.0,
            rebuild: bool = True) -> sqlite3.Connection:
    """Open (or create) the cache at ``path``; ValueError if it is not one. A damaged
    cache is rebuilt empty with a warning (``rebuild=False``: ValueError instead)."""
    name = os.fsdecode(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not create:
            raise ValueError(f"cache: {name!r} does not exist") from None
        try:
            _create_file(path)
            st = os.stat(path)
        except OSError as exc:
            raise ValueError(f"cache: cannot create {name!r}: {exc.strerror}") from None
    except OSError as exc:
        raise ValueError(f"cache: cannot use {name!r}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"cache: {name!r} is not a regular file")
    head = b""
    if st.st_size:
        try:
            head = _head(path)
        except OSError as exc:
            raise ValueError(f"cache: cannot read {name!r}: {exc.strerror}") from None
        if not head.startswith(MAGIC):
            raise ValueError(f"cache: {name!r} is not an adaptive-lab scan cache (not an "
                             f"SQLite database); refusing to change it: give another path")
    try:
        return _open_checked(path, name, timeout)
    except sqlite3.DatabaseError as exc:
        ours = len(head) >= 72 and int.from_bytes(head[68:72], "big") == APPLICATION_ID
        if not (is_damaged(exc) and ours):  # never replace what may not be ours
            raise ValueError(f"cache: cannot use {name!r}: {exc}") from None
        if not rebuild:
            raise ValueError(f"cache: {name!r} is damaged ({exc}); `adaptive-lab cache "
                             f"clear` rebuilds it") from None
        warnings.warn(f"cache {name!r} is damaged ({exc}): rebuilding it empty",
                      CacheWarning, stacklevel=3)
        rebuild_file(path)
        try:
            return _open_checked(path, name, timeout)
        except sqlite3.Error as exc2:
            raise ValueError(f"cache: cannot rebuild {name!r}: {exc2}") from None


def is_ours(path: bytes) -> bool:
    """Whether ``path`` is missing, empty or marked as a cache (safe to replace)."""
    try:
        head = _head(path)
    except FileNotFoundError:
        return True
    return not head or (head.startswith(MAGIC) and len(head) >= 72
                        and int.from_bytes(head[68:72], "big") == APPLICATION_ID)


def rebuild_file(path: bytes) -> None:
    """Remove a damaged cache and its WAL companions, and create an empty file; a file
    that is not marked as a cache (replaced meanwhile) is left alone."""
    if not is_ours(path):
        raise OSError(f"{os.fsdecode(path)!r} is no longer an adaptive-lab scan cache")
    for p in _companions(path):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    _create_file(path)


def _open_checked(path: bytes, name: str, timeout: float) -> sqlite3.Connection:
    con = connect(path, timeout)
    try:
        _init_or_check(con, path, name)
        mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            warnings.warn(f"cache {name!r}: WAL mode unavailable here (journal mode "
                          f"{mode}); concurrent scans will wait for each other",
                          CacheWarning, stacklevel=4)
        return con
    except BaseException:
        con.close()
        raise


def _init_or_check(con: sqlite3.Connection, path: bytes, name: str) -> None:
    """Create the schema in a new file, or check that the file is ours and current.

    Runs in an IMMEDIATE transaction, so two scans creating one cache at once do not
    both create it; the application id and schema go into the main file before WAL
    mode is switched on, so its header always says whose it is."""
    con.execute("BEGIN IMMEDIATE")
    try:
        app = con.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app == 0 and not tables:
            _create_schema(con)
            try:
                os.chmod(path, 0o600)
            except OSError:
                pass
        elif app != APPLICATION_ID:
            raise ValueError(f"cache: {name!r} is an SQLite database of another "
                             f"application, not an adaptive-lab scan cache; refusing to "
                             f"change it: give another path")
        else:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ValueError(f"cache: {name!r} was written by a newer adaptive-lab "
                                 f"(schema {version}, this one reads {SCHEMA_VERSION})")
            if version < SCHEMA_VERSION or not set(_TABLES) <= tables:
                warnings.warn(f"cache {name!r} has schema {version} (this version writes "
                              f"{SCHEMA_VERSION}): rebuilding it empty", CacheWarning,
                              stacklevel=5)
                for table in tables:
                    if not table.startswith("sqlite_"):
                        con.execute(f'DROP TABLE "{table}"')
                _create_schema(con)
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


def _create_schema(con: sqlite3.Connection) -> None:
    con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            con.execute(statement)


def prune_age(con: sqlite3.Connection, run: int, max_age_runs: int) -> int:
    """Drop the entries of directories not listed in the last ``max_age_runs`` runs
    (inside the caller's transaction); returns entries removed."""
    limit = run - max_age_runs
    removed = con.execute("DELETE FROM entries WHERE dir IN "
                          "(SELECT id FROM dirs WHERE seen <= ?)", (limit,)).rowcount
    con.execute("DELETE FROM dirs WHERE seen <= ?", (limit,))
    return max(removed, 0)


def evict_lru(con: sqlite3.Connection, max_entries: int) -> int:
    """Drop least-recently-used entries until at most ``max_entries`` remain (inside the
    caller's transaction): whole directories, oldest ``seen`` first, and part of the
    last one. Returns entries removed."""
    total = con.execute("SELECT count(*) FROM entries").fetchone()[0]
    excess = total - max_entries
    if excess <= 0:
        return 0
    removed = 0
    victims: list[tuple[int, int]] = []
    for dir_id, count in con.execute(
            "SELECT d.id, (SELECT count(*) FROM entries e WHERE e.dir = d.id) "
            "FROM dirs d ORDER BY d.seen, d.id"):
        if removed >= excess:
            break
        take = min(count, excess - removed)
        victims.append((dir_id, take))
        removed += take
    for dir_id, take in victims:
        con.execute("DELETE FROM entries WHERE dir = ? AND name IN (SELECT name FROM "
                    "entries WHERE dir = ? ORDER BY name LIMIT ?)", (dir_id, dir_id, take))
        if not con.execute("SELECT 1 FROM entries WHERE dir = ? LIMIT 1",
                           (dir_id,)).fetchone():
            con.execute("DELETE FROM dirs WHERE id = ?", (dir_id,))
    return removed


def describe(con: sqlite3.Connection) -> dict[str, Any]:
    """Counts for ``cache stats``: entries, directories, runs, configurations, racy."""
    entries = con.execute("SELECT count(*) FROM entries").fetchone()[0]
    dirs = con.execute("SELECT count(*) FROM dirs").fetchone()[0]
    configs = {cid: {"algorithm": algo or None, "signatures": sig, "entries": 0}
               for cid, algo, sig in con.execute(
                   "SELECT id, algorithm, signatures FROM configs")}
    racy = damaged = 0
    for key, name, digest, matches, chk in con.execute(
            "SELECT key, name, digest, matches, chk FROM entries"):
        if len(key) != KEY.size or crc(name, key, digest, matches) != chk:
            damaged += 1
            continue
        state = KEY.unpack(key)[3]
        racy += bool(state & 3)
        info = configs.get(state >> 2)
        if info is not None:
            info["entries"] += 1
    runs = [dict(zip(("run", "started", "finished", "root", "hits", "misses", "written",
                      "complete"), r, strict=True)) for r in con.execute(
        "SELECT id, started, finished, root, hits, misses, written, complete FROM runs "
        "ORDER BY id DESC LIMIT 5")]
    for r in runs:
        r["root"] = os.fsdecode(r["root"])
        looked = r["hits"] + r["misses"]
        r["hit_rate"] = r["hits"] / looked if looked else None
        r["complete"] = bool(r["complete"])
    last = con.execute("SELECT max(id) FROM runs").fetchone()[0] or 0
    return {"entries": entries, "directories": dirs, "racy_entries": racy,
            "damaged_entries": damaged, "runs": last,
            "configs": [c for c in configs.values() if c["entries"]],
            "recent_runs": runs}
