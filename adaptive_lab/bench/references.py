"""The reference points the scanner is compared with, outside any thread pool.

* :func:`plain_loop_scan`: a single-threaded Python loop (``os.walk`` +
  ``hashlib.file_digest``), the floor a pool must beat;
* :func:`native_scan_command` / :func:`run_native_scan`: the native tools,
  ``find | xargs -P2 openssl dgst``, the ceiling on a warm page cache;
* :func:`process_pool_scan`: our scanner on one worker process per core (no GIL
  shared between readers);
* :func:`compare_scan_speed`: all of them side by side, interleaved.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time
from typing import Any


def plain_loop_scan(root: str | os.PathLike, digest: str = "sha256") -> dict[str, Any]:
    """The plain single-threaded Python loop: ``os.walk`` + ``hashlib.file_digest``.

    Returns ``{"files", "bytes", "seconds", "files_per_s"}``. Symlinks are not followed
    and non-regular files are not opened, like the scanner.
    """
    import stat as _stat

    files = nbytes = 0
    t0 = time.perf_counter()
    for dirpath, _dirs, names in os.walk(os.fsencode(root)):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not _stat.S_ISREG(st.st_mode):
                continue
            with open(path, "rb") as fh:
                h = hashlib.new(digest)
                while chunk := fh.read(1 << 16):
                    h.update(chunk)
                h.hexdigest()
            files += 1
            nbytes += st.st_size
    seconds = time.perf_counter() - t0
    return {"files": files, "bytes": nbytes, "seconds": seconds,
            "files_per_s": files / seconds if seconds else 0.0}


def native_scan_command(root: str | os.PathLike, digest: str = "sha256", procs: int = 2) -> str:
    """The native reference: ``find ROOT -type f -print0 | xargs -0 -n500 -P2 openssl dgst``."""
    return (f"find {shlex.quote(os.fspath(root))} -type f -print0 | "
            f"xargs -0 -n500 -P{int(procs)} openssl dgst -{digest} > /dev/null")


def run_native_scan(root: str | os.PathLike, digest: str = "sha256", procs: int = 2
                    ) -> dict[str, Any]:
    """Run :func:`native_scan_command`; returns ``{"command", "seconds", "returncode"}``."""
    cmd = native_scan_command(root, digest, procs)
    t0 = time.perf_counter()
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, check=False)
    return {"command": cmd, "seconds": time.perf_counter() - t0,
            "returncode": proc.returncode}


def compare_scan_speed(root: str | os.PathLike, repeats: int = 5, digest: str = "sha256",
                       workers: tuple[int, ...] = (2,)) -> dict[str, Any]:
    """Side-by-side warm-cache speed check of the scanner against the references.

    Runs, interleaved ``repeats`` times: the native pipeline, the plain loop,
    :func:`~adaptive_lab.scanner.scan` with its default executor and with a
    ``ThreadPoolExecutor`` of each size in ``workers``. Returns the median files/s per
    configuration, every run, and the ratios to the native command and to the plain
    loop. A first untimed plain pass warms the page cache. Use it on a quiet machine;
    other load shifts all numbers (compare ratios).
    """
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    from adaptive_lab.scanner.core import scan

    n = plain_loop_scan(root, digest)["files"]

    def timed_scan(k: int | None) -> float:
        t0 = time.perf_counter()
        if k is None:
            done = scan(root, digest=digest).files
        else:
            with ThreadPoolExecutor(k) as ex:
                done = scan(root, ex, digest=digest).files
        if done != n:
            raise RuntimeError(f"scan saw {done} files, expected {n}")
        return n / (time.perf_counter() - t0)

    configs: dict[str, Any] = {
        "native": lambda: n / run_native_scan(root, digest)["seconds"],
        "plain_loop": lambda: plain_loop_scan(root, digest)["files_per_s"],
        "scan_default": lambda: timed_scan(None),
    }
    for k in workers:
        configs[f"scan_tpe{k}"] = lambda k=k: timed_scan(k)
    runs: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, fn in configs.items():
            runs[name].append(fn())
    med = {name: statistics.median(v) for name, v in runs.items()}
    return {"root": os.fspath(root), "files": n, "digest": digest, "repeats": repeats,
            "files_per_s": med, "runs": runs,
            "ratio_to_native": {k: v / med["native"] for k, v in med.items()},
            "ratio_to_plain_loop": {k: v / med["plain_loop"] for k, v in med.items()},
            "load_average": os.getloadavg()}


def process_pool_scan(root: str | os.PathLike, digest: str = "sha256"
                      ) -> tuple[int, float, dict[str, Any]]:
    """Our scanner on ``ProcessPoolExecutor(cores)``: one worker process per core, so no
    GIL is shared between readers (the pool is started, and warmed, outside the timing).
    """
    from concurrent.futures import ProcessPoolExecutor

    from adaptive_lab.scanner.core import scan

    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as ex:
        list(ex.map(abs, range(cores)))  # start the workers before the clock
        s = scan(root, ex, digest=digest)
    return s.files, s.elapsed, {
        "command": f"scan(ROOT, ProcessPoolExecutor({cores}), digest={digest!r})",
        "errors": s.errors, "skipped": s.skipped}
