"""Open-loop replay: determinism, fidelity to the controller, errors naming the line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_lab.cli.main import main
from adaptive_lab.policies import (
    Decision,
    FixedPolicy,
    Observation,
    Policy,
    ThresholdPolicy,
    available_policies,
    make_policy,
)
from adaptive_lab.sim.closed_loop import simulate
from adaptive_lab.sim.model import WorkloadModel
from adaptive_lab.sim.open_loop import _observation, observations, replay
from adaptive_lab.trace.format import Trace, TraceFormatError

DATA = Path(__file__).resolve().parents[1] / "data"
THRESHOLD_TRACES = ["latency", "local", "step", "mixed"]


@pytest.fixture(scope="module")
def traces() -> dict[str, Trace]:
    return {p.stem: Trace.load(p) for p in sorted(DATA.glob("*.jsonl"))}


def test_data_traces_are_small_and_valid(traces: dict[str, Trace]) -> None:
    assert set(THRESHOLD_TRACES) <= set(traces)
    for name, tr in traces.items():
        assert (DATA / f"{name}.jsonl").stat().st_size < 1_000_000
        assert len(tr.samples) >= 40, name
        # the module that recorded it (record_scan has moved twice since data/ was made)
        assert tr.header["workload"]["driver"] in ("adaptive_lab.sim.record_scan",
                                                   "adaptive_lab.record.record_scan",
                                                   "adaptive_lab.scanner.record.record_scan")
    for name in THRESHOLD_TRACES:  # recorded with a policy that moves
        assert len(traces[name].scale_events()) >= 3, name


@pytest.mark.parametrize("name", available_policies())
def test_replaying_twice_gives_identical_output(traces: dict[str, Trace], name: str) -> None:
    pol = make_policy(name)
    a = replay(traces["mixed"], pol)
    b = replay(traces["mixed"], pol)
    assert a.samples == b.samples
    assert a.events == b.events
    assert a.header == b.header
    assert a.header["policy"] == pol.describe()


@pytest.mark.parametrize("name", [*THRESHOLD_TRACES, "latency-fixed12"])
def test_replaying_the_recording_policy_reproduces_its_decisions(
        traces: dict[str, Trace], name: str) -> None:
    """The controller's observations are rebuilt exactly: same policy, same sizes."""
    tr = traces[name]
    pol = make_policy(tr.header["policy"]["name"], **tr.header["policy"]["params"])
    out = replay(tr, pol)
    assert [s["target"] for s in out.samples] == [s["workers"] for s in tr.samples]
    # (a live run's last sample is taken at shutdown, without a decision; a replay
    # decides there if one is due, which changes no sample)
    end = tr.samples[-1]["t"]
    assert [(e["from"], e["to"]) for e in out.scale_events() if e["t"] < end] == \
        [(e["from"], e["to"]) for e in tr.scale_events()]


def test_replay_output_format(traces: dict[str, Trace], tmp_path: Path) -> None:
    tr = traces["step"]
    out = replay(tr, ThresholdPolicy(scale_up_queue=5, up_step=8))
    assert out.header["replay"]["mode"] == "open"
    assert out.header["replay"]["source"]["samples"] == len(tr.samples)
    assert out.header["policy"]["params"]["up_step"] == 8
    assert len(out.samples) == len(tr.samples)
    assert out.samples[0]["target"] == tr.samples[0]["workers"]
    # every scale event continues from the previous size, and targets follow them
    size = tr.samples[0]["workers"]
    for e in out.scale_events():
        assert e["from"] == size and e["to"] != size and e["reason"]
        size = e["to"]
    assert out.samples[-1]["target"] == size or out.scale_events()[-1]["t"] == \
        out.samples[-1]["t"]
    # the recorded samples are not modified
    assert "target" not in tr.samples[0]
    loaded = Trace.load(out.save(tmp_path / "r.jsonl"))
    assert loaded.samples[5]["target"] == out.samples[5]["target"]


def test_observations_match_what_the_controller_showed_the_policy() -> None:
    """Record a simulated run with a spy policy; rebuild its observations from the trace."""
    seen: list[Observation] = []

    class Spy(ThresholdPolicy):
        name = "spy"

        def decide(self, obs: Observation) -> Decision:
            seen.append(obs)
            return super().decide(obs)

    model = WorkloadModel.fit(Trace.load(DATA / "latency.jsonl"))
    tr = simulate(model, Spy(), interval=0.5, sample_period=0.1, noise=0.2, seed=3)
    _idx, obs = observations(tr)
    assert len(obs) == len(seen) > 10
    for mine, real in zip(obs, seen, strict=True):
        for f in ("workers", "busy", "queue_depth", "cpu_percent", "memory_percent",
                  "completed", "submitted", "min_workers", "max_workers"):
            assert getattr(mine, f) == getattr(real, f), f
        assert mine.t == pytest.approx(real.t, abs=1e-6)
        assert mine.dt == pytest.approx(real.dt, abs=2e-6)
        assert mine.throughput == pytest.approx(real.throughput, rel=1e-4, nan_ok=True)


def test_fast_observation_equals_the_normal_one() -> None:
    fields = dict(t=1.0, busy=3, queue_depth=5, cpu_percent=50.0, memory_percent=40.0,
                  process_cpu_percent=20.0, available_mb=1000.0, completed=10, submitted=20,
                  failed=0, throughput=100.0, latency_mean=0.01, latency_p50=0.01,
                  latency_p95=0.02, dt=5.0, min_workers=2, max_workers=24)
    fast = _observation(fields, 7)
    assert fast == Observation(workers=7, alive=7, **fields)
    assert fast.clamp(100) == 24


class Boom(Policy):
    name = "boom"

    def decide(self, obs: Observation) -> Decision:
        if obs.t > 2.0:
            raise RuntimeError("policy bug")
        return Decision(obs.workers + 1, "grow")


def test_a_failing_policy_records_errors_and_holds_the_size(traces: dict[str, Trace]) -> None:
    out = replay(traces["latency"], Boom())
    errors = [e for e in out.events if e["type"] == "error"]
    assert errors and "policy bug" in errors[0]["message"]
    last = max(e["to"] for e in out.scale_events())
    assert out.samples[-1]["target"] == last


@settings(max_examples=40, deadline=None)
@given(lo=st.integers(1, 30), span=st.integers(0, 40), up=st.integers(0, 50),
       down=st.integers(0, 50), q=st.integers(0, 60))
def test_replayed_targets_stay_within_bounds(lo: int, span: int, up: int, down: int,
                                             q: int) -> None:
    tr = _TRACE_CACHE.setdefault("t", Trace.load(DATA / "mixed.jsonl"))
    hi = lo + span
    out = replay(tr, ThresholdPolicy(up_step=up, down_step=down, moderate_queue=q),
                 min_workers=lo, max_workers=hi)
    targets = np.array([s["target"] for s in out.samples])
    assert (targets >= lo).all() and (targets <= hi).all()
    for e in out.scale_events():
        assert lo <= e["to"] <= hi


_TRACE_CACHE: dict[str, Trace] = {}


def test_bad_arguments_name_the_parameter(traces: dict[str, Trace]) -> None:
    with pytest.raises(ValueError, match="interval"):
        replay(traces["latency"], FixedPolicy(4), interval=0)
    with pytest.raises(ValueError, match="min_workers"):
        replay(traces["latency"], FixedPolicy(4), min_workers=5, max_workers=2)
    with pytest.raises(TypeError, match="policy"):
        replay(traces["latency"], "threshold")  # type: ignore[arg-type]
    empty = Trace(header=traces["latency"].header, samples=[], events=[])
    with pytest.raises(ValueError, match="no samples"):
        replay(empty, FixedPolicy(4))


# -- malformed traces, through replay's entry points ---------------------------------
def _write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def good_lines() -> list[str]:
    return (DATA / "latency.jsonl").read_text().splitlines()[:30]


@pytest.mark.parametrize("case", ["truncated", "garbage", "no_header", "missing_field",
                                  "backwards", "bad_schema"])
def test_malformed_traces_give_an_error_naming_the_line(
        tmp_path: Path, good_lines: list[str], case: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    lines = list(good_lines)
    samples = [i for i, x in enumerate(lines) if json.loads(x)["kind"] == "sample"]
    if case == "truncated":  # a run killed mid-write
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
        bad = len(lines)
    elif case == "garbage":
        lines[12] = "{not json"
        bad = 13
    elif case == "no_header":
        lines = lines[1:]
        bad = 1
    elif case == "missing_field":
        i = samples[5]
        rec = json.loads(lines[i])
        del rec["workers"]
        lines[i] = json.dumps(rec)
        bad = i + 1
    elif case == "backwards":
        i = samples[10]
        rec = json.loads(lines[i])
        rec["t"] = -5.0
        lines[i] = json.dumps(rec)
        bad = i + 1
    else:
        rec = json.loads(lines[0])
        rec["schema"] = "something-else"
        lines[0] = json.dumps(rec)
        bad = 1
    path = _write(tmp_path, lines)
    with pytest.raises(TraceFormatError) as info:
        Trace.load(path)
    assert info.value.line == bad
    # the CLI says which line, without a traceback, exit code 2
    assert main(["replay", str(path), "--policy", "threshold"]) == 2
    err = capsys.readouterr().err
    assert f"line {bad}:" in err and str(path) in err
    assert main(["replay", str(path), "--policy", "threshold", "--mode", "closed"]) == 2


def test_cli_missing_file_is_a_clear_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_replay_open_and_closed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = str(DATA / "step.jsonl")
    out = tmp_path / "open.jsonl"
    assert main(["replay", src, "--policy", "threshold", "--set", "scale_up_queue=5",
                 "--output", str(out)]) == 0
    assert "feedback ignored" in capsys.readouterr().out
    tr = Trace.load(out)
    assert "target" in tr.samples[0] and tr.header["policy"]["params"]["scale_up_queue"] == 5
    assert main(["replay", src, "--policy", "fixed", "--set", "n=6", "--mode", "closed",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "closed"
    assert summary["simulated"]["max_workers"] == 6
    assert summary["simulated"]["tasks"] == summary["recorded"]["tasks"]
    assert main(["replay", src, "--policy", "fixed", "--set", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_cli_replay_html(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    html = tmp_path / "r.html"
    assert main(["replay", str(DATA / "latency.jsonl"), "--html", str(html)]) == 0
    assert html.stat().st_size > 10_000
