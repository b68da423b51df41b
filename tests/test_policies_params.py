"""Parameters declared once: the declaration drives validation, serialisation,
retuning, type hints, CLI ``--set``/``--list-params`` and the notebook sliders."""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import threading
import typing
from pathlib import Path

import pytest

from adaptive_lab.cli._common import add_policy_arguments, parameter_table, policy_from_args
from adaptive_lab.policies import (
    AIMDPolicy,
    Decision,
    Observation,
    Param,
    Policy,
    UnknownParameterError,
    UtilizationBandPolicy,
    available_policies,
    make_policy,
    param,
    parse_assignments,
    policy_class,
)

ALL = available_policies()
ROOT = Path(__file__).resolve().parents[1]


def _other_value(p: Param):
    """A value in range different from the default."""
    if p.kind is bool:
        return not p.default
    return p.high if p.default != p.high else p.low


def _changed(cls: type[Policy], p: Param):
    """A valid value for ``p`` other than its default, the others left at theirs."""
    v = _other_value(p)
    try:
        cls(**{p.name: v})
    except ValueError:  # a cross-parameter rule forbids it: the other end of the range
        v = p.low if v == p.high else p.high
        cls(**{p.name: v})
    return v


# -- one declaration, everything else derived -------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_params_round_trip_through_json_and_with_params(name: str) -> None:
    p = make_policy(name)
    specs = policy_class(name).param_specs()
    assert list(p.params()) == [s.name for s in specs]  # declaration order
    loaded = json.loads(json.dumps(p.describe()))  # what a trace header stores
    q = make_policy(loaded["name"], **loaded["params"])
    assert q.params() == p.params()
    assert p.with_params(**p.params()).params() == p.params()
    for s in specs:  # every parameter: change it, read it back three ways
        v = _changed(type(p), s)
        r = p.with_params(**{s.name: v})
        assert r.params()[s.name] == v and getattr(r, s.name) == v
        assert make_policy(name, **json.loads(json.dumps(r.params()))).params() == r.params()


@pytest.mark.parametrize("name", ALL)
def test_values_have_the_declared_type(name: str) -> None:
    p = make_policy(name)
    for s in policy_class(name).param_specs():
        assert type(p.params()[s.name]) is s.kind, s
        assert type(getattr(p, s.name)) is s.kind, s
        assert s.low <= s.default <= s.high and s.step > 0 and s.description


@pytest.mark.parametrize("name", ALL)
def test_type_checkers_see_the_fields(name: str) -> None:
    cls = policy_class(name)
    hints = typing.get_type_hints(cls)
    for s in cls.param_specs():
        assert hints[s.name] is s.kind, s.name
        assert getattr(cls, s.name).spec == s  # the class attribute carries the metadata


@pytest.mark.parametrize("name", ALL)
def test_validation_names_the_parameter(name: str) -> None:
    for s in policy_class(name).param_specs():
        bad = "maybe" if s.kind is bool else s.high + max(s.step, 1)
        with pytest.raises(ValueError, match=f"'{s.name}'"):
            make_policy(name, **{s.name: bad})


def test_assigning_a_parameter_is_validated_set_params() -> None:
    p = AIMDPolicy()
    p.timeout = "2"  # type: ignore[assignment]  # strings from a slider or CLI convert
    assert p.timeout == 2.0 and p.params()["timeout"] == 2.0
    with pytest.raises(ValueError, match="'timeout'"):
        p.timeout = -1.0
    assert p.timeout == 2.0  # nothing applied on error
    with pytest.raises(UnknownParameterError, match="'nope'"):
        p.set_params(nope=1)


def test_set_params_swaps_all_values_at_once() -> None:
    # readers never see half of a retune: shrink < grow holds in every snapshot
    p = UtilizationBandPolicy(grow_threshold=0.5, shrink_threshold=0.2)
    settings = [{"grow_threshold": 0.9, "shrink_threshold": 0.8},
                {"shrink_threshold": 0.2, "grow_threshold": 0.5}]
    stop = threading.Event()
    seen: list[tuple[float, float]] = []

    def read() -> None:
        while not stop.is_set():
            v = p.params()
            seen.append((v["shrink_threshold"], v["grow_threshold"]))

    t = threading.Thread(target=read)
    t.start()
    try:
        for i in range(2000):
            p.set_params(**settings[i % 2])
    finally:
        stop.set()
        t.join()
    assert seen and all(s < g for s, g in seen)
    assert set(seen) <= {(0.8, 0.9), (0.2, 0.5)}


# -- declaring ------------------------------------------------------------------------------
class _Echo(Policy):
    """A small policy declared as a user would."""

    name = "echo_test"
    step_size: int = param(default=2, low=0, high=10, step=1, doc="workers added per call")
    gain: float = param(default=1, low=0, high=5, step=0.5, doc="a float given as an int")
    enabled: bool = param(default=True, doc="move at all")

    def decide(self, obs: Observation) -> Decision:
        n = obs.workers + (self.step_size if self.enabled else 0)
        return Decision(obs.clamp(n), f"+{self.step_size}")


class _EchoMore(_Echo):
    name = "echo_more_test"
    cap: int = param(default=100, low=1, high=1000, step=1, doc="a parameter added below")


def test_a_user_declared_policy() -> None:
    p = _Echo(step_size="3")
    assert p.params() == {"step_size": 3, "gain": 1.0, "enabled": True}
    assert p.decide(Observation(t=0.0, workers=4)).target == 7
    assert [s.name for s in _EchoMore.param_specs()] == ["step_size", "gain", "enabled", "cap"]
    assert _EchoMore(cap=5).params()["cap"] == 5
    assert "cap" not in _Echo().params()
    assert typing.get_type_hints(_EchoMore)["cap"] is int


@pytest.mark.parametrize(("annotation", "declaration", "message"), [
    ("int", "param(default=1, low=0, high=5, doc='x')", "step="),
    ("float", "param(default=9.0, low=0, high=5, step=1, doc='x')", "bad default"),
    ("int", "param(default=0.5, low=0, high=5, step=1, doc='x')", "bad default"),
    ("int", "param(default=1.0, low=0, high=5, step=1, doc='x')", "not a int"),
    ("bool", "param(default=0, doc='x')", "not a bool"),
    ("str", "param(default='a', low=0, high=5, step=1, doc='x')", "annotated int, float"),
    ("float", "param(default=1.0, low=0, high=5, step=1, doc='')", "doc="),
])
def test_malformed_declarations_fail_at_class_creation(annotation, declaration, message):
    body = f"class Bad(Policy):\n    knob: {annotation} = {declaration}\n"
    with pytest.raises(TypeError, match=message):
        exec(body, {"Policy": Policy, "param": param})


def test_a_parameter_may_not_hide_a_policy_method() -> None:
    with pytest.raises(TypeError, match="params"):
        exec("class Bad(Policy):\n    params: int = param(default=1, low=0, high=2, step=1,"
             " doc='x')\n", {"Policy": Policy, "param": param})


def test_the_old_params_tuple_is_refused() -> None:
    with pytest.raises(TypeError, match="PARAMS tuple"):
        exec("class Old(Policy):\n    PARAMS = ()\n", {"Policy": Policy})


# -- CLI ------------------------------------------------------------------------------------
def _parser(default: str = "threshold") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x")
    add_policy_arguments(parser, default=default)
    return parser


@pytest.mark.parametrize("name", ALL)
def test_cli_set_flags_come_from_the_declaration(name: str) -> None:
    cls = policy_class(name)
    items = [f"{s.name}={str(_other_value(s)).lower()}" for s in cls.param_specs()]
    values = parse_assignments(items, cls)
    assert values == {s.name: _other_value(s) for s in cls.param_specs()}
    assert all(type(values[s.name]) is s.kind for s in cls.param_specs())
    for s in cls.param_specs():
        v = _changed(cls, s)
        args = _parser().parse_args(["--policy", name, "--set", f"{s.name}={str(v).lower()}"])
        assert policy_from_args(args).params()[s.name] == v
    one = cls.param_specs()[0]
    with pytest.raises(UnknownParameterError, match="'nope'"):
        parse_assignments(["nope=1"], cls)
    with pytest.raises(ValueError, match=f"'{one.name}'"):
        parse_assignments([f"{one.name}=not-a-value"], cls)


@pytest.mark.parametrize("name", ALL)
def test_list_params_prints_every_declared_parameter(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["--list-params", name])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out == parameter_table(policy_class(name)) + "\n"
    for s in policy_class(name).param_specs():
        assert f"  {s.name}=" in out and s.description in out


def test_list_params_defaults_to_the_policy_given_before_it(capsys) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--policy", "aimd", "--list-params"])
    assert "backoff_ratio=0.9" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["--list-params", "no_such_policy"])
    assert exc.value.code == 2  # argparse's usage error


# -- sliders --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_slider_specs_come_from_the_declaration(name: str) -> None:
    pytest.importorskip("ipywidgets")
    from adaptive_lab.ui.widgets import make_slider, slider_range

    for s in policy_class(name).param_specs():
        w = make_slider(s, s.default)
        assert w.description == s.name and w.tooltip == s.description
        if s.kind is bool:
            assert type(w).__name__ == "Checkbox" and w.value is s.default
            continue
        low, high = slider_range(s, s.default)
        assert type(w).__name__ == ("IntSlider" if s.kind is int else "FloatSlider")
        assert (w.min, w.max, w.value) == (low, high, s.default)
        assert low == s.low and high <= s.high and math.isclose(w.step, s.step)


# -- static type checking (optional: needs mypy) ----------------------------------------------
def test_mypy_sees_fields_and_constructor_keywords(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from adaptive_lab.policies.aimd import AIMDPolicy\n"
        "p = AIMDPolicy(backoff_ratio=0.8)\n"
        "reveal_type(p.backoff_ratio)\n"
        "reveal_type(p.use_p50)\n"
        "AIMDPolicy(backoff_ratio='x')\n"
        "AIMDPolicy(nope=1)\n")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental",
         "--python-version", "3.11", "--config-file", "", str(snippet)],
        capture_output=True, text=True, cwd=ROOT, timeout=300).stdout
    assert re.search(r'snippet.py:3: note: Revealed type is "(builtins\.)?float"', out), out
    assert re.search(r'snippet.py:4: note: Revealed type is "(builtins\.)?bool"', out), out
    assert 'Argument "backoff_ratio" to "AIMDPolicy" has incompatible type "str"' in out, out
    assert 'Unexpected keyword argument "nope" for "AIMDPolicy"' in out, out
    assert out.count("error:") == 2, out
