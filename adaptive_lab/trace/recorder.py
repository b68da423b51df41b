"""Traces: the record of a run, live or simulated, as versioned JSON Lines.

One JSON object per line, ``kind`` first (see ``docs/trace-format.md``):

* ``header`` (line 1): ``schema`` "adaptive-lab/trace", ``version``, ``created``,
  ``host``, ``policy``, ``bounds``, ``interval``, ``sample_period``, ``workload``;
* ``sample``: fixed-period measurements (``SAMPLE_FIELDS``);
* ``event``: ``type`` "scale" (``from``, ``to``, ``reason``), "error" (``message``),
  "phase" (``name``) or any other string, with free extra fields.

NaN is written as ``null``. Loading validates every line and raises
:class:`TraceFormatError` naming the first bad line. Nothing is ever pickled.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO, Any

from adaptive_lab.trace.format import Trace, dumps_record, make_header


class Recorder:
    """Collects samples and events, in memory and optionally to a JSON Lines file.

    Thread-safe. Lines are flushed as written, so a crashed run still leaves a
    readable trace (its header and every line up to the crash).
    """

    def __init__(self, path: str | os.PathLike | None = None,
                 header: dict[str, Any] | None = None, keep: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self._header = make_header(**(header or {}))
        self._samples: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._keep = keep
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._header_written = False
        self.closed = False

    def set_header(self, **fields: Any) -> None:
        """Add header fields; allowed until the first sample or event is written."""
        with self._lock:
            if self._header_written:
                raise RuntimeError("the header was already written")
            self._header.update(fields)

    @property
    def header(self) -> dict[str, Any]:
        return dict(self._header)

    def _open(self) -> IO[str]:
        # Caller holds the lock. Opens the file and writes the header once.
        if self._file is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")
        if not self._header_written:
            self._file.write(dumps_record("header", self._header) + "\n")
            self._header_written = True
        return self._file

    def _write(self, kind: str, rec: dict[str, Any]) -> None:
        if self.path is None or self.closed:
            self._header_written = True
            return
        f = self._open()
        f.write(dumps_record(kind, rec) + "\n")
        f.flush()

    def sample(self, rec: dict[str, Any]) -> None:
        """Record one sample (must contain at least t, workers, busy, queued)."""
        with self._lock:
            if self._keep:
                self._samples.append(rec)
            self._write("sample", rec)

    def event(self, rec: dict[str, Any]) -> None:
        """Record an event (needs ``t`` and ``type``)."""
        if "t" not in rec or "type" not in rec:
            raise ValueError("an event needs 't' and 'type'")
        with self._lock:
            if self._keep:
                self._events.append(rec)
            self._write("event", rec)

    def trace(self) -> Trace:
        """A snapshot Trace of everything recorded so far."""
        with self._lock:
            return Trace(header=dict(self._header), samples=list(self._samples),
                         events=list(self._events))

    def close(self) -> None:
        """Flush and close the file (writing the header if nothing else was)."""
        with self._lock:
            if self.path is not None and not self.closed:
                self._open().close()
            self.closed = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
