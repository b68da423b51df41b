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

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adaptive_lab.scanner.profiles import MIB

MANIFEST_NAME = "MANIFEST.json"
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
    if n:
        sizes[rng.choice(n, size=round(n * 0.01), replace=False)] = MIB
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

    from adaptive_lab.scanner.signatures import eicar_bytes

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
