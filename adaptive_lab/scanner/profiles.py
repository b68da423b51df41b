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

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

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
