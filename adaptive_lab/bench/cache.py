"""The rescan cache's benchmark: uncached scan vs cached rescans, side by side.

Per repeat, each in a fresh process (so every scan pays what a daily ``adaptive-lab
scan`` pays, and each reports its own peak RSS), on a warm tree of ``files`` files of
16-48 KiB:

1. ``uncached``: ``scan(root)``;
2. ``fill``: ``scan(root, cache=PATH)`` into a new cache (hashes and writes all);
3. ``unchanged``: the same again: every file a hit;
4. ``changed``: after ``change_fraction`` of the files were rewritten (same size, new
   bytes; the benchmark then waits the cache's 2 s granularity, as a daily rescan
   would, so the rewritten files are not stored racy).

Times are the wall time of the ``scan()`` call (cache open and final commit
included; interpreter start and imports excluded by a first scan of an empty
directory); ratios are medians over repeats against the
uncached median. Every cached scan's results are checked against an uncached scan
of the same tree (a fingerprint of every path's status, digest and matches).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "Fingerprint", "bench_cache", "make_tree", "results_fingerprint"]

SCHEMA = "adaptive-lab/bench-cache"
VERSION = 1
PHASES = ("uncached", "fill", "unchanged", "changed")
TARGET_UNCHANGED = 0.2  # cached rescan of an unchanged tree <= 0.2 x uncached
_MANIFEST = ".bench-cache.json"


def make_tree(root: str | os.PathLike, files: int = 20_000, *, min_kib: int = 16,
              max_kib: int = 48, dirs: int = 100, seed: int = 0) -> dict[str, Any]:
    """Write ``files`` files of ``min_kib``..``max_kib`` KiB (seeded bytes) over
    ``dirs`` directories, or reuse a tree made with the same parameters."""
    for name, value, low in (("files", files, 1), ("min_kib", min_kib, 1),
                             ("max_kib", max_kib, min_kib), ("dirs", dirs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    rootp = Path(root)
    params = {"files": files, "min_kib": min_kib, "max_kib": max_kib, "dirs": dirs,
              "seed": seed, "version": 1}
    manifest = rootp / _MANIFEST
    if rootp.exists() and any(rootp.iterdir()):
        try:
            if json.loads(manifest.read_text()).get("params") == params:
                return params
        except (OSError, ValueError):
            pass
        raise ValueError(f"root: {str(rootp)!r} is not empty and not a benchmark tree "
                         f"with these parameters")
    rnd = random.Random(seed)
    blob = rnd.randbytes(max_kib * 1024 * 2)
    for i in range(files):
        d = rootp / f"d{i % dirs:04d}"
        if i < dirs:
            d.mkdir(parents=True, exist_ok=True)
        size = rnd.randint(min_kib * 1024, max_kib * 1024)
        off = rnd.randrange(len(blob) - size)
        (d / f"f{i:07d}.bin").write_bytes(i.to_bytes(8, "little") + blob[off:off + size - 8])
    manifest.write_text(json.dumps({"params": params}))
    return params


class Fingerprint:
    """An order-independent fingerprint of a scan's results, in constant memory (the
    benchmark's peak RSS is the scan's, not a list of results): the sum, modulo
    2**128, of a hash of each result's (raw path, status, size, digest, matches)."""

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, r: Any) -> None:
        item = repr((r.raw_path, r.status, r.size, r.digest, r.matches)).encode()
        self.total = (self.total + int.from_bytes(hashlib.blake2b(
            item, digest_size=16).digest(), "little")) % (1 << 128)
        self.count += 1

    def hexdigest(self) -> str:
        return f"{self.count}:{self.total:032x}"


def results_fingerprint(results: Iterable[Any]) -> str:
    """The :class:`Fingerprint` of ``results``: equal for two scans that agree on every
    path."""
    fp = Fingerprint()
    for r in results:
        fp.add(r)
    return fp.hexdigest()


def _child(spec: dict[str, Any]) -> None:
    """One timed scan in this (fresh) process; prints one JSON line."""
    import resource

    from adaptive_lab.scanner.core import scan

    fingerprint = Fingerprint()
    executor = None
    if spec.get("workers"):
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(spec["workers"])
    with tempfile.TemporaryDirectory() as empty:  # imports, first pool: not scan work
        scan(empty, executor)
    t0 = time.perf_counter()
    summary = scan(spec["root"], executor, cache=spec.get("cache"),
                   on_result=fingerprint.add)
    elapsed = time.perf_counter() - t0
    if executor is not None:
        executor.shutdown()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"elapsed": elapsed, "files": summary.files, "errors": summary.errors,
                      "hits": summary.cache_hits, "misses": summary.cache_misses,
                      "peak_rss_mb": rss_kib / 1024,
                      "fingerprint": fingerprint.hexdigest()}))


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    code = ("import json, sys; from adaptive_lab.bench.cache import _child; "
            "_child(json.loads(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark scan failed: {proc.stderr.strip()[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _change(root: Path, fraction: float, rnd: random.Random) -> list[str]:
    """Rewrite ``fraction`` of the files with new bytes of the same size."""
    paths = sorted(p for p in root.rglob("*.bin"))
    chosen = rnd.sample(paths, max(1, round(len(paths) * fraction)))
    for p in chosen:
        size = p.stat().st_size
        p.write_bytes(rnd.randbytes(size))
    return [str(p) for p in chosen]


def bench_cache(root: str | os.PathLike, *, files: int = 20_000, repeats: int = 3,
                change_fraction: float = 0.01, workers: int | None = None,
                cache_dir: str | os.PathLike | None = None, seed: int = 0,
                min_kib: int = 16, max_kib: int = 48, progress: Any = None
                ) -> dict[str, Any]:
    """Run the phases ``repeats`` times (see the module docstring); return the report."""
    from adaptive_lab.trace.format import host_info

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if not 0 < change_fraction <= 1:
        raise ValueError(f"change_fraction must be in (0, 1], got {change_fraction!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1 or None, got {workers!r}")
    rootp = Path(root)
    params = make_tree(rootp, files, seed=seed, min_kib=min_kib, max_kib=max_kib,
                       dirs=max(1, min(1000, files // 200)))
    cache_base = Path(cache_dir) if cache_dir is not None else rootp.parent
    cache = cache_base / f"{rootp.name}.bench-cache.sqlite"
    rnd = random.Random(seed + 1)
    base = {"root": str(rootp), "workers": workers}
    time.sleep(2.1)  # files written just now would be stored racy (and re-hashed)
    _run_child(base)  # warm the page cache
    runs: list[dict[str, Any]] = []
    correct = True
    reference = None
    for rep in range(repeats):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{cache}{suffix}").unlink(missing_ok=True)
        for phase in PHASES:
            if phase == "changed":
                changed = _change(rootp, change_fraction, rnd)
                time.sleep(2.1)  # as a daily rescan: changes older than the granularity
                reference = _run_child(base)["fingerprint"]  # untimed, for the check
            spec = base if phase == "uncached" else {**base, "cache": str(cache)}
            rec = {"repeat": rep, "phase": phase, "load": os.getloadavg()[0],
                   **_run_child(spec)}
            if phase == "uncached":
                reference = rec["fingerprint"]
            rec["correct"] = rec.pop("fingerprint") == reference
            if phase == "changed":
                rec["changed_files"] = len(changed)
            correct = correct and rec["correct"]
            runs.append(rec)
            if progress is not None:
                progress(rec)
    median = {p: statistics.median(r["elapsed"] for r in runs if r["phase"] == p)
              for p in PHASES}
    ratio = {p: median[p] / median["uncached"] for p in PHASES}
    return {"schema": SCHEMA, "version": VERSION, "host": host_info(),
            "tree": {**params, "root": str(rootp)}, "workers": workers,
            "repeats": repeats, "change_fraction": change_fraction,
            "median_s": median, "ratio": ratio,
            "peak_rss_mb": {p: max(r["peak_rss_mb"] for r in runs if r["phase"] == p)
                            for p in PHASES},
            "target": {"unchanged_ratio_max": TARGET_UNCHANGED,
                       "met": ratio["unchanged"] <= TARGET_UNCHANGED},
            "correct": correct, "runs": runs}
