"""Synthetic corpora and workload profiles for the scanner and the benchmark.

* :func:`make_corpus` writes a deterministic tree of files (corpus A: log-normal sizes,
  median 8 KiB, 1 % of files at 1 MiB; corpus B: all 4 KiB), optionally with planted
  EICAR test files, and a small manifest.
* A :class:`Profile` is applied in the scanner's read path, per file:

  - ``local``: nothing added; the speed of the disk / page cache.
  - ``latency``: ``time.sleep(latency_ms)`` before each open. **This is an emulation**
    of network storage latency (NFS, SMB, object stores): the thread sleeps with the GIL
    released, as it would while waiting on a remote server. No network is involved.
  - ``cpu``: a pure-Python loop over the first bytes of each file (``cpu_work``
    iterations) that holds the GIL, like a parser or pattern check written in Python.
  - ``mixed``: latency and cpu together.
  - ``step``: latency changes from ``latency_ms`` to ``step_latency_ms`` after
    ``step_after_files`` files or ``step_after_s`` seconds, to measure how fast a
    scaling policy reacts to a change in the workload.

* :func:`plain_loop_scan` and :func:`native_scan_command` are the reference points the
  scanner is compared with (a single-threaded Python loop, and ``find | xargs -P2
  openssl``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "PROFILES",
    "CorpusInfo",
    "Profile",
    "compare_scan_speed",
    "inspect_bytes",
    "make_corpus",
    "native_scan_command",
    "plain_loop_scan",
    "profile_by_name",
    "run_native_scan",
]

MANIFEST_NAME = "MANIFEST.json"
MIB = 1 << 20


def inspect_bytes(data: bytes, work: int) -> int:
    """Pure-Python byte inspection: ``work`` loop iterations over ``data`` (GIL held).

    Cycles over the first 4 KiB of ``data`` so the cost per file is ``work`` iterations
    whatever the file size (about 30-60 ns each on a 2020s CPU).
    """
    view = bytes(data[:4096]) or b"\0"
    acc = 0
    remaining = work
    while remaining > 0:
        part = view[:remaining]
        for b in part:
            acc = (acc * 31 + b) & 0xFFFFFFFF
        remaining -= len(part)
    return acc


@dataclass(frozen=True)
class Profile:
    """A workload applied per file in the scanner's read path (picklable).

    Parameters
    ----------
    name
        Label stored in results and traces.
    latency_ms
        Sleep before opening each file: emulated storage latency, not a real network.
    cpu_work
        Iterations of :func:`inspect_bytes` per file (pure Python, holds the GIL).
    step_latency_ms
        Latency after the step (``None``: no step).
    step_after_files, step_after_s
        The step happens at the file with this walk index, or this many seconds after
        the scan started, whichever comes first.
    """

    name: str = "local"
    latency_ms: float = 0.0
    cpu_work: int = 0
    step_latency_ms: float | None = None
    step_after_files: int | None = None
    step_after_s: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                if not isinstance(value, str) or not value:
                    raise ValueError(f"profile name must be a non-empty string, got {value!r}")
                continue
            if value is None and f.name.startswith("step"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"profile {f.name} must be a finite number >= 0, "
                                 f"got {value!r}")
        if self.step_latency_ms is not None and self.step_after_files is None \
                and self.step_after_s is None:
            raise ValueError("profile step_latency_ms needs step_after_files or step_after_s")

    @property
    def is_noop(self) -> bool:
        """True for a plain ``Profile`` with no latency, no CPU work and no step: the
        scanner then skips its per-file hooks (they cost about 10 % of a warm scan)."""
        return (type(self) is Profile and not self.latency_ms and not self.cpu_work
                and self.step_latency_ms is None)

    def latency_at(self, index: int, elapsed: float) -> float:
        """Latency in ms for the file with walk ``index``, ``elapsed`` s into the scan."""
        if self.step_latency_ms is not None and (
            (self.step_after_files is not None and index >= self.step_after_files)
            or (self.step_after_s is not None and elapsed >= self.step_after_s)
        ):
            return self.step_latency_ms
        return self.latency_ms

    def before_read(self, path: bytes, index: int, started: float) -> None:
        """Called before ``path`` is opened: sleeps the emulated latency."""
        ms = self.latency_at(index, time.monotonic() - started)
        if ms > 0:
            time.sleep(ms / 1000.0)

    def inspect(self, data: bytes, path: bytes) -> None:
        """Called with a file's first chunk: the pure-Python CPU work."""
        if self.cpu_work:
            inspect_bytes(data, self.cpu_work)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "local": Profile("local"),
    "latency": Profile("latency", latency_ms=5.0),
    "cpu": Profile("cpu", cpu_work=4096),
    "mixed": Profile("mixed", latency_ms=2.0, cpu_work=2048),
    "step": Profile("step", latency_ms=1.0, step_latency_ms=20.0, step_after_files=5000),
}


def profile_by_name(name: str, **overrides: Any) -> Profile:
    """A named profile with some fields changed, e.g. ``profile_by_name("latency",
    latency_ms=20)``. ValueError names an unknown profile or field."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
    known = {f.name for f in fields(Profile)} - {"name"}
    for key in overrides:
        if key not in known:
            raise ValueError(f"profile {name!r}: unknown field {key!r}; known: "
                             + ", ".join(sorted(known)))
    return replace(base, **overrides)


# -- corpora ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusInfo:
    """What :func:`make_corpus` wrote. ``files`` counts every regular file in the tree,
    manifest included, so a scan of ``root`` reports exactly ``files`` files."""

    root: str
    files: int
    bytes: int
    seed: int
    size_mix: str
    dirs: int
    eicar: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["eicar"] = list(self.eicar)
        return d


def corpus_sizes(n: int, size_mix: str = "A", seed: int = 0) -> list[int]:
    """File sizes of a corpus: ``"A"`` log-normal (median 8 KiB, sigma 1.3, capped at
    1 MiB, and 1 % of files set to exactly 1 MiB) or ``"B"`` (all 4 KiB)."""
    import numpy as np

    if size_mix == "B":
        return [4096] * n
    if size_mix != "A":
        raise ValueError(f"size_mix must be 'A' or 'B', got {size_mix!r}")
    rng = np.random.default_rng([seed, 1])
    sizes = np.minimum(rng.lognormal(math.log(8192), 1.3, n), MIB).astype(np.int64)
    big = rng.choice(n, size=round(n * 0.01), replace=False) if n else []
    sizes[big] = MIB
    return [int(s) for s in sizes]


def make_corpus(root: str | os.PathLike, files: int = 10_000, dirs: int = 100, seed: int = 0,
                size_mix: str = "A", eicar: int = 0, reuse: bool = True) -> CorpusInfo:
    """Write a deterministic corpus of ``files`` files (manifest included) under ``root``.

    Files ``dNNN/dNNNN/fNNNNNN.bin`` hold seeded random bytes spread over ``dirs`` leaf
    directories (ten per parent). ``eicar`` of them hold the EICAR test string instead.
    The same arguments give the same bytes. With ``reuse``, an existing corpus with the
    same parameters is returned as is; a non-empty directory that is not one is refused.
    """
    import numpy as np

    from .signatures import eicar_bytes

    for name, value, low in (("files", files, 1), ("dirs", dirs, 1), ("seed", seed, 0),
                             ("eicar", eicar, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if eicar > files - 1:
        raise ValueError(f"eicar ({eicar}) must be at most files - 1 ({files - 1})")
    rootp = Path(root)
    params = {"files": files, "dirs": dirs, "seed": seed, "size_mix": size_mix,
              "eicar_count": eicar, "version": 1}
    manifest = rootp / MANIFEST_NAME
    if rootp.exists() and any(rootp.iterdir()):
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError):
            old = None
        if reuse and old and old.get("params") == params:
            return CorpusInfo(str(rootp), files, old["bytes"] + manifest.stat().st_size, seed,
                              size_mix, dirs, tuple(old["eicar"]))
        raise ValueError(f"root {str(rootp)!r} is not empty and not a corpus with these "
                         f"parameters; choose an empty directory")
    n = files - 1
    sizes = corpus_sizes(n, size_mix, seed)
    rng = np.random.default_rng([seed, 2])
    planted = set(rng.choice(n, size=eicar, replace=False).tolist()) if eicar else set()
    eicar_data = eicar_bytes()
    leaf = [Path(f"d{d // 10:03d}") / f"d{d:04d}" for d in range(dirs)]
    for d in leaf[: min(dirs, n)]:
        (rootp / d).mkdir(parents=True, exist_ok=True)
    total = 0
    eicar_paths = []
    for i, size in enumerate(sizes):
        rel = leaf[i % dirs] / f"f{i:06d}.bin"
        if i in planted:
            data = eicar_data
            eicar_paths.append(str(rel))
        else:
            data = rng.bytes(size)
        (rootp / rel).write_bytes(data)
        total += len(data)
    rootp.mkdir(parents=True, exist_ok=True)
    body = {"kind": "adaptive-lab corpus", "params": params, "bytes": total,
            "eicar": sorted(eicar_paths)}
    manifest.write_text(json.dumps(body, indent=1) + "\n")
    return CorpusInfo(str(rootp), files, total + manifest.stat().st_size, seed, size_mix,
                      dirs, tuple(sorted(eicar_paths)))


# -- reference points ------------------------------------------------------------------
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
                hashlib.file_digest(fh, digest).hexdigest()
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

    from .scanner import scan

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
