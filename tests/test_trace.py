"""Trace format: round trip, validation naming the bad line, arrays and frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from adaptive_lab import Recorder, Trace, TraceFormatError
from adaptive_lab.trace.format import SAMPLE_FIELDS, SCHEMA


def sample(t, **kw):
    base = {"t": t, "workers": 4, "alive": 4, "busy": 2, "queued": 3, "submitted": 10,
            "completed": 5, "failed": 0, "cpu_percent": 30.0, "memory_percent": 40.0,
            "process_cpu_percent": 20.0, "process_user_cpu_percent": 15.0,
            "task_cpu_cores": 0.5, "available_mb": 1000.0, "rss_mb": 50.0,
            "throughput": 12.5, "latency_mean": 0.01, "latency_p50": 0.009,
            "latency_p95": 0.02}
    base.update(kw)
    return base


def make_trace(path=None):
    rec = Recorder(path, header={"policy": {"name": "threshold", "params": {"x": 1}}})
    rec.sample(sample(0.0))
    rec.sample(sample(0.5, latency_p50=float("nan")))
    rec.event({"t": 0.6, "type": "scale", "from": 4, "to": 8, "reason": "+4: queue"})
    rec.sample(sample(1.0, workers=8))
    rec.close()
    return rec


def test_round_trip_through_a_file(tmp_path):
    p = tmp_path / "t.jsonl"
    make_trace(p)
    tr = Trace.load(p)
    assert tr.header["schema"] == SCHEMA and tr.header["version"] == 1
    assert set(tr.header["host"]) >= {"cores", "memory_mb", "platform", "python"}
    assert len(tr.samples) == 3 and tr.events[0]["reason"] == "+4: queue"
    assert math.isnan(tr.samples[1]["latency_p50"])  # NaN written as null, read as NaN
    first_line = p.read_text().splitlines()[0]
    assert first_line.startswith('{"kind":"header"')
    p2 = tr.save(tmp_path / "again.jsonl")
    tr2 = Trace.load(p2)
    assert tr2.samples[2] == tr.samples[2] and tr2.events == tr.events
    assert p2.read_text().splitlines()[1:] == p.read_text().splitlines()[1:]


def test_file_is_readable_while_recording(tmp_path):
    p = tmp_path / "partial.jsonl"
    rec = Recorder(p)
    rec.sample(sample(0.0))
    assert len(Trace.load(p).samples) == 1  # flushed line by line
    rec.close()


def test_to_arrays_and_frame():
    tr = make_trace().trace()
    a = tr.to_arrays()
    assert set(a) == set(SAMPLE_FIELDS)
    assert a["workers"].dtype == np.int64 and list(a["workers"]) == [4, 4, 8]
    assert np.isnan(a["latency_p50"][1])
    pd = pytest.importorskip("pandas")
    df = tr.to_frame()
    assert isinstance(df, pd.DataFrame) and len(df) == 3


def test_summary():
    s = make_trace().trace().summary()
    assert s["samples"] == 3 and s["scale_events"] == 1 and s["policy"] == "threshold"


HEADER = json.dumps({"kind": "header", "schema": SCHEMA, "version": 1})
GOOD = json.dumps({"kind": "sample", **sample(0.0)})


@pytest.mark.parametrize("text,line,what", [
    ("", 1, "empty"),
    (GOOD, 1, "first record must be the header"),
    (HEADER.replace('"version": 1', '"version": 99'), 1, "unsupported version"),
    (HEADER.replace(SCHEMA, "other"), 1, "schema"),
    (HEADER + "\n" + GOOD + "\n" + GOOD[:-15], 3, "invalid JSON"),
    (HEADER + "\n" + GOOD + "\n[1, 2]", 3, "JSON object"),
    (HEADER + "\n" + json.dumps({"kind": "sample", "t": 1}), 2, "workers"),
    (HEADER + "\n" + GOOD.replace('"busy": 2', '"busy": "two"'), 2, "busy"),
    (HEADER + "\n" + GOOD.replace('"busy": 2', '"busy": -2'), 2, "busy"),
    (HEADER + "\n" + json.dumps({"kind": "sample", **sample(5.0)}) + "\n" + GOOD, 3,
     "backwards"),
    (HEADER + "\n" + json.dumps({"kind": "event", "type": "scale", "t": 1}), 2, "from"),
    (HEADER + "\n" + json.dumps({"kind": "event", "t": 1}), 2, "type"),
    (HEADER + "\n" + json.dumps({"kind": "bogus", "t": 1}), 2, "unknown kind"),
    (HEADER + "\n" + HEADER, 2, "second header"),
    (HEADER + "\n\n\n" + "{oops", 4, "invalid JSON"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_corrupt_traces_name_the_line(tmp_path, text, line, what):
    p = tmp_path / "bad.jsonl"
    p.write_text(text)
    with pytest.raises(TraceFormatError, match=what) as info:
        Trace.load(p)
    assert info.value.line == line
    assert f"line {line}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_binary_garbage_is_a_clear_error(tmp_path):
    p = tmp_path / "bin.jsonl"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceFormatError, match="UTF-8"):
        Trace.load(p)


def test_unknown_extra_fields_are_kept():
    text = HEADER + "\n" + json.dumps({"kind": "sample", **sample(0.0), "gpu": 3})
    assert Trace.loads(text).samples[0]["gpu"] == 3


def test_never_pickles(tmp_path):
    p = tmp_path / "t.jsonl"
    make_trace(p)
    for line in p.read_text().splitlines():
        json.loads(line)  # every line is plain JSON


def test_a_trace_without_the_user_cpu_field_loads_with_nan(tmp_path):
    # Traces recorded before process_user_cpu_percent existed stay valid.
    p = tmp_path / "old.jsonl"
    rec = Recorder(p)
    old = sample(0.0)
    del old["process_user_cpu_percent"]
    rec.sample(old)
    rec.close()
    assert math.isnan(Trace.load(p).samples[0]["process_user_cpu_percent"])
