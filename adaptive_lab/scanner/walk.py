"""The scanner's hostile-tree-safe walk, and the records it and the readers produce.

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

The read path the executor's workers run is :mod:`adaptive_lab.scanner.read`.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["SAFE_PATH", "Entry", "FileResult", "error_reason", "failed", "open_path",
           "skipped", "walk"]

#: Stay well below PATH_MAX (4096) when handing a path to one system call.
SAFE_PATH = 4000
_DIR_STEP_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
_DIR_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_SHORT_PATH = 1024  # shorter directory paths are listed by path, longer through fds
_FSENC, _FSERR = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


class FileResult(NamedTuple):
    """One file's outcome.

    ``status`` is ``"ok"`` (read and hashed), ``"skipped"`` (deliberately not read;
    ``reason`` says why) or ``"error"`` (reading failed; ``reason`` says how).
    ``path`` is the file name as text (undecodable bytes kept via surrogateescape,
    ``os.fsencode(path) == raw_path``); ``raw_path`` is the exact bytes. ``cached``
    is True when the result came from a rescan cache instead of reading the file.
    """

    path: str
    size: int
    digest: str | None
    matches: tuple[str, ...]
    status: str
    reason: str | None
    raw_path: bytes
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``raw_path`` as hex only when the name is not UTF-8)."""
        d = {"path": self.path, "size": self.size, "digest": self.digest,
             "matches": list(self.matches), "status": self.status, "reason": self.reason,
             "cached": self.cached}
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
    index: int  # type: ignore[assignment]  # a field, shadowing tuple.index on purpose


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
    if len(path) < SAFE_PATH:
        return os.open(path, flags)
    groups: list[bytes] = []
    cur: list[bytes] = []
    length = 0
    for part in path.split(b"/"):
        if cur and length + 1 + len(part) >= SAFE_PATH:
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
                    it = os.scandir(fd)  # type: ignore[assignment]  # bytes names via the fd
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
    if len(path) >= SAFE_PATH:
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
