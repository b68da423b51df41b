"""Scanner, walk and signatures on real files, real threads and hostile trees."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import socket
import stat
import textwrap
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from adaptive_lab.scanner.core import Scanner, scan
from adaptive_lab.scanner.corpus import make_corpus
from adaptive_lab.scanner.profiles import Profile, profile_by_name
from adaptive_lab.scanner.read import ScanOptions, scan_batch
from adaptive_lab.scanner.signatures import (
    Signature,
    SignatureSet,
    builtin_signatures,
    eicar_bytes,
    load_signatures,
    parse_signatures,
)
from adaptive_lab.scanner.walk import Entry, FileResult, walk

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def by_path(results: list[FileResult]) -> dict[str, FileResult]:
    return {r.path: r for r in results}


def collect(root, executor=None, **kw) -> tuple[list[FileResult], object]:
    out: list[FileResult] = []
    summary = scan(root, executor, on_result=out.append, **kw)
    return out, summary


def run_with_timeout(fn, timeout: float = 20.0):
    """Run fn in a thread; fail (instead of hanging the suite) if it does not finish."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # pragma: no cover - reported below
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"scan did not finish within {timeout} s (hang)"
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- basics ------------------------------------------------------------------------------
@pytest.mark.parametrize("digest", ["sha256", "blake2b", "md5"])
def test_digests_sizes_and_summary(tmp_path, digest):
    contents = {f"d{i % 3}/f{i}.bin": os.urandom(i * 997) for i in range(40)}
    contents["big/large.bin"] = os.urandom(3 * 65536 + 17)  # several chunks
    for rel, data in contents.items():
        write(tmp_path / rel, data)
    with ThreadPoolExecutor(2) as ex:
        results, summary = collect(tmp_path, ex, digest=digest)
    got = by_path(results)
    assert len(results) == len(contents)
    for rel, data in contents.items():
        r = got[str(tmp_path / rel)]
        assert r.status == "ok" and r.reason is None
        assert r.size == len(data)
        assert r.digest == hashlib.new(digest, data).hexdigest()
    assert summary.files == summary.files_seen == len(contents)
    assert summary.bytes == sum(map(len, contents.values()))
    assert summary.skipped == summary.errors == summary.not_scanned == 0
    assert not summary.cancelled and summary.elapsed > 0 and summary.files_per_s > 0
    d = json.loads(json.dumps(summary.to_dict()))
    assert d["files_seen"] == len(contents) and d["digest"] == digest


def test_digest_none_only_reads(tmp_path):
    write(tmp_path / "a", b"hello")
    results, summary = collect(tmp_path, digest=None)
    assert results[0].digest is None and results[0].status == "ok" and summary.bytes == 5


def test_single_file_root(tmp_path):
    f = write(tmp_path / "one.txt", b"x" * 10)
    results, summary = collect(f)
    assert [r.path for r in results] == [str(f)] and summary.files == 1


@pytest.mark.parametrize("kwargs, name", [
    ({"chunk_size": 1024}, "chunk_size"),
    ({"digest": "nope"}, "digest"),
    ({"digest": "shake_128"}, "digest"),
    ({"profile": "nope"}, "profile"),
    ({"max_file_size": -1}, "max_file_size"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"batch_seconds": 0}, "batch_seconds"),
    ({"batch_seconds": float("nan")}, "batch_seconds"),
    ({"batch_seconds": float("inf")}, "batch_seconds"),
])
def test_bad_options_raise_valueerror_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        Scanner(tmp_path, **kwargs)


def test_bad_root_and_executor(tmp_path):
    with pytest.raises(ValueError, match="root"):
        scan(tmp_path / "missing")
    with pytest.raises(ValueError, match="executor"):
        Scanner(tmp_path, executor=object())  # type: ignore[arg-type]


def test_scanner_runs_once(tmp_path):
    s = Scanner(tmp_path)
    s.run()
    with pytest.raises(RuntimeError):
        s.run()


# -- signatures ------------------------------------------------------------------------------
def test_eicar_detected_and_clean_files_not_flagged(tmp_path):
    info = make_corpus(tmp_path / "c", files=300, dirs=7, seed=3, eicar=4)
    results, summary = collect(info.root, signatures="builtin")
    flagged = {os.path.relpath(r.path, info.root) for r in results if r.matches}
    assert flagged == set(info.eicar) and len(flagged) == 4
    assert all(r.matches == ("eicar-test-file",) for r in results if r.matches)
    assert summary.matched_files == 4 and summary.match_counts == {"eicar-test-file": 4}
    assert summary.files == 300


@pytest.mark.parametrize("extra", [0, 20], ids=["find", "regex"])
@pytest.mark.parametrize("offset", [65536 - 30, 2 * 65536 - 1, 65536, 0, 5 * 65536 - 68])
def test_match_straddling_chunks_is_found(tmp_path, offset, extra):
    eicar = eicar_bytes()
    data = bytearray(os.urandom(5 * 65536))
    data[offset:offset + len(eicar)] = eicar
    write(tmp_path / "f.bin", bytes(data))
    write(tmp_path / "clean.bin", os.urandom(5 * 65536))
    sigs = list(builtin_signatures().signatures)
    sigs += [Signature(f"filler-{i}", f"never-present-{i:04d}".encode()) for i in range(extra)]
    sigset = SignatureSet(sigs)
    assert sigset._use_find is (extra == 0)
    got = by_path(collect(tmp_path, signatures=sigset)[0])
    assert got[str(tmp_path / "f.bin")].matches == ("eicar-test-file",)
    assert got[str(tmp_path / "clean.bin")].matches == ()


@pytest.mark.parametrize("extra", [0, 20], ids=["find", "regex"])
def test_overlapping_and_prefix_patterns_all_reported(extra):
    sigs = [("abc", b"abc"), ("bcd", b"bcd"), ("ab", b"ab"), ("zz", b"zz")]
    sigs += [(f"x{i}", f"qq{i}qq".encode()) for i in range(extra)]
    s = load_signatures(sigs)
    assert s.find(b"..abcd..") == {"abc", "bcd", "ab"}
    assert s.find(b"ab") == {"ab"} and s.find(b"none") == set()
    m = s.matcher()
    for part in (b"xxa", b"b", b"cdz", b"z"):
        m.feed(part)
    assert m.found == {"abc", "bcd", "ab", "zz"}
    assert pickle.loads(pickle.dumps(s)).find(b"abcd") == {"abc", "bcd", "ab"}


def test_signature_file_format(tmp_path):
    text = textwrap.dedent("""\
        # comment
        one: hex: 58 35 4f
        two: text: hello: world
        three:HEX:0a0B
        """)
    s = parse_signatures(text)
    assert {x.name: x.pattern for x in s.signatures} == {
        "one": b"X5O", "two": b"hello: world", "three": b"\n\x0b"}
    f = tmp_path / "sigs.txt"
    f.write_text(text)
    assert len(load_signatures(str(f))) == 3
    assert "eicar-test-file" in {x.name for x in load_signatures("builtin").signatures}


@pytest.mark.parametrize("line, message", [
    ("no colon here", "line 2"),
    ("x: hex: zz", "line 2.*hex"),
    ("x: base64: AAAA", "line 2.*kind"),
    ("x: text:   ", "line 2.*empty"),
    (": hex: 41", "line 2.*name"),
    ("a: hex: 42", "line 2.*duplicate"),
])
def test_bad_signature_lines_name_the_line(line, message):
    with pytest.raises(ValueError, match=message):
        parse_signatures("a: hex: 41\n" + line + "\n")


def test_missing_signature_file_is_valueerror(tmp_path):
    with pytest.raises(ValueError, match="signatures"):
        load_signatures(str(tmp_path / "nope.txt"))


# -- hostile trees ----------------------------------------------------------------------------
def make_deep_chain(root: Path, depth: int, name: bytes = b"d") -> bytes:
    """A chain of ``depth`` nested directories built with dir_fd (beyond PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            new = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = new
        out = os.open(b"bottom.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"deep")
        os.close(out)
    finally:
        os.close(fd)
    return os.fsencode(root) + (b"/" + name) * depth + b"/bottom.txt"


def remove_deep_chain(root: Path, name: bytes = b"dd") -> None:
    """Remove the chain bottom-up through directory fds (no deep paths, no recursion);
    pytest's own recursive cleanup would hit the recursion limit."""
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        while True:
            try:
                fds.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fds[-1]))
            except FileNotFoundError:
                break
        os.unlink(b"bottom.txt", dir_fd=fds[-1])
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir(name, dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)


@pytest.fixture
def fast_tmp(tmp_path):
    """A directory on tmpfs when there is one: removing 3000 nested directories takes
    ~0.1 s there and ~10 s on this machine's ext4."""
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    path = Path(tempfile.mkdtemp(dir=shm)) if os.access(shm, os.W_OK) else tmp_path
    yield path
    if path != tmp_path:
        shutil.rmtree(path)


def test_tree_3000_levels_deep_with_paths_beyond_path_max(fast_tmp):
    tmp_path = fast_tmp
    expected = make_deep_chain(tmp_path, 3000, b"dd")
    assert len(expected) > 8192  # well beyond PATH_MAX
    write(tmp_path / "top.txt", b"top")
    try:
        results, summary = run_with_timeout(lambda: collect(tmp_path))
    finally:
        remove_deep_chain(tmp_path)
    assert not (tmp_path / "dd").exists()
    got = {r.raw_path: r for r in results}
    assert got[expected].status == "ok"
    assert got[expected].digest == hashlib.sha256(b"deep").hexdigest()
    assert summary.files == 2 and summary.errors == 0


def test_fifo_socket_and_device_are_skipped_never_opened(tmp_path):
    write(tmp_path / "regular.txt", b"data")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    expected = {"fifo": "not a regular file: fifo", "sock": "not a regular file: socket"}
    if IS_ROOT:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        expected["null"] = "not a regular file: character device"
    try:
        results, summary = run_with_timeout(lambda: collect(tmp_path), timeout=20)
    finally:
        sock.close()
    got = by_path(results)
    for name, reason in expected.items():
        r = got[str(tmp_path / name)]
        assert (r.status, r.reason) == ("skipped", reason)
    assert got[str(tmp_path / "regular.txt")].status == "ok"
    assert summary.files_seen == len(expected) + 1


def test_file_replaced_by_fifo_after_walk_does_not_hang(tmp_path):
    fifo = tmp_path / "was-a-file"
    os.mkfifo(fifo)
    entry = Entry(os.fsencode(fifo), 10, 0)  # the walk saw a regular file here
    results, _, left = run_with_timeout(lambda: scan_batch([entry], ScanOptions()), 10)
    assert left == 0 and results[0].status == "skipped"
    assert "changed type" in results[0].reason


def test_symlinks_are_not_followed_by_default(tmp_path):
    write(tmp_path / "real/file.txt", b"x")
    os.symlink(tmp_path / "real", tmp_path / "dirlink")
    os.symlink(tmp_path / "real/file.txt", tmp_path / "filelink")
    results, summary = collect(tmp_path)
    got = by_path(results)
    assert got[str(tmp_path / "dirlink")].reason == "symlink not followed"
    assert got[str(tmp_path / "filelink")].reason == "symlink not followed"
    assert summary.files == 1 and summary.skipped == 2


def test_follow_symlinks_detects_loops_and_stays_inside_root(tmp_path):
    outside = tmp_path / "outside"
    write(outside / "secret.txt", b"secret")
    root = tmp_path / "root"
    write(root / "a/b/file.txt", b"inside")
    os.symlink("..", root / "a/b/up")  # loop to a
    os.symlink(root, root / "a/self")  # loop to root
    os.symlink(outside, root / "out")  # escapes the root
    os.symlink(outside / "secret.txt", root / "outfile")
    os.symlink("missing", root / "broken")
    os.symlink("a/b/file.txt", root / "filelink")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    results, summary = run_with_timeout(lambda: collect(root, follow_symlinks=True))
    got = by_path(results)
    assert all(str(outside) not in r.path and "secret" not in r.path for r in results)
    assert "loop" in got[str(root / "a/b/up")].reason
    assert "loop" in got[str(root / "a/self")].reason
    assert got[str(root / "out")].reason == "symlink outside root"
    assert got[str(root / "outfile")].reason == "symlink outside root"
    assert got[str(root / "broken")].reason == "broken symlink"
    assert got[str(root / "loop1")].reason == "symlink loop"
    assert got[str(root / "filelink")].status == "ok"
    assert got[str(root / "filelink")].digest == hashlib.sha256(b"inside").hexdigest()
    assert summary.files == 2 and summary.files_seen == len(results)


def test_over_max_file_size_is_skipped(tmp_path):
    write(tmp_path / "small", b"x" * 100)
    write(tmp_path / "big", b"x" * 101)
    results, summary = collect(tmp_path, max_file_size=100)
    got = by_path(results)
    assert got[str(tmp_path / "big")][4:6] == ("skipped", "over max_file_size")
    assert got[str(tmp_path / "big")].size == 101
    assert got[str(tmp_path / "small")].status == "ok"
    assert summary.reasons == {"over max_file_size": 1}


def test_non_utf8_names_are_kept_and_reported(tmp_path):
    raw_dir = os.fsencode(tmp_path) + b"/dir-\xff"
    os.mkdir(raw_dir)
    raw = raw_dir + b"/caf\xe9.bin"
    with open(raw, "wb") as fh:
        fh.write(b"latin-1 name")
    results, _ = collect(tmp_path)
    (r,) = results
    assert r.raw_path == raw and os.fsencode(r.path) == raw and r.status == "ok"
    d = json.loads(json.dumps(r.to_dict()))
    assert d["raw_path_hex"] == raw.hex() and "\\xe9" in d["path"]


@dataclass(frozen=True)
class VanishingProfile(Profile):
    """Test double: deletes the file just before the scanner opens it."""

    def before_read(self, path: bytes, index: int, started: float) -> None:
        if path.endswith(b"victim.bin"):
            os.unlink(path)


@dataclass(frozen=True)
class GrowingProfile(Profile):
    """Test double: appends to the file while the scanner is reading it."""

    def inspect(self, data: bytes, path: bytes) -> None:
        if b"grows" in path:
            with open(path, "ab") as fh:
                fh.write(b"more")


def test_vanished_file_is_an_error_record(tmp_path):
    write(tmp_path / "victim.bin", b"soon gone")
    write(tmp_path / "keeper.bin", b"stays")
    results, summary = collect(tmp_path, profile=VanishingProfile("vanish"))
    got = by_path(results)
    assert got[str(tmp_path / "victim.bin")][4:6] == ("error", "vanished")
    assert got[str(tmp_path / "keeper.bin")].status == "ok"
    assert summary.errors == 1 and summary.files_seen == 2


@pytest.mark.parametrize("size", [1000, 300_000])  # single read, chunked read
def test_file_changed_during_scan_is_reported(tmp_path, size):
    write(tmp_path / "grows.bin", os.urandom(size))
    write(tmp_path / "still.bin", os.urandom(size))
    results, summary = collect(tmp_path, profile=GrowingProfile("grow"))
    got = by_path(results)
    assert got[str(tmp_path / "grows.bin")][4:6] == ("error", "changed during scan")
    assert got[str(tmp_path / "still.bin")].status == "ok"
    assert summary.reasons == {"changed during scan": 1}


@dataclass(frozen=True)
class RewritingProfile(Profile):
    """Test double: rewrites the file in place (same size) after the first chunk."""

    def inspect(self, data: bytes, path: bytes) -> None:
        if b"rewritten" in path:
            size = os.path.getsize(path)
            with open(path, "r+b") as fh:
                fh.write(b"\0" * size)
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


@dataclass(frozen=True)
class RecordingProfile(Profile):
    """Test double: records the first-chunk length ``inspect`` sees per file."""

    seen: ClassVar[list[str]] = []

    def inspect(self, data: bytes, path: bytes) -> None:
        self.seen.append(f"{os.path.basename(path).decode()} {len(data)}")


def test_the_profile_inspects_every_files_first_chunk_once(tmp_path):
    root = tmp_path / "tree"
    write(root / "empty", b"")
    write(root / "small", b"s" * 100)
    write(root / "large", b"L" * 300_000)
    RecordingProfile.seen.clear()
    _, summary = collect(root, profile=RecordingProfile("rec"))
    assert summary.files == 3
    assert sorted(RecordingProfile.seen) == ["empty 0", "large 65536", "small 100"]


def test_same_size_rewrite_of_a_chunked_file_is_reported(tmp_path):
    write(tmp_path / "rewritten.bin", os.urandom(300_000))
    results, _ = collect(tmp_path, profile=RewritingProfile("rewrite"))
    assert [r[4:6] for r in results] == [("error", "changed during scan")]


def test_reader_stops_on_a_device_swapped_in_after_the_walk():
    # the walk saw a regular file; the name now holds /dev/zero, which never ends
    entry = Entry(b"/dev/zero", -1, 0)
    results, _, _ = run_with_timeout(lambda: scan_batch([entry], ScanOptions()), 10)
    assert results[0][4:6] == ("skipped", "not a regular file: changed type during scan")


def test_walk_without_sizes_makes_no_stat_and_readers_measure(tmp_path):
    write(tmp_path / "a.bin", b"x" * 70_000)
    write(tmp_path / "b.bin", b"y" * 10)
    items = sorted(walk(tmp_path, sizes=False))
    assert [(os.path.basename(p), size) for p, size, _ in items] == [
        (b"a.bin", -1), (b"b.bin", -1)]
    # a size limit needs the stat: sizes are measured whatever ``sizes`` says
    assert sorted(i[1] for i in walk(tmp_path, sizes=False, max_file_size=10 ** 6)
                  ) == [10, 70_000]
    results, _, _ = scan_batch([Entry(*i) for i in items], ScanOptions())
    assert [(r.size, r.status) for r in results] == [(70_000, "ok"), (10, "ok")]
    assert results[0].digest == hashlib.sha256(b"x" * 70_000).hexdigest()


def scan_as_nobody(root: Path) -> dict:
    """Fork; the child drops to uid/gid 65534 (as root, permissions would not stop
    reads), scans ``root`` on a ThreadPoolExecutor and sends the summary back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(r)
            if IS_ROOT:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            with ThreadPoolExecutor(2) as ex:
                data = json.dumps(scan(root, ex).to_dict()).encode()
            os.write(w, data)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("scan as nobody hung")
        time.sleep(0.02)
    with os.fdopen(r, "rb") as fh:
        out = fh.read()
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(out)


def test_unreadable_file_and_directory_are_error_records():
    """As root, permissions do not stop reads: the scan runs as 'nobody' in a child."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="adaptive-lab-perm-"))
    try:
        base.chmod(0o755)
        write(base / "ok.txt", b"fine").chmod(0o644)
        write(base / "secret.txt", b"no").chmod(0o000)
        (base / "locked").mkdir()
        write(base / "locked/inner.txt", b"hidden")
        (base / "locked").chmod(0o000)
        summary = scan_as_nobody(base)
        assert summary["files"] == 1 and summary["errors"] == 2
        assert summary["reasons"] == {"permission denied": 1,
                                      "cannot list directory: permission denied": 1}
    finally:
        (base / "locked").chmod(0o755)
        shutil.rmtree(base)


def test_every_name_is_accounted_for(tmp_path):
    for i in range(30):
        write(tmp_path / f"sub{i % 4}/f{i}", os.urandom(i * 100))
    os.mkfifo(tmp_path / "sub1/fifo")
    os.symlink("f1", tmp_path / "sub1/link")
    write(tmp_path / "huge", b"x" * 5000)
    names = sum(len(files) for _, dirs, files in os.walk(tmp_path)) + sum(
        1 for _, dirs, _ in os.walk(tmp_path) for d in dirs if os.path.islink(d))
    results, summary = collect(tmp_path, max_file_size=4000)
    assert summary.files_seen == len(results) == names == 33
    assert (summary.files, summary.skipped, summary.errors) == (30, 3, 0)


# -- executors, batching, backpressure ----------------------------------------------------------
class CountingExecutor(Executor):
    """Test double: a ThreadPoolExecutor that records batch sizes and tasks in flight."""

    def __init__(self, workers: int) -> None:
        self.inner = ThreadPoolExecutor(workers)
        self.max_workers = workers
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.batch_sizes: list[int] = []

    def submit(self, fn, /, *args, **kwargs):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.batch_sizes.append(len(args[0]))
        fut = self.inner.submit(fn, *args, **kwargs)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _):
        with self.lock:
            self.in_flight -= 1

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


class FlakyExecutor(CountingExecutor):
    """Test double: every other task fails inside the executor."""

    def submit(self, fn, /, *args, **kwargs):
        if len(self.batch_sizes) % 2:
            self.batch_sizes.append(len(args[0]))
            fut = Future()
            fut.set_exception(RuntimeError("worker died"))
            return fut
        return super().submit(fn, *args, **kwargs)


def test_failed_tasks_become_error_records_for_each_file(tmp_path):
    for i in range(200):
        write(tmp_path / f"f{i}", b"x" * 100)
    with FlakyExecutor(2) as ex:
        results, summary = collect(tmp_path, ex)
    failed = [r for r in results if r.status == "error"]
    assert failed and all(r.reason == "task failed: RuntimeError" for r in failed)
    assert summary.files_seen == len(results) == 200
    assert summary.errors == len(failed) and summary.files == 200 - len(failed)


def test_small_files_are_batched_and_in_flight_is_bounded(tmp_path):
    for i in range(3000):
        write(tmp_path / f"d{i % 10}/f{i}", b"x" * 100)
    with CountingExecutor(2) as ex:  # 10 ms batches: >= 32 files even on a loaded host
        _, summary = collect(tmp_path, ex, batch_seconds=0.01)
    assert summary.files == 3000 and sum(ex.batch_sizes) == 3000
    assert summary.max_in_flight == 2 * 2 + 4 and ex.peak <= summary.max_in_flight
    assert max(ex.batch_sizes) >= 32  # batches sized by time, not one file per task
    assert summary.batches == len(ex.batch_sizes) < 3000 / 8


def test_latency_bound_files_go_one_per_task_and_fill_the_window(tmp_path):
    for i in range(120):
        write(tmp_path / f"f{i}", b"x")
    with CountingExecutor(8) as ex:
        _, summary = collect(tmp_path, ex, profile=profile_by_name("latency", latency_ms=4),
                             max_in_flight=10)
    assert summary.files == 120 and ex.peak == 10
    # one file per batch until the first completes, then the estimate says one per batch
    assert ex.batch_sizes[-60:] == [1] * 60


def test_batches_keep_their_size_unless_the_cost_moves_over_3x(tmp_path):
    # 2 threads taking turns on the GIL double a batch's run time: the batch size must
    # not follow (a policy compares tasks/s across pool sizes), a 20x change must.
    s = Scanner(tmp_path)
    files = [FileResult("f", 0, None, (), "ok", None, b"f")] * 10
    s._learn(files, 0.001)  # 100 us per file
    assert s._batch_cost == pytest.approx(1e-4)
    for _ in range(30):
        s._learn(files, 0.002)
    assert s._sec_per_unit == pytest.approx(2e-4, rel=0.01)
    assert s._batch_cost == pytest.approx(1e-4)
    for _ in range(30):
        s._learn(files, 0.02)
    assert s._sec_per_unit / 3 <= s._batch_cost and s._batch_cost > 3e-4


def test_default_batch_seconds_depend_on_the_executor(tmp_path):
    with ThreadPoolExecutor(1) as threads:
        assert Scanner(tmp_path, threads).batch_seconds == 0.0015
    with ProcessPoolExecutor(1) as procs:
        assert Scanner(tmp_path, procs).batch_seconds == 0.01
    assert Scanner(tmp_path, batch_seconds=0.2).batch_seconds == 0.2


def test_a_do_nothing_profile_skips_the_hooks_but_keeps_its_name(tmp_path):
    write(tmp_path / "f", b"x")
    s = Scanner(tmp_path, profile="local")
    assert s.options.profile is None and s.summary.profile == "local"
    # a subclass (its hooks may act) and a real workload keep their hooks
    assert Scanner(tmp_path, profile=VanishingProfile("v")).options.profile is not None
    assert Scanner(tmp_path, profile="cpu").options.profile is not None


def test_process_pool_gives_the_same_results(tmp_path):
    for i in range(50):
        write(tmp_path / f"f{i}", os.urandom(i * 300))
    threaded = {r.path: r.digest for r in collect(tmp_path, signatures="builtin")[0]}
    with ProcessPoolExecutor(2) as ex:
        results, summary = collect(tmp_path, ex, signatures="builtin")
    assert {r.path: r.digest for r in results} == threaded and summary.files == 50


def test_default_executor_is_adaptive_pool_and_leaves_no_threads(tmp_path):
    for i in range(200):
        write(tmp_path / f"f{i}", os.urandom(100))
    before = set(threading.enumerate())
    summary = scan(tmp_path)
    assert summary.executor == "AdaptiveThreadPoolExecutor" and summary.files == 200
    assert set(threading.enumerate()) - before == set()


# -- cancellation ----------------------------------------------------------------------------
def slow_tree(tmp_path: Path, n: int = 400) -> Path:
    for i in range(n):
        write(tmp_path / f"d{i % 5}/f{i}", b"x" * 10)
    return tmp_path


def test_cancel_event_stops_promptly_and_leaves_no_threads(tmp_path):
    root = slow_tree(tmp_path)
    event = threading.Event()
    seen: list[FileResult] = []

    def on_result(r: FileResult) -> None:
        seen.append(r)
        event.set()

    before = set(threading.enumerate())
    t0 = time.monotonic()
    summary = scan(root, on_result=on_result, cancel_event=event,
                   profile=profile_by_name("latency", latency_ms=50))
    elapsed = time.monotonic() - t0
    assert summary.cancelled and elapsed < 1.5
    assert 1 <= summary.files < 400 and summary.files == len(seen)
    assert summary.files_seen == summary.files + summary.not_scanned
    assert set(threading.enumerate()) - before == set()


def test_break_out_of_results_cancels(tmp_path):
    root = slow_tree(tmp_path)
    before = set(threading.enumerate())
    scanner = Scanner(root, profile=profile_by_name("latency", latency_ms=50))
    t0 = time.monotonic()
    it = scanner.results()
    next(it)
    it.close()
    assert time.monotonic() - t0 < 1.5
    assert scanner.summary.cancelled and scanner.summary.not_scanned > 0
    assert set(threading.enumerate()) - before == set()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="SIGINT is delivered to the main thread")
def test_ctrl_c_stops_promptly_and_leaves_no_threads(tmp_path):
    root = slow_tree(tmp_path)
    before = set(threading.enumerate())
    scanner = Scanner(root, profile=profile_by_name("latency", latency_ms=50))
    sent: list[bool] = []

    def interrupt_once(_: FileResult) -> None:
        # Ctrl-C while the scan is surely running (after its first result), not at a
        # fixed time: a fast pool may have finished 0.3 s in
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        scanner.run(on_result=interrupt_once)
    assert time.monotonic() - t0 < 1.8
    assert scanner.summary.cancelled
    s = scanner.summary
    assert s.files_seen == s.files + s.not_scanned and s.not_scanned > 0
    assert set(threading.enumerate()) - before == set()


def test_cancel_with_user_executor_waits_only_for_running_batches(tmp_path):
    root = slow_tree(tmp_path)
    event = threading.Event()
    with ThreadPoolExecutor(4) as ex:
        t0 = time.monotonic()
        summary = scan(root, ex, cancel_event=event, on_result=lambda r: event.set(),
                       profile=profile_by_name("latency", latency_ms=50))
        assert time.monotonic() - t0 < 1.5
        assert ex._work_queue.qsize() == 0  # nothing of ours left queued
    assert summary.cancelled and summary.files_seen == summary.files + summary.not_scanned


def test_walk_yields_one_item_per_name(tmp_path):
    write(tmp_path / "a/b/c.txt", b"c")
    os.mkfifo(tmp_path / "a/fifo")
    items = list(walk(tmp_path))
    kinds = sorted(type(i).__name__ for i in items)
    assert kinds == ["FileResult", "tuple"]
    (entry,) = [i for i in items if type(i) is tuple]
    assert Entry(*entry) == (os.fsencode(tmp_path / "a/b/c.txt"), 1, 0)
