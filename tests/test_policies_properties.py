"""Properties every registered policy must have, and parameter/registry checks.

Random observation sequences (NaN fields, idle pools, huge queues, irregular time
steps, the pool following the policy or not): every target is an int within the
observation's bounds, every reason is text, and replaying the same sequence through
``policy.with_params()`` (fresh state) gives identical decisions.
"""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_lab.policies import (
    PORTED_POLICIES,
    Observation,
    Param,
    available_policies,
    make_policy,
    parse_assignments,
    policy_class,
)

NAN = float("nan")
PORTED = ["hill_climbing", "aimd", "gradient2", "vegas", "target_tracking", "occupancy",
          "utilization_band"]

maybe_nan = st.one_of(
    st.just(NAN), st.floats(0.0, 100.0), st.sampled_from([0.0, 1e-9, 1e6, 1e12])
)
latency = st.one_of(st.just(NAN), st.floats(0.0, 10.0), st.sampled_from([0.0, 1e-9, 3600.0]))
throughput = st.one_of(st.just(NAN), st.floats(0.0, 1e5), st.sampled_from([0.0, 1e9]))


@st.composite
def scenario(draw):
    """Bounds plus a list of per-step raw fields; the pool size is decided while running."""
    lo = draw(st.integers(0, 8))
    hi = draw(st.one_of(st.integers(max(lo, 1), 5000), st.just(sys.maxsize)))
    steps = draw(st.lists(st.fixed_dictionaries({
        "gap": st.one_of(st.floats(0.0, 30.0), st.sampled_from([0.05, 1.0, 5.0, 15.0])),
        "busy_frac": st.floats(0.0, 1.2),
        "queue_depth": st.one_of(st.integers(0, 50), st.integers(0, 10**9)),
        "cpu_percent": maybe_nan,
        "process_cpu_percent": maybe_nan,
        "memory_percent": maybe_nan,
        "throughput": throughput,
        "latency_mean": latency,
        "latency_p50": latency,
        "dt": st.one_of(st.just(NAN), st.floats(0.0, 10.0), st.sampled_from([0.005, 0.5])),
        "new_failures": st.integers(0, 3),
        "override": st.one_of(st.none(), st.integers(0, 10_000)),
    }), min_size=1, max_size=40))
    start = draw(st.integers(0, 300))
    return lo, hi, start, steps


def run(policy, lo: int, hi: int, start: int, steps: list[dict]) -> list[tuple[int, str]]:
    """Drive ``policy`` closed loop (the pool follows its target unless overridden)."""
    out, workers, t, failed = [], start, 0.0, 0
    for s in steps:
        t += s["gap"]
        failed += s["new_failures"]
        if s["override"] is not None:
            workers = s["override"]
        busy = int(workers * s["busy_frac"])
        obs = Observation(
            t=t, workers=workers, busy=busy, queue_depth=s["queue_depth"],
            cpu_percent=s["cpu_percent"], memory_percent=s["memory_percent"],
            process_cpu_percent=s["process_cpu_percent"], throughput=s["throughput"],
            latency_mean=s["latency_mean"], latency_p50=s["latency_p50"], dt=s["dt"],
            failed=failed, completed=0, min_workers=lo, max_workers=hi,
        )
        d = policy(obs)
        assert isinstance(d.target, int) and not isinstance(d.target, bool)
        assert lo <= d.target <= hi, (d, obs)
        assert isinstance(d.reason, str) and d.reason
        out.append((d.target, d.reason))
        workers = d.target
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenario())
def test_targets_in_bounds_and_replay_deterministic(sc) -> None:
    # one scenario drives every ported policy (generating scenarios is the slow part)
    lo, hi, start, steps = sc
    for name in PORTED:
        policy = make_policy(name)
        first = run(policy, lo, hi, start, steps)
        again = run(policy.with_params(), lo, hi, start, steps)
        assert first == again, name


@pytest.mark.parametrize("name", ["hill_climbing", "vegas"])
def test_random_choices_come_only_from_the_seed_parameter(name: str) -> None:
    # same seed -> same run; the seed is a parameter, so it is in the trace header
    p = make_policy(name, seed=5)
    assert p.params()["seed"] == 5
    assert p.with_params().params()["seed"] == 5


# -- parameter validation -------------------------------------------------------------
def _bad_values(p: Param) -> list:
    if p.kind is bool:
        return ["maybe", 2, 0.5, NAN, None]
    step = 1 if p.kind is int else p.step
    vals = [p.low - step, p.high + step, NAN, math.inf, "abc", None, [1]]
    if p.kind is int:
        vals.append(p.low + 0.5)
    return vals


CASES = [
    (name, p, bad)
    for name in PORTED
    for p in policy_class(name).param_specs()
    for bad in _bad_values(p)
]


@pytest.mark.parametrize(
    ("name", "param", "bad"), CASES,
    ids=[f"{n}-{p.name}-{b!r}" for n, p, b in CASES],
)
def test_invalid_param_names_the_parameter(name: str, param: Param, bad) -> None:
    with pytest.raises(ValueError, match=f"'{param.name}'"):
        make_policy(name, **{param.name: bad})


@pytest.mark.parametrize(("name", "params", "named"), [
    ("hill_climbing", {"sample_interval_low": 0.5, "sample_interval_high": 0.1},
     "sample_interval_low"),
    ("utilization_band", {"grow_threshold": 0.4, "shrink_threshold": 0.4}, "shrink_threshold"),
    ("utilization_band", {"grow_threshold": 0.3}, "shrink_threshold"),
])
def test_cross_parameter_constraints(name: str, params: dict, named: str) -> None:
    with pytest.raises(ValueError, match=f"'{named}'"):
        make_policy(name, **params)


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        make_policy("aimd", nope=1)


# -- registry ---------------------------------------------------------------------------
def test_every_ported_policy_is_registered() -> None:
    assert [cls.name for cls in PORTED_POLICIES] == PORTED
    assert set(PORTED) <= set(available_policies())
    assert {"threshold", "fixed"} <= set(available_policies())  # kept


@pytest.mark.parametrize("name", available_policies())
def test_builds_with_defaults_and_metadata(name: str) -> None:
    p = make_policy(name)
    assert p.name == name
    assert p.params() == {q.name: q.default for q in type(p).param_specs()}
    for q in type(p).param_specs():
        assert q.low <= q.default <= q.high, q
        assert q.step > 0 and q.description
    if name in PORTED:  # each port's docstring names its source and its defaults
        doc = type(p).__doc__ or ""
        assert "Source" in doc and "Defaults" in doc, name


@pytest.mark.parametrize("name", PORTED)
def test_cli_string_assignments(name: str) -> None:
    specs = policy_class(name).param_specs()
    items = [f"{q.name}={str(q.default).lower() if q.kind is bool else q.default}"
             for q in specs]
    p = make_policy(name, **parse_assignments(items))
    assert p.params() == {q.name: q.default for q in specs}
    q = specs[0]
    other = q.high if q.kind is not bool else (not q.default)
    value = str(other).lower() if q.kind is bool else str(other)
    p2 = make_policy(name, **parse_assignments([f" {q.name} = {value} "]))
    assert p2.params()[q.name] == other


def test_cli_assignment_errors() -> None:
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["oops"])
    with pytest.raises(ValueError, match="'timeout'"):
        make_policy("aimd", **parse_assignments(["timeout=soon"]))
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("no_such_policy")
