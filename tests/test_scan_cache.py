"""The rescan cache on real files: every change a cache must not miss, eviction, safety.

The rule checked everywhere: a cached rescan's results equal a fresh uncached scan's
for every path. Timestamps are controlled with ``os.utime`` and an injected clock
(``FUTURE``: the cache believes files were hashed 10 s after they were written, so
entries are not racy), never by sleeping.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from adaptive_lab.cli.main import main
from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
from adaptive_lab.scanner import _cache_run
from adaptive_lab.scanner.cache import CacheWarning, ScanCache, signature_fingerprint
from adaptive_lab.scanner.core import Scanner, scan
from adaptive_lab.scanner.signatures import eicar_bytes, load_signatures
from adaptive_lab.trace.format import Trace

REPO = Path(__file__).resolve().parents[1]


def FUTURE() -> int:
    return time.time_ns() + 10 * 10**9


def make_tree(root: Path, n: int = 12) -> dict[str, bytes]:
    contents = {f"d{i % 3}/f{i:02d}.bin": (b"%02d" % i) * (100 + 37 * i) for i in range(n)}
    contents["d0/empty"] = b""
    contents["top.txt"] = b"top level"
    contents["d1/eicar.com"] = eicar_bytes()
    for rel, data in contents.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return contents


def results(root: Path, **kw) -> tuple[dict[bytes, tuple], object, list]:
    out: list = []
    summary = scan(root, ThreadPoolExecutor(2), on_result=out.append, **kw)
    view = {r.raw_path: (r.path, r.status, r.size, r.digest, r.matches, r.reason) for r in out}
    assert len(view) == len(out), "a path reported twice"
    return view, summary, out


def check(root: Path, cache, **kw) -> tuple[object, list]:
    """Scan with the cache and without; the results must be equal for every path."""
    cached, summary, out = results(root, cache=cache, **kw)
    fresh, _, _ = results(root, **kw)
    assert cached == fresh
    return summary, out


def cached_paths(out: list) -> set[str]:
    return {os.path.basename(r.path) for r in out if r.cached}


def ensure_ctime_moved(path: Path, old_ctime: int) -> None:
    """Make sure the change is visible in ctime (the kernel's coarse clock can give a
    write the same ctime as the one before it within a few ms: the racy case, tested
    separately with an honest clock)."""
    while os.stat(path).st_ctime_ns == old_ctime:
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # sets ctime to now


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "tree"
    make_tree(root)
    return root


@pytest.fixture
def cache(tmp_path) -> ScanCache:
    return ScanCache(tmp_path / "cache.sqlite", clock=FUTURE)


# -- hits ---------------------------------------------------------------------------
def test_rescan_answers_unchanged_files_from_the_cache(tree, cache):
    first, out = check(tree, cache, signatures="builtin")
    assert first.cache_hits == 0 and first.cache_misses == first.files == 15
    assert not any(r.cached for r in out) and first.cache["written"] == 15
    again, out = check(tree, cache, signatures="builtin")
    assert again.cache_hits == again.files == 15 and again.cache_misses == 0
    assert again.cache_hit_rate == 1.0 and all(r.cached for r in out)
    assert again.matched_files == 1 and again.match_counts == {"eicar-test-file": 1}
    assert again.cache_hit_bytes == again.bytes > 0
    d = json.loads(json.dumps(again.to_dict()))
    assert d["cache_hit_rate"] == 1.0 and d["cache"]["run"] == 2
    assert json.loads(json.dumps(out[0].to_dict()))["cached"] is True


def test_a_fully_cached_scan_starts_no_pool(tree, cache):
    first = scan(tree, cache=cache)
    assert first.executor == "AdaptiveThreadPoolExecutor"
    again = scan(tree, cache=cache)  # the scanner's own pool starts at the first read
    assert again.executor == "none" and again.cache_hits == again.files == 15
    (tree / "d0" / "added.bin").write_bytes(b"one to read")
    third = scan(tree, cache=cache)
    assert third.executor == "AdaptiveThreadPoolExecutor" and third.cache_misses == 1


# -- each change a cache must not miss ------------------------------------------------
def _rewrite_restore_mtime(p: Path) -> None:
    st = p.stat()
    p.write_bytes(bytes(255 - b for b in p.read_bytes()))  # same size, new bytes
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    ensure_ctime_moved(p, st.st_ctime_ns)


def _rewrite_new_mtime(p: Path) -> None:
    st = p.stat()
    p.write_bytes(bytes(255 - b for b in p.read_bytes()))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _replace_by_rename(p: Path) -> None:
    st = p.stat()
    tmp = p.with_name(p.name + ".new")
    tmp.write_bytes(b"X" * st.st_size)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime copied
    os.rename(tmp, p)
    assert os.stat(p).st_ino != st.st_ino
    ensure_ctime_moved(p, st.st_ctime_ns)


def _truncate_refill(p: Path) -> None:
    st = p.stat()
    with open(p, "r+b") as fh:
        fh.truncate(0)
        fh.write(b"Y" * st.st_size)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    ensure_ctime_moved(p, st.st_ctime_ns)


@pytest.mark.parametrize("change", [_rewrite_restore_mtime, _rewrite_new_mtime,
                                    _replace_by_rename, _truncate_refill])
def test_a_changed_file_is_read_again(tree, cache, change):
    check(tree, cache)
    victim = tree / "d1" / "f04.bin"
    before = hashlib.sha256(victim.read_bytes()).hexdigest()
    change(victim)
    summary, out = check(tree, cache)
    (r,) = [r for r in out if r.path == str(victim)]
    assert not r.cached and r.digest == hashlib.sha256(victim.read_bytes()).hexdigest()
    assert r.digest != before
    assert summary.cache_misses == 1 and summary.cache_hits == summary.files - 1


def test_deleted_and_added_files(tree, cache):
    check(tree, cache)
    (tree / "d2" / "f05.bin").unlink()
    (tree / "d2" / "new.bin").write_bytes(b"brand new")
    summary, out = check(tree, cache)
    assert "f05.bin" not in {os.path.basename(r.path) for r in out}
    assert "new.bin" not in cached_paths(out) and summary.cache_misses == 1
    assert cache.stats()["entries"] == 15  # the deleted file's entry is gone


def test_signature_set_changed_rechecks_matches(tree, cache):
    check(tree, cache, signatures=[("two", b"02")])
    again, _ = check(tree, cache, signatures=[("two", b"02"), ("three", b"03")])
    assert again.cache_hits == 0 and again.match_counts == {"two": 1, "three": 1}
    # the same set in another order is the same set
    first = load_signatures([("three", b"03"), ("two", b"02")])
    second = load_signatures([("two", b"02"), ("three", b"03")])
    assert signature_fingerprint(first) == signature_fingerprint(second)
    same, _ = check(tree, cache, signatures=first)
    assert same.cache_hits == same.files


def test_digest_algorithm_changed(tree, cache):
    check(tree, cache)
    blake, out = check(tree, cache, digest="blake2b")
    assert blake.cache_hits == 0 and all(len(r.digest) == 128 for r in out)
    back, _ = check(tree, cache)
    assert back.cache_hits == 0  # one entry per path: the blake2b scan replaced it
    none, _ = check(tree, cache, digest=None)
    assert none.cache_hits == 0
    none, out = check(tree, cache, digest=None)
    assert none.cache_hits == none.files and all(r.digest is None for r in out)


# -- racy entries -----------------------------------------------------------------------
def test_racy_entry_is_rehashed_even_if_nothing_visible_changed(tmp_path, tree):
    victim = tree / "d0" / "f00.bin"
    newest = max(os.stat(p).st_ctime_ns for p in tree.rglob("*"))
    # the cache's clock says the files were hashed 0.5 s after their last change:
    # within the 2 s granularity, so a rewrite in the same timestamp tick is possible
    racy = ScanCache(tmp_path / "racy.sqlite", clock=lambda: newest + 500_000_000)
    first, _ = check(tree, racy)
    assert first.cache["racy"] == first.files
    st = victim.stat()
    victim.write_bytes(b"Z" * st.st_size)  # no ensure_ctime_moved: may share the tick
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    again, out = check(tree, racy)
    assert again.cache_hits == 0 and not any(r.cached for r in out)
    # the same entries judged later (2 s + after the change) are trusted
    later = ScanCache(tmp_path / "racy.sqlite", clock=FUTURE)
    check(tree, later)
    trusted, _ = check(tree, later)
    assert trusted.cache_hits == trusted.files


def test_mtime_in_the_future_is_racy(tree, cache):
    victim = tree / "d0" / "f03.bin"
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, time.time_ns() + 3600 * 10**9))
    check(tree, cache)
    summary, out = check(tree, cache)
    assert summary.cache_misses == 1 and "f03.bin" not in cached_paths(out)
    relaxed = ScanCache(cache.path, clock=FUTURE, trust="ignore-ctime")
    summary, _ = check(tree, relaxed)
    assert summary.cache_misses == 1  # racy by mtime whatever the trust


def test_trust_modes(tree, tmp_path):
    path = tmp_path / "t.sqlite"
    strict = ScanCache(path, clock=FUTURE)
    no_ctime = ScanCache(path, clock=FUTURE, trust=["ignore-ctime"])
    no_inode = ScanCache(path, clock=FUTURE, trust="ignore-inode")
    check(tree, strict)
    victim = tree / "d2" / "f02.bin"
    old = victim.stat().st_ctime_ns
    os.chmod(victim, 0o640)  # ctime moves, content does not
    ensure_ctime_moved(victim, old)
    assert check(tree, no_ctime)[0].cache_hits == 15  # ctime alone is not trusted...
    assert check(tree, strict)[0].cache_misses == 1  # ...unless it is
    _replace_by_rename(victim)  # new inode and ctime; size and mtime copied
    assert check(tree, no_ctime)[0].cache_misses == 1  # the inode catches it
    _replace_by_rename(victim)
    assert check(tree, no_inode)[0].cache_misses == 1  # the ctime catches it


def test_bad_parameters_name_themselves(tmp_path):
    for kwargs, name in [({"trust": "ignore-everything"}, "cache_trust"),
                         ({"max_age_runs": 0}, "max_age_runs"),
                         ({"max_entries": -1}, "max_entries"),
                         ({"granularity": -1}, "granularity"),
                         ({"clock": 5}, "clock")]:
        with pytest.raises(ValueError, match=name):
            ScanCache(tmp_path / "c.sqlite", **kwargs)
    with pytest.raises(ValueError, match="cache_trust"):
        Scanner(tmp_path, cache_trust="ignore-inode")
    with pytest.raises(ValueError, match="is not a regular file"):
        ScanCache(tmp_path)


# -- eviction -------------------------------------------------------------------------
def test_entries_not_seen_for_n_runs_are_dropped(tree, tmp_path):
    c = ScanCache(tmp_path / "age.sqlite", clock=FUTURE, max_age_runs=2)
    check(tree, c)  # run 1: everything
    check(tree / "d0", c)  # run 2
    assert c.stats()["entries"] == 15
    check(tree / "d0", c)  # run 3: d1, d2 and the top level last seen in run 1
    assert c.stats()["entries"] == 5  # d0's: f00 f03 f06 f09 and empty
    summary, _ = check(tree / "d1", c)
    assert summary.cache_hits == 0


def test_size_cap_evicts_least_recently_used(tree, tmp_path):
    c = ScanCache(tmp_path / "lru.sqlite", clock=FUTURE, max_entries=8)
    check(tree / "d0", c)  # 5 entries, run 1
    check(tree / "d1", c)  # 5 more, run 2: 2 of d0's (least recently used) go
    assert c.stats()["entries"] == 8
    summary, _ = check(tree / "d1", c)
    assert summary.cache_hits == 5
    summary, _ = check(tree / "d0", c)
    assert summary.cache_hits == 3
    out = c.prune(max_entries=2)
    assert out["entries"] == 2 and out["evicted"] == 6


def test_big_directories_are_looked_up_file_by_file(tree, cache, monkeypatch):
    monkeypatch.setattr(_cache_run, "_BIG_DIR", 2)
    check(tree, cache)
    (tree / "d1" / "f01.bin").unlink()
    summary, _ = check(tree, cache)
    assert summary.cache_hits == summary.files
    assert cache.stats()["entries"] == 14


def test_scanning_one_file_keeps_its_neighbours(tree, cache):
    check(tree, cache)
    summary, out = check(tree / "d0" / "f00.bin", cache)
    assert summary.cache_hits == 1 and out[0].cached
    assert cache.stats()["entries"] == 15


def test_cancelled_scan_leaves_a_usable_cache(tree, cache):
    stop = threading.Event()
    seen: list = []

    def on_result(r):
        seen.append(r)
        stop.set()

    summary = scan(tree, ThreadPoolExecutor(1), cache=cache, cancel_event=stop,
                   on_result=on_result, batch_seconds=1e-9)
    assert summary.cancelled
    again, _ = check(tree, cache)
    assert again.files == 15


# -- safety ---------------------------------------------------------------------------
def test_file_mode_is_0600_with_its_wal(tree, tmp_path):
    path = tmp_path / "private" / "c.sqlite"
    c = ScanCache(path, clock=FUTURE)
    reader = sqlite3.connect(path)  # keeps the WAL files after the scan's connection
    try:
        reader.execute("SELECT count(*) FROM entries").fetchone()
        check(tree, c)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        reader.close()


def test_non_utf8_paths_round_trip(tmp_path):
    root = os.fsencode(tmp_path / "t")
    os.makedirs(root + b"/dir-\xff")
    raw = root + b"/dir-\xff/caf\xe9.bin"
    with open(raw, "wb") as fh:
        fh.write(b"latin-1 name")
    c = ScanCache(os.fsencode(tmp_path) + b"/cache-\xfe.sqlite", clock=FUTURE)
    check(Path(os.fsdecode(root)), c)
    _, _, out = results(Path(os.fsdecode(root)), cache=c)
    (r,) = out
    assert r.cached and r.raw_path == raw and os.fsencode(r.path) == raw
    con = sqlite3.connect(c.path)
    names = [n for (n,) in con.execute("SELECT name FROM entries")]
    paths = [p for (p,) in con.execute("SELECT path FROM dirs")]
    con.close()
    assert names == [b"caf\xe9.bin"] and root + b"/dir-\xff" in paths


def test_not_a_cache_is_refused_and_left_alone(tree, tmp_path, capsys):
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"my precious notes\n" * 100)
    foreign = tmp_path / "app.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE users(name TEXT)")
    con.execute("INSERT INTO users VALUES ('ada')")
    con.commit()
    con.close()
    for path, message in ((junk, "not an SQLite database"), (foreign, "another application")):
        before = path.read_bytes()
        with pytest.raises(ValueError, match=message):
            scan(tree, cache=path)
        assert main(["scan", str(tree), "--cache", str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
        assert path.read_bytes() == before


def test_damaged_cache_never_gives_a_wrong_result(tree, tmp_path):
    path = tmp_path / "c.sqlite"
    c = ScanCache(path, clock=FUTURE)
    check(tree, c)
    # flip one byte inside a stored digest: the row's CRC turns it into a miss
    victim = (tree / "d2" / "f08.bin").read_bytes()
    raw = path.read_bytes()
    digest = hashlib.sha256(victim).digest()
    at = raw.index(digest)
    path.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:])
    summary, out = check(tree, c)
    assert summary.cache_misses == 1 and "f08.bin" not in cached_paths(out)
    assert c.stats()["damaged_entries"] == 0  # rewritten by that scan
    # a cache cut in half: rebuilt with a warning (at open or mid-scan), results right
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            check(tree, ScanCache(path, clock=FUTURE))
        except ValueError as exc:  # or refused clearly: never a wrong result
            assert "cache" in str(exc)
    assert any(issubclass(w.category, CacheWarning) for w in caught)
    check(tree, ScanCache(path, clock=FUTURE))
    summary, _ = check(tree, ScanCache(path, clock=FUTURE))
    assert summary.cache_hits == summary.files


def test_a_cache_that_cannot_be_written_is_set_aside_with_a_warning(tree, tmp_path):
    path = tmp_path / "locked.sqlite"
    c = ScanCache(path, clock=FUTURE, timeout=0.1)
    check(tree, c)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer that holds on
    try:
        with pytest.warns(CacheWarning, match="locked"):
            summary, _ = check(tree, c)
        assert summary.cache_hits == 0 and "locked" in summary.cache["disabled"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    summary, _ = check(tree, c)
    assert summary.cache_hits == summary.files


def test_a_damaged_schema_page(tree, tmp_path, capsys):
    path = tmp_path / "c.sqlite"
    check(tree, ScanCache(path, clock=FUTURE))
    raw = bytearray(path.read_bytes())
    raw[100:4096] = os.urandom(3996)  # page 1 past the header: the schema is unreadable
    path.write_bytes(bytes(raw))
    assert main(["cache", "stats", str(path)]) == 2  # stats only reports it
    assert "damaged" in capsys.readouterr().err and path.read_bytes() == bytes(raw)
    with pytest.warns(CacheWarning, match="damaged"):  # a scan rebuilds it
        summary, _ = check(tree, ScanCache(path, clock=FUTURE))
    assert summary.cache_misses == summary.files
    path.write_bytes(bytes(raw))
    assert main(["cache", "clear", str(path)]) == 0  # and so does clear
    assert ScanCache(path).stats()["entries"] == 0


def test_old_schema_is_rebuilt_newer_refused(tree, tmp_path):
    path = tmp_path / "c.sqlite"
    check(tree, ScanCache(path, clock=FUTURE))
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 0")
    con.commit()
    con.close()
    with pytest.warns(CacheWarning, match="rebuilding"):
        c = ScanCache(path, clock=FUTURE)
    assert c.stats()["entries"] == 0
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="newer"):
        ScanCache(path)


_CHILD = textwrap.dedent("""
    import json, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from adaptive_lab.scanner.cache import ScanCache
    from adaptive_lab.scanner.core import scan
    root, path, latency = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cache = ScanCache(path, clock=lambda: time.time_ns() + 10**10)
    out = []
    profile = {"profile": "latency", "batch_seconds": 1e-9} if latency else {}
    if latency:
        from adaptive_lab.scanner.profiles import profile_by_name
        profile["profile"] = profile_by_name("latency", latency_ms=latency)
    s = scan(root, ThreadPoolExecutor(2), cache=cache, on_result=out.append, **profile)
    print(json.dumps(sorted([r.path, r.status, r.digest, list(r.matches)] for r in out)))
""")


def _child(*args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def _fresh_listing(root: Path) -> list:
    _, _, out = results(root)
    return sorted([r.path, r.status, r.digest, list(r.matches)] for r in out)


def test_two_processes_share_one_cache(tmp_path):
    root = tmp_path / "big"
    for i in range(600):
        p = root / f"d{i % 10}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(64) * (1 + i % 50))
    expected = _fresh_listing(root)
    path = tmp_path / "shared.sqlite"
    for _ in range(2):  # both filling at once, then both reading at once
        procs = [_child(root, path, 0), _child(root, path, 0)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert json.loads(out) == expected
    con = sqlite3.connect(path)
    hits = [h for (h,) in con.execute("SELECT hits FROM runs ORDER BY id")]
    con.close()
    assert hits[-2:] == [600, 600]


def test_threads_share_one_cache_object(tree, cache):
    check(tree, cache)
    boxes: list = []
    threads = [threading.Thread(target=lambda: boxes.append(results(tree, cache=cache)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fresh, _, _ = results(tree)
    assert len(boxes) == 3 and all(view == fresh for view, _, _ in boxes)


def test_kill_9_mid_scan_leaves_a_usable_cache(tmp_path):
    root = tmp_path / "slow"
    for i in range(400):
        p = root / f"d{i % 4}" / f"f{i:03d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"%d" % i * 100)
    path = tmp_path / "killed.sqlite"
    proc = _child(root, path, 20)  # 20 ms per file: about 4 s on two threads
    deadline = time.monotonic() + 60
    written = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            written = con.execute("SELECT count(*) FROM entries").fetchone()[0]
            con.close()
        except sqlite3.Error:
            written = 0
        if written:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the scan ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert 0 < written < 400
    c = ScanCache(path, clock=FUTURE)
    summary, _ = check(root, c)
    assert summary.cache_hits >= written and summary.files == 400
    runs = {r["run"]: r["complete"] for r in c.stats()["recent_runs"]}
    assert runs[1] is False and runs[2] is True


def test_process_pool_and_the_trace_event(tree, tmp_path):
    path = tmp_path / "c.sqlite"
    c = ScanCache(path, clock=FUTURE)
    with ProcessPoolExecutor(2) as ex:
        scan(tree, ex, cache=c)
    trace = tmp_path / "trace.jsonl"
    pool = AdaptiveThreadPoolExecutor(2, policy=None, record=str(trace))
    summary = scan(tree, pool, cache=c)
    pool.shutdown()
    assert summary.cache_hits == summary.files == 15
    (event,) = [e for e in Trace.load(trace).events if e["type"] == "cache"]
    assert event["hits"] == 15 and event["misses"] == 0 and event["hit_rate"] == 1.0


# -- the command line -------------------------------------------------------------------
def test_cli_scan_with_cache_and_the_cache_command(tree, tmp_path, capsys):
    path = tmp_path / "cli.sqlite"
    for p in tree.rglob("*"):  # mtimes in the future: racy whenever the scan runs
        os.utime(p, ns=(time.time_ns(), time.time_ns() + 3600 * 10**9))
    argv = ["scan", str(tree), "--cache", str(path), "--workers", "2", "--json"]
    assert main(argv) == 0
    capsys.readouterr()
    # the real clock: entries are racy (mtime not 2 s older than the scan): all misses
    assert main([*argv, "--signatures", "builtin"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["cache_misses"] == 15 and d["cache"]["racy"] == 15
    assert main(["scan", str(tree), "--cache", str(path), "--cache-trust", "ignore-inode",
                 "--cache-trust", "ignore-ctime", "--workers", "2"]) == 0
    assert "cache" in capsys.readouterr().out
    assert main(["cache", "stats", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 15 and info["runs"] == 3 and info["racy_entries"] == 15
    assert main(["cache", "stats", str(path)]) == 0
    assert "entries" in capsys.readouterr().out
    assert main(["cache", "prune", str(path), "--max-entries", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 4
    assert main(["cache", "clear", str(path)]) == 0
    assert "removed 4" in capsys.readouterr().out
    assert main(["scan", str(tree), "--cache-trust", "ignore-inode"]) == 2
    assert "need --cache" in capsys.readouterr().err
    assert main(["cache", "stats", str(tmp_path / "missing.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["scan", str(tree), "--cache", str(path), "--cache-trust", "nope"])
