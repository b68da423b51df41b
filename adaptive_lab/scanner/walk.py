"""The scanner's hostile-tree-safe half: an iterative walk and the per-file read path.

The walk keeps a stack of directory paths (never recursion, so any depth works) and
lists one directory at a time through a directory file descriptor, so at most one
descriptor is open. Paths are ``bytes`` throughout, so names that are not valid UTF-8
survive unchanged. Paths longer than the kernel's ``PATH_MAX`` (4096) are opened
component-group by component-group with ``dir_fd`` (``openat``), see
:func:`open_path`.

It never opens anything but directories: regular files become :class:`Entry` items for
the readers; FIFOs, sockets, devices, symlinks that are not followed, loops, links
leading outside the root and files over the size limit become ``skipped``
:class:`FileResult` records; directories that cannot be listed become ``error``
records. Every name the walk sees yields exactly one item.

:func:`scan_batch` is the read path the executor runs: module-level and picklable
(process pools work), files opened with ``O_NONBLOCK`` (a file swapped for a FIFO
after the walk cannot block a worker), read in chunks of at least 64 KiB (hashlib
releases the GIL only for large buffers) into one reused buffer, and checked with
``fstat`` after reading (see :func:`scan_batch` for what counts as a change).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from adaptive_lab.scanner.profiles import Profile
    from adaptive_lab.scanner.signatures import SignatureSet

__all__ = ["CancelToken", "Entry", "FileResult", "ScanOptions", "check_digest",
           "error_reason", "open_path", "scan_batch", "walk"]

# Stay well below PATH_MAX (4096) when handing a path to one system call.
_SAFE_PATH = 4000
_DIR_STEP_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_SHORT_PATH = 1024  # shorter directory paths are listed by path, longer through fds
_FSENC, _FSERR = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
MIN_CHUNK = 1 << 16
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


class FileResult(NamedTuple):
    """One file's outcome.

    ``status`` is ``"ok"`` (read and hashed), ``"skipped"`` (deliberately not read;
    ``reason`` says why) or ``"error"`` (reading failed; ``reason`` says how).
    ``path`` is the file name as text (undecodable bytes kept via surrogateescape,
    ``os.fsencode(path) == raw_path``); ``raw_path`` is the exact bytes.
    """

    path: str
    size: int
    digest: str | None
    matches: tuple[str, ...]
    status: str
    reason: str | None
    raw_path: bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``raw_path`` as hex only when the name is not UTF-8)."""
        d = {"path": self.path, "size": self.size, "digest": self.digest,
             "matches": list(self.matches), "status": self.status, "reason": self.reason}
        try:
            self.raw_path.decode("utf-8")
        except UnicodeDecodeError:
            d["path"] = self.raw_path.decode("utf-8", "backslashreplace")
            d["raw_path_hex"] = self.raw_path.hex()
        return d


class Entry(NamedTuple):
    """A regular file the walk found: its path, size at walk time (``-1`` when the walk
    was asked not to ``stat`` files), running index.

    The walk yields plain ``(path, size, index)`` tuples in this order (a named tuple
    costs about 1 us more per file); ``Entry`` documents them and builds them by hand.
    """

    path: bytes
    size: int
    index: int


def skipped(path: bytes, reason: str, size: int = 0) -> FileResult:
    """A ``skipped`` record (a size the walk did not measure, -1, is reported as 0)."""
    return FileResult(os.fsdecode(path), max(size, 0), None, (), "skipped", reason, path)


def failed(path: bytes, reason: str, size: int = 0) -> FileResult:
    """An ``error`` record (a size the walk did not measure, -1, is reported as 0)."""
    return FileResult(os.fsdecode(path), max(size, 0), None, (), "error", reason, path)


_ERRNO_REASONS = {
    errno.ENOENT: "vanished",
    errno.ENOTDIR: "vanished",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "path too long",
    errno.ELOOP: "replaced by a symlink",
    errno.EIO: "i/o error",
}


def error_reason(exc: OSError) -> str:
    """A short, stable reason for an OSError (bounded set, good for counting)."""
    reason = _ERRNO_REASONS.get(exc.errno or 0)
    if reason:
        return reason
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"os error {code}"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "unknown file type"


def open_path(path: bytes, flags: int) -> int:
    """``os.open(path, flags)`` that also works for paths longer than PATH_MAX.

    Long paths are split into groups of components shorter than 4000 bytes; each group
    is opened relative to the previous one's descriptor (``openat``), so no single call
    sees an over-long path. Intermediate descriptors are closed before returning.
    """
    if len(path) < _SAFE_PATH:
        return os.open(path, flags)
    groups: list[bytes] = []
    cur: list[bytes] = []
    length = 0
    for part in path.split(b"/"):
        if cur and length + 1 + len(part) >= _SAFE_PATH:
            groups.append(b"/".join(cur) or b"/")
            cur, length = [], 0
        cur.append(part)
        length += len(part) + 1
    groups.append(b"/".join(cur))
    fd: int | None = None
    try:
        for group in groups[:-1]:
            new = os.open(group, _DIR_STEP_FLAGS, dir_fd=fd)
            if fd is not None:
                os.close(fd)
            fd = new
        return os.open(groups[-1], flags, dir_fd=fd)
    finally:
        if fd is not None:
            os.close(fd)


def _inside(real: bytes, root_real: bytes) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(b"/") + b"/")


def walk(root: str | bytes | os.PathLike, *, follow_symlinks: bool = False,
         max_file_size: int | None = None, sizes: bool = True
         ) -> Iterator[tuple | FileResult]:
    """Yield ``(path, size, index)`` per regular file (see :class:`Entry`) and a
    :class:`FileResult` per other name.

    Parameters
    ----------
    root
        A directory (or a single regular file) to walk.
    follow_symlinks
        Follow symlinks to files and directories that resolve inside ``root``; each
        directory is entered once, identified by ``(st_dev, st_ino)``, so loops end.
    max_file_size
        Regular files larger than this many bytes are reported as skipped.
    sizes
        ``stat`` each regular file for its size (default). With ``False`` (and no
        ``max_file_size``) the size is ``-1`` and files are told apart by the directory
        entry's type alone, with no system call per file: the scanner's readers measure
        the size anyway, and a ``stat`` in the walking thread is one more GIL hand-off
        per file (it made a warm two-thread scan 20 % slower).
    """
    root_b = os.fsencode(root)
    if len(root_b) > 1:
        root_b = root_b.rstrip(b"/") or b"/"
    try:
        st = os.stat(root_b)
    except OSError as exc:
        raise ValueError(f"root: cannot scan {os.fsdecode(root_b)!r}: "
                         f"{exc.strerror}") from None
    counter = [0]  # running index of regular files, shared with _list_dir
    if not stat.S_ISDIR(st.st_mode):
        if not stat.S_ISREG(st.st_mode):
            yield skipped(root_b, f"not a regular file: {_kind(st.st_mode)}")
        elif max_file_size is not None and st.st_size > max_file_size:
            yield skipped(root_b, "over max_file_size", st.st_size)
        else:
            yield (root_b, st.st_size, 0)
        return
    root_real = os.path.realpath(root_b) if follow_symlinks else b""
    visited = {(st.st_dev, st.st_ino)} if follow_symlinks else set()
    sep = b"" if root_b.endswith(b"/") else b"/"
    stack = [root_b]
    need_size = sizes or max_file_size is not None
    # Short paths are listed with scandir(path) (bytes names, cheapest). Long ones go
    # through a descriptor; the last one listed stays open because the next directory
    # popped is usually its child (depth first) and is opened relative to it, so deep
    # chains cost O(1) per level and paths beyond PATH_MAX work.
    last_path, last_fd = b"", -1
    try:
        while stack:
            top = stack.pop()
            fd = -1
            try:
                if len(top) < _SHORT_PATH:
                    it = os.scandir(top)
                else:
                    parent, _, name = top.rpartition(b"/")
                    if parent == last_path and last_fd >= 0:
                        fd = os.open(name, _DIR_LIST_FLAGS, dir_fd=last_fd)
                    else:
                        fd = open_path(top, _DIR_LIST_FLAGS)
                    it = os.scandir(fd)
            except OSError as exc:
                if fd >= 0:
                    os.close(fd)
                yield failed(top, "cannot list directory: " + error_reason(exc))
                continue
            if fd >= 0:
                if last_fd >= 0:
                    os.close(last_fd)
                last_path, last_fd = top, fd
            prefix = (top + sep if top is root_b else top + b"/") if fd >= 0 else None
            yield from _list_dir(it, top, prefix, stack, follow_symlinks, max_file_size,
                                 root_real, visited, counter, need_size)
    finally:
        if last_fd >= 0:
            os.close(last_fd)


def _list_dir(it: Any, top: bytes, prefix: bytes | None, stack: list[bytes],
              follow_symlinks: bool, max_file_size: int | None, root_real: bytes,
              visited: set, counter: list[int], need_size: bool = True
              ) -> Iterator[tuple | FileResult]:
    """List one directory (``prefix`` None: bytes scandir, else str names from a fd):
    yield its files and skips, push its subdirectories. The hot loop of the scanner's
    calling thread, so it avoids per-file Python calls where it can."""
    index = counter[0]
    subdirs: list[bytes] = []
    limit = max_file_size if max_file_size is not None else -1
    try:
        with it:
            for e in it:
                path = e.path if prefix is None else prefix + e.name.encode(_FSENC, _FSERR)
                try:
                    if e.is_file(follow_symlinks=False):
                        if not need_size:
                            yield (path, -1, index)
                            index += 1
                            continue
                        size = e.stat(follow_symlinks=False).st_size
                        if limit < 0 or size <= limit:
                            yield (path, size, index)
                            index += 1
                        else:
                            yield skipped(path, "over max_file_size", size)
                    elif e.is_dir(follow_symlinks=False):
                        if follow_symlinks:
                            st = e.stat(follow_symlinks=False)
                            key = (st.st_dev, st.st_ino)
                            if key in visited:
                                yield skipped(path, "directory already visited")
                                continue
                            visited.add(key)
                        subdirs.append(path)
                    elif e.is_symlink():
                        if not follow_symlinks:
                            yield skipped(path, "symlink not followed")
                            continue
                        item = _follow(e, path, root_real, visited, max_file_size, index)
                        if isinstance(item, bytes):
                            subdirs.append(item)
                        else:
                            if type(item) is not FileResult:
                                index += 1
                            yield item
                    else:
                        st = e.stat(follow_symlinks=False)
                        yield skipped(path, f"not a regular file: {_kind(st.st_mode)}")
                except OSError as exc:
                    yield failed(path, error_reason(exc))
    except OSError as exc:
        yield failed(top, "cannot list directory: " + error_reason(exc))
    finally:
        counter[0] = index
    stack.extend(reversed(subdirs))


def _follow(e: os.DirEntry, path: bytes, root_real: bytes, visited: set,
            max_file_size: int | None, index: int) -> bytes | tuple | FileResult:
    """Resolve a symlink for a following walk: a dir path to push, an Entry or a skip."""
    try:
        st = e.stat(follow_symlinks=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return skipped(path, "symlink loop")
        if exc.errno == errno.ENOENT:
            return skipped(path, "broken symlink")
        return failed(path, error_reason(exc))
    if len(path) >= _SAFE_PATH:
        return skipped(path, "symlink path too long to check")
    if not _inside(os.path.realpath(path), root_real):
        return skipped(path, "symlink outside root")
    if stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if key in visited:
            return skipped(path, "symlink loop (directory already visited)")
        visited.add(key)
        return path
    if stat.S_ISREG(st.st_mode):
        if max_file_size is not None and st.st_size > max_file_size:
            return skipped(path, "over max_file_size", st.st_size)
        return (path, st.st_size, index)
    return skipped(path, f"not a regular file: {_kind(st.st_mode)}")


# -- the read path (runs in the executor's workers) ------------------------------------
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
    new_hash = _hasher(options.digest)
    buf = bytearray(max(options.chunk_size, MIN_CHUNK))
    view = memoryview(buf)
    flags = _READ_FLAGS if options.follow_symlinks else _READ_FLAGS | os.O_NOFOLLOW
    out: list[FileResult] = []
    append = out.append
    for i, item in enumerate(items):
        if token is not None and token.is_set():
            return out, time.perf_counter() - t0, len(items) - i
        append(_scan_file(item, options, flags, new_hash, buf, view))
    return out, time.perf_counter() - t0, 0


_new_result = tuple.__new__  # FileResult(...) without the namedtuple's Python __new__


def _scan_file(item: Entry, options: ScanOptions, flags: int,
               new_hash: Callable[[], Any] | None, buf: bytearray, view: memoryview
               ) -> FileResult:
    """Read one file: one ``open``, ``readv`` and ``fstat`` for a file smaller than
    the buffer (most files; each system call is a GIL hand-off between threads)."""
    path, walk_size, index = item
    profile = options.profile
    if profile is not None:
        profile.before_read(path, index, options.started)
    try:
        fd = os.open(path, flags) if len(path) < _SAFE_PATH else open_path(path, flags)
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
        return _new_result(FileResult, (os.fsdecode(path), total, digest, matches, "ok",
                                        None, path))
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
