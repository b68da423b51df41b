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

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "adaptive-lab/trace"
VERSION = 1
SUPPORTED_VERSIONS = (1,)

#: Sample fields: name -> (type, required). Counts are ints, the rest floats.
SAMPLE_FIELDS: dict[str, tuple[type, bool]] = {
    "t": (float, True),
    "workers": (int, True),
    "alive": (int, False),
    "busy": (int, True),
    "queued": (int, True),
    "submitted": (int, False),
    "completed": (int, False),
    "failed": (int, False),
    "cpu_percent": (float, False),
    "memory_percent": (float, False),
    "process_cpu_percent": (float, False),
    "process_user_cpu_percent": (float, False),
    "task_cpu_cores": (float, False),
    "available_mb": (float, False),
    "rss_mb": (float, False),
    "throughput": (float, False),
    "latency_mean": (float, False),
    "latency_p50": (float, False),
    "latency_p95": (float, False),
}
EVENT_TYPES = ("scale", "error", "phase")


class TraceFormatError(ValueError):
    """A trace file is malformed; ``line`` is the 1-based number of the first bad line."""

    def __init__(self, message: str, line: int | None = None, path: str | None = None) -> None:
        where = f"{path}: " if path else ""
        where += f"line {line}: " if line is not None else ""
        super().__init__(where + message)
        self.line = line
        self.path = path


def host_info() -> dict[str, Any]:
    """Cores, memory, platform and Python of this machine, for trace headers."""
    from adaptive_lab._host import available_cores

    try:
        import psutil

        mem = psutil.virtual_memory().total / 2**20
    except Exception:  # pragma: no cover - psutil is a dependency
        mem = float("nan")
    return {
        "cores": available_cores(),
        "cpu_count": os.cpu_count(),
        "memory_mb": round(mem),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def make_header(**fields: Any) -> dict[str, Any]:
    """A header with schema, version, creation time and host filled in."""
    header: dict[str, Any] = {
        "kind": "header",
        "schema": SCHEMA,
        "version": VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": host_info(),
    }
    header.update(fields)
    header["kind"] = "header"
    return header


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.generic):
        return _json_value(v.item())
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return v


def dumps_record(kind: str, record: dict[str, Any]) -> str:
    """One JSON line with ``kind`` first and NaN as null."""
    body = {"kind": kind, **{k: _json_value(v) for k, v in record.items() if k != "kind"}}
    return json.dumps(body, allow_nan=False, separators=(",", ":"))


def _check_sample(rec: dict[str, Any], line: int, path: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (typ, required) in SAMPLE_FIELDS.items():
        v = rec.get(name)
        if v is None:
            if required:
                raise TraceFormatError(f"sample is missing '{name}'", line, path)
            out[name] = -1 if typ is int else math.nan
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TraceFormatError(f"sample field '{name}' must be a number, got {v!r}",
                                   line, path)
        if typ is int:
            if float(v) != int(v) or v < 0:
                raise TraceFormatError(
                    f"sample field '{name}' must be a non-negative integer, got {v!r}",
                    line, path)
            v = int(v)
        else:
            v = float(v)
        out[name] = v
    for k, v in rec.items():  # keep extra fields (forward compatible)
        if k not in out and k != "kind":
            out[k] = v
    return out


@dataclass
class Trace:
    """A run's header, samples (ordered by ``t``) and events."""

    header: dict[str, Any] = field(default_factory=make_header)
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    # -- reading ----------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> Trace:
        """Load and validate a trace; :class:`TraceFormatError` names the first bad line."""
        p = str(path)
        try:
            with open(p, encoding="utf-8") as f:
                return cls.from_lines(f, path=p)
        except UnicodeDecodeError as exc:
            raise TraceFormatError(f"not UTF-8 text ({exc.reason})", None, p) from None

    @classmethod
    def loads(cls, text: str) -> Trace:
        """Parse a trace from a string."""
        return cls.from_lines(text.splitlines())

    @classmethod
    def from_lines(cls, lines: Iterable[str], path: str | None = None) -> Trace:
        header: dict[str, Any] | None = None
        samples: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        last_t = -math.inf
        n = 0
        for n, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TraceFormatError(f"invalid JSON ({exc.msg}); truncated file?",
                                       n, path) from None
            if not isinstance(rec, dict):
                raise TraceFormatError("expected a JSON object", n, path)
            kind = rec.get("kind")
            if header is None:
                if kind != "header":
                    raise TraceFormatError("the first record must be the header", n, path)
                if rec.get("schema") != SCHEMA:
                    raise TraceFormatError(
                        f"schema must be {SCHEMA!r}, got {rec.get('schema')!r}", n, path)
                if rec.get("version") not in SUPPORTED_VERSIONS:
                    raise TraceFormatError(
                        f"unsupported version {rec.get('version')!r} "
                        f"(supported: {SUPPORTED_VERSIONS})", n, path)
                header = rec
                continue
            if kind == "sample":
                s = _check_sample(rec, n, path)
                if not math.isfinite(s["t"]) or s["t"] < last_t:
                    raise TraceFormatError(
                        f"sample time t={s['t']} goes backwards or is not finite", n, path)
                last_t = s["t"]
                samples.append(s)
            elif kind == "event":
                t = rec.get("t")
                if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                    raise TraceFormatError(f"event needs a finite number 't', got {t!r}", n, path)
                if not isinstance(rec.get("type"), str):
                    raise TraceFormatError("event needs a string 'type'", n, path)
                ev = {k: v for k, v in rec.items() if k != "kind"}
                if ev["type"] == "scale":
                    for k in ("from", "to"):
                        v = ev.get(k)
                        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                            raise TraceFormatError(
                                f"scale event needs a non-negative integer '{k}', got {v!r}",
                                n, path)
                events.append(ev)
            elif kind == "header":
                raise TraceFormatError("a second header", n, path)
            else:
                raise TraceFormatError(f"unknown kind {kind!r}", n, path)
        if header is None:
            raise TraceFormatError("empty trace: no header", max(n, 1), path)
        return cls(header=header, samples=samples, events=events)

    # -- writing ----------------------------------------------------------------
    def lines(self) -> Iterator[str]:
        yield dumps_record("header", self.header)
        merged = [(s["t"], 0, "sample", s) for s in self.samples]
        merged += [(e["t"], 1, "event", e) for e in self.events]
        merged.sort(key=lambda x: (x[0], x[1]))
        for _, _, kind, rec in merged:
            yield dumps_record(kind, rec)

    def dumps(self) -> str:
        return "\n".join(self.lines()) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the trace as JSON Lines (atomically: temp file, then rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(self.dumps(), encoding="utf-8")
        os.replace(tmp, p)
        return p

    # -- views ------------------------------------------------------------------
    @property
    def duration(self) -> float:
        return self.samples[-1]["t"] - self.samples[0]["t"] if self.samples else 0.0

    @property
    def policy_name(self) -> str | None:
        pol = self.header.get("policy") or {}
        return pol.get("name") if isinstance(pol, dict) else None

    def scale_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == "scale"]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Columns of the samples as numpy arrays (ints as int64, NaN-able as float64)."""
        out: dict[str, np.ndarray] = {}
        for name, (typ, _) in SAMPLE_FIELDS.items():
            col = [s.get(name) for s in self.samples]
            if typ is int:
                out[name] = np.array([-1 if v is None else v for v in col], dtype=np.int64)
            else:
                out[name] = np.array([math.nan if v is None else v for v in col],
                                     dtype=np.float64)
        return out

    def to_frame(self) -> Any:
        """Samples as a pandas DataFrame (requires pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover
            raise ImportError("Trace.to_frame() needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.to_arrays())

    def summary(self) -> dict[str, Any]:
        """Headline numbers: duration, tasks, mean throughput and workers, scale events."""
        a = self.to_arrays()
        done = a["completed"] + np.maximum(a["failed"], 0)
        tasks = int(done[-1] - done[0]) if len(done) > 1 and done[0] >= 0 else 0
        dur = self.duration
        workers = a["workers"].astype(float)
        return {
            "policy": self.policy_name,
            "samples": len(self.samples),
            "duration_s": dur,
            "tasks": tasks,
            "throughput": tasks / dur if dur > 0 else math.nan,
            "mean_workers": float(workers.mean()) if len(workers) else math.nan,
            "max_workers": int(workers.max()) if len(workers) else 0,
            "worker_seconds": _integrate(workers, a["t"]),
            "scale_events": len(self.scale_events()),
            "errors": sum(1 for e in self.events if e.get("type") == "error"),
        }

    def __repr__(self) -> str:
        return (f"<Trace policy={self.policy_name!r} samples={len(self.samples)} "
                f"events={len(self.events)} duration={self.duration:.1f}s>")


def _integrate(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid integral of ``y`` over ``x`` (0 for fewer than two points)."""
    if len(y) < 2:
        return 0.0
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


