"""ThresholdPolicy and FixedPolicy: table-driven, like Kubernetes' HPA tests.

Each row is one situation with the expected target written out by hand from the
original design report's threshold rules: memory > 85 -> -2; cpu > 80 and queue < 2
-> -2; cpu < 40 and queue > 20 -> +4; queue > 5 -> +2; else hold; clamp to bounds.
"""

from __future__ import annotations

import math

import pytest

from adaptive_lab.policies import (
    THRESHOLD_DEFAULTS,
    Decision,
    FixedPolicy,
    Observation,
    Param,
    ThresholdPolicy,
    UnknownParameterError,
    make_policy,
    parse_assignments,
)

NAN = math.nan

# (name, workers, cpu, mem, queue, min, max, expected, reason substring)
THRESHOLD_TABLE = [
    ("memory pressure wins over everything", 10, 10.0, 90.0, 50, 4, 24, 8, "memory"),
    ("memory exactly at 85 is not pressure", 10, 50.0, 85.0, 0, 4, 24, 10, "hold"),
    ("high cpu, short queue: shrink by 2", 10, 85.0, 50.0, 1, 4, 24, 8, "cpu 85%"),
    ("high cpu, queue at 2 is not short", 10, 85.0, 50.0, 2, 4, 24, 10, "hold"),
    ("cpu exactly 80 is not high", 10, 80.0, 50.0, 0, 4, 24, 10, "hold"),
    ("low cpu, long queue: grow by 4", 10, 20.0, 50.0, 30, 4, 24, 14, "+4"),
    ("queue exactly 20 is not long", 10, 20.0, 50.0, 20, 4, 24, 12, "+2"),
    ("cpu exactly 40 is not low: moderate +2", 10, 40.0, 50.0, 30, 4, 24, 12, "+2"),
    ("moderate queue: grow by 2", 10, 60.0, 50.0, 6, 4, 24, 12, "queue 6 > 5"),
    ("queue exactly 5: hold", 10, 60.0, 50.0, 5, 4, 24, 10, "hold"),
    ("high cpu, long queue: moderate +2", 10, 95.0, 50.0, 50, 4, 24, 12, "+2"),
    ("grow clamped at max", 22, 10.0, 50.0, 100, 4, 24, 24, "clamped"),
    ("shrink clamped at min", 5, 90.0, 50.0, 0, 4, 24, 4, "clamped"),
    ("memory shrink clamped at min", 4, 10.0, 99.0, 0, 4, 24, 4, "clamped"),
    ("hold below min is raised to min", 2, 50.0, 50.0, 0, 4, 24, 4, "hold"),
    ("unknown cpu: no cpu rule fires, queue rule does", 10, NAN, 50.0, 30, 4, 24, 12, "+2"),
    ("unknown memory and cpu, idle: hold", 10, NAN, NAN, 0, 4, 24, 10, "hold"),
    ("report bounds: 2 cores -> 4..24", 24, 10.0, 50.0, 30, 4, 24, 24, "clamped"),
]


@pytest.mark.parametrize(
    "name,workers,cpu,mem,queue,lo,hi,expected,why", THRESHOLD_TABLE,
    ids=[row[0] for row in THRESHOLD_TABLE])
def test_threshold_rules(name, workers, cpu, mem, queue, lo, hi, expected, why):
    obs = Observation(t=5.0, workers=workers, cpu_percent=cpu, memory_percent=mem,
                      queue_depth=queue, min_workers=lo, max_workers=hi)
    d = ThresholdPolicy().decide(obs)
    assert isinstance(d, Decision)
    assert d.target == expected
    assert why in d.reason


def test_threshold_parameters_default_to_the_reports():
    assert ThresholdPolicy().params() == {
        "scale_up_cpu": 40.0, "scale_up_queue": 20, "scale_down_cpu": 80.0,
        "scale_down_queue": 2, "memory_pressure": 85.0, "moderate_queue": 5,
        "up_step": 4, "moderate_step": 2, "down_step": 2, "smoothing": 0.0,
    }


def test_threshold_defaults_by_name():
    from adaptive_lab._host import available_cores

    cores = available_cores()
    assert THRESHOLD_DEFAULTS["min_workers"] == max(4, cores)
    assert THRESHOLD_DEFAULTS["max_workers"] == min(100, cores * 12)
    assert THRESHOLD_DEFAULTS["interval"] == 5.0
    assert THRESHOLD_DEFAULTS["metrics_log_interval"] == 30.0


def test_smoothing_damps_a_single_spike():
    p = ThresholdPolicy(smoothing=0.8)
    calm = Observation(t=0, workers=10, cpu_percent=50, memory_percent=50, queue_depth=0)
    assert p.decide(calm).target == 10
    spike = calm.replace(t=5, queue_depth=30, cpu_percent=10)
    # smoothed queue = 0.8*0 + 0.2*30 = 6 > 5 -> +2 (not +4); cpu 0.8*50+0.2*10 = 42
    d = p.decide(spike)
    assert d.target == 12 and "+2" in d.reason
    # unsmoothed: +4
    assert ThresholdPolicy().decide(spike).target == 14


def test_threshold_state_is_driven_by_observations_only():
    seq = [Observation(t=float(i), workers=10, cpu_percent=10.0 * (i % 10),
                       memory_percent=50, queue_depth=(7 * i) % 40) for i in range(50)]
    a = ThresholdPolicy(smoothing=0.5)
    b = a.with_params()
    assert [a.decide(o) for o in seq] == [b.decide(o) for o in seq]


@pytest.mark.parametrize("param,value", [
    ("scale_up_cpu", -1), ("scale_up_cpu", 101), ("scale_up_cpu", NAN),
    ("scale_up_queue", -5), ("scale_up_queue", 2.5), ("scale_down_cpu", "high"),
    ("memory_pressure", 150), ("smoothing", 1.0), ("up_step", True),
])
def test_invalid_thresholds_raise_value_error_naming_the_parameter(param, value):
    with pytest.raises(ValueError, match=param):
        ThresholdPolicy(**{param: value})


def test_cross_parameter_check_names_the_parameter():
    with pytest.raises(ValueError, match="scale_up_cpu"):
        ThresholdPolicy(scale_up_cpu=90, scale_down_cpu=80)


def test_unknown_parameter_is_value_and_type_error():
    with pytest.raises(ValueError, match="nonsense"):
        ThresholdPolicy(nonsense=1)
    with pytest.raises(TypeError):
        ThresholdPolicy(nonsense=1)
    assert issubclass(UnknownParameterError, ValueError)


def test_params_carry_range_step_and_description():
    for spec in ThresholdPolicy.param_specs():
        assert isinstance(spec, Param)
        assert spec.low <= spec.default <= spec.high
        assert spec.step > 0 and spec.description
        d = spec.to_dict()
        assert set(d) >= {"name", "default", "low", "high", "step", "description", "kind"}


def test_with_params_and_set_params():
    p = ThresholdPolicy()
    q = p.with_params(scale_up_queue=10)
    assert q.scale_up_queue == 10 and p.scale_up_queue == 20
    p.set_params(scale_up_queue="12")  # strings from a CLI or slider are converted
    assert p.params()["scale_up_queue"] == 12
    with pytest.raises(ValueError, match="scale_up_queue"):
        p.set_params(scale_up_queue=-1)
    assert p.scale_up_queue == 12  # nothing applied on error


def test_fixed_policy():
    obs = Observation(t=0, workers=3, min_workers=1, max_workers=10)
    assert FixedPolicy(8).decide(obs) == Decision(8, "fixed at 8")
    assert FixedPolicy(n=50).decide(obs).target == 10
    with pytest.raises(ValueError, match="'n'"):
        FixedPolicy(0)


def test_registry_and_cli_assignments():
    p = make_policy("threshold", **parse_assignments(["scale_up_queue=10", "smoothing=0.5"]))
    assert isinstance(p, ThresholdPolicy) and p.scale_up_queue == 10 and p.smoothing == 0.5
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("nope")
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["novalue"])


def test_decision_requires_int_target():
    with pytest.raises(TypeError):
        Decision(2.5, "x")  # type: ignore[arg-type]


def test_observation_task_cpu_cores_defaults_to_unknown():
    obs = Observation(t=0.0, workers=4)
    assert math.isnan(obs.task_cpu_cores) and "task_cpu_cores" in obs.to_dict()
    assert Observation(t=0.0, workers=4, task_cpu_cores=1.5).task_cpu_cores == 1.5


def test_replayed_observations_carry_task_cpu_cores():
    from pathlib import Path

    from adaptive_lab.sim.open_loop import observations
    from adaptive_lab.trace.format import SAMPLE_FIELDS, Trace

    if "task_cpu_cores" not in SAMPLE_FIELDS:
        pytest.skip("the trace format does not record task_cpu_cores yet")
    rec = Trace.load(Path(__file__).resolve().parents[1] / "data" / "latency.jsonl")
    _, before = observations(rec)  # recorded before the field existed: unknown
    assert before and all(math.isnan(o.task_cpu_cores) for o in before)
    samples = [{**s, "task_cpu_cores": 0.25 * (i % 4)} for i, s in enumerate(rec.samples)]
    idx, obs = observations(Trace(header=rec.header, samples=samples, events=[]))
    assert [o.task_cpu_cores for o in obs] == [0.25 * (i % 4) for i in idx]
