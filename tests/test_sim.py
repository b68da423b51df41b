"""Workload model, closed-loop simulation and sweeps."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_lab.policies import (
    Decision,
    FixedPolicy,
    Observation,
    Policy,
    ThresholdPolicy,
    available_policies,
    make_policy,
)
from adaptive_lab.sim.closed_loop import SimulatedPool, simulate
from adaptive_lab.sim.model import Segment, WorkloadModel
from adaptive_lab.sim.mva import mva_grid, mva_throughput
from adaptive_lab.sim.open_loop import replay
from adaptive_lab.sim.parameter_sweep import oscillation, pareto_front, sweep, threshold_targets
from adaptive_lab.trace.format import Trace

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def traces() -> dict[str, Trace]:
    return {p.stem: Trace.load(p) for p in sorted(DATA.glob("*.jsonl"))}


def toy_model(wait: float = 0.005, cpu: float = 1e-4, slots: float = 1.0,
              tasks: int = 20_000, window: int = 52) -> WorkloadModel:
    seg = Segment(t0=0.0, t1=10.0, tasks=tasks, wait_s=wait, cpu_s=cpu, cpu_slots=slots,
                  memory_percent=30.0)
    return WorkloadModel([seg], cores=2, window=window,
                         source={"interval": 0.5, "sample_period": 0.1,
                                 "bounds": {"min_workers": 2, "max_workers": 64}})


# -- the queueing model ---------------------------------------------------------------
def test_mva_limits() -> None:
    x = mva_throughput(400, 0.005, 1e-4, 1.0)
    assert x[0] == 0
    assert x[1] == pytest.approx(1 / 0.0051)  # one worker: wait + cpu per task
    assert (np.diff(x) >= -1e-9).all()  # more workers never lower throughput
    assert x[400] == pytest.approx(1 / 1e-4, rel=0.01)  # saturates at slots / cpu
    assert x[400] <= 1 / 1e-4
    two = mva_throughput(400, 0.005, 1e-4, 2.0)
    assert two[400] == pytest.approx(2 / 1e-4, rel=0.02)
    grid = mva_grid(50, np.array([0.005, 0.001]), np.array([1e-4, 1e-4]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(grid[:, 0], x[:51])


def test_model_round_trips_through_json(traces: dict[str, Trace]) -> None:
    m = WorkloadModel.fit(traces["step"])
    back = WorkloadModel.from_dict(json.loads(json.dumps(m.to_dict(), default=str)))
    assert back.to_dict() == json.loads(json.dumps(m.to_dict(), default=str))
    assert back.throughput(7.5, len(back.segments) - 1) == \
        pytest.approx(m.throughput(7.5, len(m.segments) - 1))
    with pytest.raises(ValueError, match="segments"):
        WorkloadModel.from_dict({"cores": 2})
    with pytest.raises(ValueError, match="cpu_slots"):
        WorkloadModel([Segment(0, 1, 10, 0.001, 1e-4, 0.5)])


def test_fit_recovers_a_known_model() -> None:
    """Simulate a known workload under a policy that visits many sizes, fit it back."""
    truth = toy_model(wait=0.004, cpu=2e-4, slots=1.0, tasks=60_000)
    tr = simulate(truth, ThresholdPolicy(), max_workers=40, noise=0.05, seed=1)
    fitted = WorkloadModel.fit(tr)
    seg = fitted.segments[0]
    assert len(fitted.segments) == 1
    assert seg.arrival_rate is None  # backlogged
    assert seg.cpu_s == pytest.approx(2e-4, rel=0.1)
    assert seg.wait_s == pytest.approx(0.004, rel=0.15)
    assert fitted.window == truth.window
    for k in (2, 10, 30):
        assert fitted.throughput(k) == pytest.approx(truth.throughput(k), rel=0.1)


def test_phases_become_segments(traces: dict[str, Trace]) -> None:
    tr = traces["step"]
    phases = [e["t"] for e in tr.events if e.get("type") == "phase"]
    m = WorkloadModel.fit(tr)
    assert len(m.segments) == len(phases) == 2
    assert m.segments[1].t0 == pytest.approx(phases[1])
    assert m.segments[1].wait_s > 2 * m.segments[0].wait_s  # 2 ms -> 10 ms
    assert sum(s.tasks for s in m.segments) == tr.summary()["tasks"]
    # without the phase events a change-point search finds the step
    bare = Trace(header=tr.header, samples=tr.samples,
                 events=[e for e in tr.events if e.get("type") != "phase"])
    found = WorkloadModel.fit(bare)
    assert len(found.segments) >= 2
    assert min(abs(s.t0 - phases[1]) for s in found.segments[1:]) < 1.0


def test_fit_rejects_unusable_traces(traces: dict[str, Trace]) -> None:
    tr = traces["latency"]
    with pytest.raises(ValueError, match="at least 3 samples"):
        WorkloadModel.fit(Trace(header=tr.header, samples=tr.samples[:2]))
    idle = [dict(s, completed=0) for s in tr.samples]
    with pytest.raises(ValueError, match="no completed tasks"):
        WorkloadModel.fit(Trace(header=tr.header, samples=idle))


# -- closed-loop simulation -------------------------------------------------------------
#: Tolerance of the fixed-size reproduction below. The model's ``efficiency`` is
#: calibrated on the same run, so this checks the fit -> Controller -> fluid pool chain
#: reproduces it (start-up ramp, window, counts), not cross-policy prediction, which
#: ``adaptive-lab validate-sim`` measures on live runs (docs/replay.md).
FIXED_TOLERANCE = 0.05


def test_simulating_a_fixed_run_reproduces_its_throughput(traces: dict[str, Trace]) -> None:
    live = traces["latency-fixed12"]
    assert live.header["policy"]["name"] == "fixed"
    model = WorkloadModel.fit(live)
    sim = simulate(model, FixedPolicy(12))
    ls, ss = live.summary(), sim.summary()
    assert ss["tasks"] == ls["tasks"]
    live_thr = ls["tasks"] / ls["duration_s"]
    sim_thr = ss["tasks"] / sim.header["makespan_s"]
    assert sim_thr == pytest.approx(live_thr, rel=FIXED_TOLERANCE)


def test_simulation_runs_through_the_controller() -> None:
    """Errors are handled by the real Controller: recorded, size held."""

    class Flaky(Policy):
        name = "flaky"

        def decide(self, obs: Observation) -> Decision:
            if 1.0 < obs.t < 2.0:
                raise RuntimeError("flaky policy")
            return Decision(obs.workers + 1, "grow")

    tr = simulate(toy_model(), Flaky(), max_workers=30)
    errors = [e for e in tr.events if e["type"] == "error"]
    assert errors and errors[0]["where"] == "policy" and "flaky" in errors[0]["message"]
    assert tr.header["simulated"] is True
    assert tr.header["model"]["segments"][0]["wait_s"] == 0.005
    assert tr.header["policy"]["name"] == "flaky"
    assert tr.header["bounds"] == {"min_workers": 2, "max_workers": 30}


def test_simulated_observations_carry_the_tasks_cpu() -> None:
    """The model knows each task's CPU seconds: observations and samples carry
    ``task_cpu_cores`` = completions per second * CPU seconds per task."""
    seen: list[Observation] = []

    class Spy(Policy):
        name = "spy"

        def decide(self, obs: Observation) -> Decision:
            seen.append(obs)
            return Decision(8, "hold at 8")

    tr = simulate(toy_model(cpu=1e-4), Spy(), initial_workers=8)
    busy = [o for o in seen if o.throughput > 0]
    assert len(busy) >= 3
    for o in busy:
        assert o.task_cpu_cores == pytest.approx(o.throughput * 1e-4, rel=0.01)
    cores = np.array([s["task_cpu_cores"] for s in tr.samples[1:]], dtype=float)
    assert np.isfinite(cores).all() and cores.max() > 0


def test_simulation_is_deterministic_and_in_live_format(tmp_path: Path,
                                                        traces: dict[str, Trace]) -> None:
    m = WorkloadModel.fit(traces["mixed"])
    a = simulate(m, ThresholdPolicy(), noise=0.1, seed=7)
    b = simulate(m, ThresholdPolicy(), noise=0.1, seed=7)
    c = simulate(m, ThresholdPolicy(), noise=0.1, seed=8)
    assert a.samples == b.samples and a.events == b.events
    assert a.samples != c.samples
    loaded = Trace.load(a.save(tmp_path / "sim.jsonl"))  # validates every line
    assert len(loaded.samples) == len(a.samples)
    assert loaded.samples[-1]["completed"] == m.total_tasks
    assert a.header["makespan_s"] == pytest.approx(a.samples[-1]["t"], abs=0.11)


def test_simulated_pool_conserves_tasks() -> None:
    m = toy_model(tasks=5000, window=20)
    pool = SimulatedPool(m, 4)
    last = -1
    while not pool.finished:
        pool.advance(0.05)
        st_ = pool.stats()
        assert st_.busy <= st_.size and st_.busy + st_.queued <= m.window
        assert last <= st_.completed <= 5000
        last = st_.completed
        if pool.t > 5:
            pool.resize(16)
    assert pool.stats().completed == 5000
    x4, x16 = m.throughput(4), m.throughput(16)
    t_resize = 5.05  # the first step after t > 5
    assert 5000 > t_resize * x4
    assert pool.finished_at == pytest.approx(t_resize + (5000 - t_resize * x4) / x16, rel=0.01)
    assert pool.recent_task_times(3) and len(pool.recent_task_times(100)) == 16


def test_arrival_limited_segment_follows_the_offered_rate() -> None:
    seg = Segment(0.0, 10.0, 2000, 0.005, 1e-4, 1.0, arrival_rate=200.0)
    pool = SimulatedPool(WorkloadModel([seg], cores=2), 32)
    pool.advance(5.0)
    assert pool.stats().completed == pytest.approx(1000, abs=2)
    assert pool.busy_f == pytest.approx(200 * 0.0051, rel=0.05)  # Little's law
    assert pool.stats().queued == 0


def test_a_slow_submitter_caps_throughput() -> None:
    seg = Segment(0.0, 10.0, 3000, 0.005, 1e-4, 1.0, submit_rate=300.0)
    m = WorkloadModel([seg], cores=2, window=52)
    pool = SimulatedPool(m, 32)
    pool.advance(5.0)
    assert pool.stats().completed == pytest.approx(1500, abs=2)
    assert pool.stats().queued == 0  # the submitter, not the pool, is the bottleneck
    assert WorkloadModel.from_dict(m.to_dict()).segments[0].submit_rate == 300.0


@settings(max_examples=25, deadline=None)
@given(lo=st.integers(1, 20), span=st.integers(0, 40),
       name=st.sampled_from(sorted(set(available_policies()) - {"fixed"})))
def test_simulated_targets_stay_within_bounds(lo: int, span: int, name: str) -> None:
    hi = lo + span
    tr = simulate(toy_model(tasks=3000), make_policy(name), min_workers=lo, max_workers=hi,
                  initial_workers=lo)
    w = np.array([s["workers"] for s in tr.samples])
    assert (w >= lo).all() and (w <= hi).all()
    for e in tr.scale_events():
        assert lo <= e["to"] <= hi


def test_simulate_bad_arguments_name_the_parameter() -> None:
    m = toy_model()
    with pytest.raises(ValueError, match="min_workers"):
        simulate(m, FixedPolicy(3), min_workers=4, max_workers=2)
    with pytest.raises(ValueError, match="duration"):
        simulate(m, FixedPolicy(3), duration=-1)
    with pytest.raises(ValueError, match="tasks"):
        simulate(m, FixedPolicy(3), tasks=-5)
    with pytest.raises(TypeError, match="model"):
        simulate({"segments": []}, FixedPolicy(3))  # type: ignore[arg-type]


# -- sweeps ---------------------------------------------------------------------------------
GRID = {"scale_up_queue": [0, 5, 20, 45], "moderate_queue": [0, 3, 30],
        "scale_down_cpu": [30.0, 80.0, 99.0], "smoothing": [0.0, 0.6]}


@pytest.mark.parametrize("name", ["mixed", "step", "local"])
def test_vectorised_threshold_sweep_equals_the_policy_code(traces: dict[str, Trace],
                                                           name: str) -> None:
    tr = traces[name]
    base = {"scale_up_cpu": 20.0, "down_step": 3}
    vec = sweep(tr, ThresholdPolicy, GRID, mode="open", base=base)
    ref = sweep(tr, ThresholdPolicy, GRID, mode="open", base=base, vectorise=False)
    assert vec.vectorised and not ref.vectorised
    assert np.array_equal(vec.valid, ref.valid)
    for m in vec.metrics:
        assert np.array_equal(vec.metrics[m], ref.metrics[m], equal_nan=True), m
    # the targets themselves, sample by sample, for every grid point
    points = [dict(row, **base) for row in vec.table()]
    points = [{k: v for k, v in p.items() if k in ThresholdPolicy().params()} for p in points]
    tg = threshold_targets(tr, [ThresholdPolicy(**p).params() for p in points],
                           min_workers=3, max_workers=20)
    for g, p in enumerate(points):
        r = replay(tr, ThresholdPolicy(**p), min_workers=3, max_workers=20)
        assert tg[:, g].tolist() == [s["target"] for s in r.samples]


def test_sweep_result_api(traces: dict[str, Trace]) -> None:
    grid = {"scale_up_cpu": [10.0, 50.0, 90.0], "scale_down_cpu": [20.0, 95.0]}
    res = sweep(traces["latency"], ThresholdPolicy, grid, mode="open")
    assert len(res) == 6 and res.shape == (3, 2)
    assert not res.valid[4]  # scale_up_cpu 90 > scale_down_cpu 20: rejected
    assert "scale_up_cpu" in res.errors[4]
    assert math.isnan(res.metrics["throughput"][4])
    best = res.best("throughput")
    assert best["valid"] and best["throughput"] == np.nanmax(res.metrics["throughput"])
    front = res.pareto()
    assert front and all(r["valid"] for r in front)
    ws = [r["worker_seconds"] for r in front]
    thr = [r["throughput"] for r in front]
    assert ws == sorted(ws) and thr == sorted(thr)  # cheaper points deliver less
    pytest.importorskip("pandas")
    assert len(res.frame()) == 6
    with pytest.raises(ValueError, match="metric"):
        res.best("nope")
    with pytest.raises(ValueError, match="no parameter 'nope'"):
        sweep(traces["latency"], ThresholdPolicy, {"nope": [1]}, mode="open")
    with pytest.raises(ValueError, match="mode"):
        sweep(traces["latency"], ThresholdPolicy, grid, mode="sideways")
    with pytest.raises(TypeError, match="Trace"):
        sweep(WorkloadModel.fit(traces["latency"]), ThresholdPolicy, grid, mode="open")


def test_closed_sweep_more_workers_finish_sooner_on_a_latency_workload() -> None:
    res = sweep(toy_model(tasks=10_000), FixedPolicy, {"n": [2, 8, 32]}, mode="closed",
                initial_workers=2)
    mk = res.metrics["makespan"]
    assert mk[0] > mk[1] > mk[2]
    assert res.best("throughput")["n"] == 32
    assert res.metrics["oscillation"].tolist() == [0.0, 0.0, 0.0]


def test_oscillation_and_pareto_by_hand() -> None:
    t = np.array([[2, 4, 6, 6, 4, 4, 6, 8]]).T  # up, up, hold, down, hold, up, up
    assert oscillation(t, 60.0).tolist() == [2.0]  # two direction changes in a minute
    assert oscillation(np.array([[1, 2, 3]]).T, 30.0).tolist() == [0.0]
    cost = np.array([1.0, 2.0, 2.0, 3.0, 0.5])
    gain = np.array([10.0, 12.0, 11.0, 11.5, 5.0])
    assert pareto_front(cost, gain) == [4, 0, 1]


def test_record_scan_records_a_real_scan(tmp_path: Path) -> None:
    """A short live run: real scanner, real files, real threads, one file per task."""
    from adaptive_lab.scanner.profiles import Profile
    from adaptive_lab.scanner.record import record_scan

    out = tmp_path / "live.jsonl"
    tr = record_scan([(Profile("latency", latency_ms=1.0), 2), ("local", 1)], FixedPolicy(4),
                     corpus=tmp_path / "corpus", files=150, min_workers=2, max_workers=8,
                     interval=0.1, sample_period=0.05, batch_seconds=1e-9, path=out)
    loaded = Trace.load(out)  # written as it ran, and valid
    assert loaded.samples[-1]["completed"] == tr.samples[-1]["completed"] == 450
    assert [e["name"] for e in tr.events if e["type"] == "phase"] == ["latency", "local"]
    assert tr.header["workload"]["corpus"]["files"] == 150
    assert tr.header["policy"]["name"] == "fixed"
    assert max(s["workers"] for s in tr.samples) == 4
    model = WorkloadModel.fit(tr)
    assert model.total_tasks == 450 and len(model.segments) == 2
    with pytest.raises(ValueError, match="passes"):
        record_scan([("latency", 0)], FixedPolicy(4), corpus=tmp_path / "corpus", files=150)


def _cpu_bound_trace(starved_rate: float, host: dict | None = None, n: int = 60,
                     tenants: Callable[[int], float] = lambda i: 20.0) -> Trace:
    """A hand-made 1-core CPU-bound run at 8 workers, 1 ms CPU per task: the queue runs
    dry in 2 of every 5 periods (a scan pass ending), completing ``starved_rate``/s
    then (1000/s otherwise); the machine's other tenants use ``tenants(i)`` % of it."""
    host = host or {"cores": 1, "cpu_count": 1}
    header = {"kind": "header", "schema": "adaptive-lab/trace", "version": 1, "host": host,
              "policy": {"name": "fixed", "params": {"n": 8}}, "interval": 0.5,
              "sample_period": 0.1, "bounds": {"min_workers": 8, "max_workers": 8}}
    samples, done, sub = [], 0, 40
    share = host["cores"] / host["cpu_count"]
    for i in range(n + 1):
        dry = i % 5 in (1, 2)
        x = starved_rate if dry else 1000.0
        if i:
            done += int(x * 0.1)
            sub = done + (0 if dry else 48)
        pcpu = 100.0 * x / 1000.0
        samples.append({"t": 0.1 * i, "workers": 8, "busy": 6 if dry else 8,
                        "queued": 0 if dry else 40, "submitted": sub, "completed": done,
                        "failed": 0, "cpu_percent": min(100.0, pcpu * share + tenants(i)),
                        "process_cpu_percent": pcpu, "memory_percent": 10.0,
                        "available_mb": 1e4, "rss_mb": 50.0, "throughput": x,
                        "latency_mean": 8 / x, "latency_p50": 8 / x, "latency_p95": 9 / x})
    return Trace(header=header, samples=samples, events=[])


def test_queue_running_dry_at_full_speed_is_not_a_slow_submitter() -> None:
    model = WorkloadModel.fit(_cpu_bound_trace(1000.0))
    seg = model.segments[0]
    assert seg.submit_rate is None
    assert seg.capacity == pytest.approx(1000.0, rel=0.05)


def test_a_submitter_that_fell_short_caps_at_least_at_the_mean_rate() -> None:
    seg = WorkloadModel.fit(_cpu_bound_trace(500.0)).segments[0]
    assert seg.submit_rate == pytest.approx(0.6 * 1000 + 0.4 * 500, rel=0.02)


def test_a_pinned_run_keeps_system_cpu_relative_to_the_machine() -> None:
    """Pinned to 1 of 2 CPUs: the process's 100 % is half the machine; the other
    tenants' 20 % is of the machine, in the fit and in the simulated readings."""
    from adaptive_lab.sim.closed_loop import SimulatedMetrics

    model = WorkloadModel.fit(_cpu_bound_trace(1000.0, {"cores": 1, "cpu_count": 2}))
    assert (model.cores, model.cpu_count) == (1, 2)
    assert model.segments[0].background_cpu == pytest.approx(20.0, abs=1.0)
    assert WorkloadModel.from_dict(model.to_dict()).cpu_count == 2
    pool = SimulatedPool(model, 8)
    metrics = SimulatedMetrics(pool)
    pool.advance(1.0)
    s = metrics.read()
    assert s.process_cpu_percent == pytest.approx(100.0, rel=0.05)
    assert s.cpu_percent == pytest.approx(50.0 + 20.0, rel=0.05)
    assert s.cores == 1.0
    sim = simulate(model, FixedPolicy(8))
    assert (sim.header["host"]["cores"], sim.header["host"]["cpu_count"]) == (1, 2)
    with pytest.raises(ValueError, match="cpu_count"):
        WorkloadModel(model.segments, cores=2, cpu_count=1)


def test_record_scan_fixed_size_tasks(tmp_path: Path) -> None:
    """``batch_files``: every task is that many files (the last of a pass fewer)."""
    from adaptive_lab.scanner.record import record_scan

    tr = record_scan([("local", 2)], FixedPolicy(3), corpus=tmp_path / "corpus", files=100,
                     min_workers=2, max_workers=4, interval=0.1, sample_period=0.05,
                     batch_files=7)
    assert tr.samples[-1]["completed"] == 2 * math.ceil(100 / 7)
    assert tr.header["workload"]["batch_files"] == 7
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="batch_files"):
            record_scan([("local", 1)], FixedPolicy(3), corpus=tmp_path / "corpus",
                        files=100, batch_files=bad)
    with pytest.raises(ValueError, match="batch_files"):
        record_scan([("local", 1)], FixedPolicy(3), corpus=tmp_path / "corpus", files=100,
                    batch_files=7, batch_seconds=1e-3)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_validate_sim_pinning_restores_the_affinity() -> None:
    from adaptive_lab.cli.validate_sim import pinned

    before = os.sched_getaffinity(0)
    with pinned(1):
        assert os.sched_getaffinity(0) == {max(before)}
    assert os.sched_getaffinity(0) == before
    with pytest.raises(ValueError, match="cpus"), pinned(len(before) + 1):
        pass
    assert os.sched_getaffinity(0) == before


def test_validate_sim_tenant_diagnostic_leaves_the_model_alone() -> None:
    from adaptive_lab.cli.validate_sim import predict_metrics, run_metrics, with_background

    model = toy_model()
    pinned = {"cores": 1, "cpu_count": 2}
    given = with_background(model, _cpu_bound_trace(1000.0, pinned,
                                                     tenants=lambda i: 10.0 * (i % 5)))
    assert given.segments[0].background_cpu == 20.0
    q = given.segments[0].background_q
    assert q is not None and len(q) == 16 and (min(q), max(q)) == (0.0, 40.0)
    assert model.segments[0].background_cpu == 0.0 and model.segments[0].background_q is None
    tr, mean = predict_metrics(given, FixedPolicy(4), 3)
    assert mean["seeds"] == 3
    assert run_metrics(tr)["background_cpu"] == pytest.approx(20.0, abs=10.0)
    one = run_metrics(simulate(given, FixedPolicy(4)))
    assert predict_metrics(given, FixedPolicy(4), 1)[1]["makespan_s"] == one["makespan_s"]


def test_other_tenants_cpu_is_drawn_from_its_recorded_spread() -> None:
    """Fitted as 16 quantiles; a simulation draws one per reading (seeded), so a policy
    near a CPU threshold sees it crossed now and then, as in a live run."""
    from adaptive_lab.sim.closed_loop import SimulatedMetrics

    tr = _cpu_bound_trace(1000.0, {"cores": 1, "cpu_count": 2}, n=80,
                          tenants=lambda i: 0.0 if i % 2 else 40.0)
    model = WorkloadModel.fit(tr)
    q = model.segments[0].background_q
    assert q is not None and len(q) == 16 and min(q) == 0.0 and max(q) == 40.0
    assert WorkloadModel.from_dict(json.loads(json.dumps(model.to_dict()))
                                   ).segments[0].background_q == q

    def readings(seed: int) -> list[float]:
        pool = SimulatedPool(model, 8)
        m = SimulatedMetrics(pool, seed)
        out = []
        for _ in range(60):  # 6 s of the 8 s of work
            pool.advance(0.1)
            out.append(m.read().cpu_percent - 50.0)  # the process: 1 core of 2, busy
        return out

    a = readings(0)
    assert a == readings(0) and a != readings(1)
    assert 0.3 < np.mean(np.array(a) < 20.0) < 0.7  # about half the draws are the 0 %


def test_passes_become_rounds_and_the_queue_runs_dry_between_them() -> None:
    """A scan repeated in passes: the fit reads ``passes`` from the phase events; the
    simulation submits each pass after the previous one is done."""
    tr = _cpu_bound_trace(1000.0)
    tr.events.append({"t": 0.0, "type": "phase", "name": "local", "passes": 12})
    model = WorkloadModel.fit(tr)
    assert model.segments[0].rounds == 12
    assert WorkloadModel.from_dict(model.to_dict()).segments[0].rounds == 12
    one = WorkloadModel.from_dict({**model.to_dict(), "segments": [
        {**model.to_dict()["segments"][0], "rounds": None}]})
    sims = {name: simulate(m, FixedPolicy(8), sample_period=0.002)
            for name, m in (("rounds", model), ("one", one))}
    # samples with an empty queue before the last pass (which drains either way)
    dry = {name: sum(1 for s in sim.samples[1:]
                     if s["queued"] == 0 and s["t"] < 11 / 12 * sim.header["makespan_s"])
           for name, sim in sims.items()}
    assert dry["one"] == 0 and dry["rounds"] >= 11  # at least one sample per pass end
    assert sims["rounds"].samples[-1]["completed"] == model.total_tasks
    # on a saturated CPU the drain costs no throughput (the last tasks share it)
    assert sims["rounds"].header["makespan_s"] == pytest.approx(
        sims["one"].header["makespan_s"], rel=0.01)
