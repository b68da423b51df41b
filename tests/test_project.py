"""Project hygiene: dependency lists agree, the public surface changes only on purpose."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = _pyproject()["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in reqs}
    env = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    listed = set()
    for line in env.splitlines():
        m = re.match(r"\s*-\s+([A-Za-z0-9_.\-]+)", line)
        if m and not line.strip().startswith("- -e") and m.group(1) not in ("pip:",):
            listed.add(_name(m.group(1)))
    listed -= {"python", "pip"}
    assert listed == wanted, (
        f"only in pyproject: {sorted(wanted - listed)}; only in environment.yml: "
        f"{sorted(listed - wanted)}")


def test_versions_agree_between_pyproject_and_environment_yml():
    project = _pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    env = (ROOT / "environment.yml").read_text()
    for req in reqs:
        assert re.search(rf"-\s+{re.escape(req)}\s*$", env, re.M), f"{req} not in environment.yml"


def test_extras_required_by_the_issue():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"jupyterlab", "ipywidgets", "plotly", "anywidget"} <= {
        _name(r) for r in extras["notebooks"]}
    assert {"pytest", "nbval", "ruff", "hypothesis"} <= {_name(r) for r in extras["dev"]}
    assert _pyproject()["project"]["requires-python"] == ">=3.10"
    assert {_name(r) for r in _pyproject()["project"]["dependencies"]} == {"psutil", "numpy"}


def test_py_typed_is_shipped():
    assert (ROOT / "adaptive_lab" / "py.typed").exists()


def test_public_surface_is_explicit():
    import adaptive_lab

    assert sorted(adaptive_lab.__all__) == sorted(set(adaptive_lab.__all__))
    for name in adaptive_lab.__all__:
        assert hasattr(adaptive_lab, name), name
    expected = {
        "AdaptiveThreadPoolExecutor", "BrokenThreadPool", "Controller", "Decision",
        "FakeClock", "FixedPolicy", "Observation", "Param", "Policy", "PoolStats",
        "PsutilMetrics", "Recorder", "ScriptedMetrics", "SystemClock", "SystemSample",
        "ThresholdPolicy", "Trace", "TraceFormatError", "WorkerPoolMetrics",
        "available_policies", "make_policy", "THRESHOLD_DEFAULTS",
    }
    missing = expected - set(adaptive_lab.__all__)
    assert not missing, f"removed from the public API: {missing}"


def test_readme_has_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- setup -->")[1].split("<!-- /setup -->")[0]
    commands = [ln for ln in block.splitlines()
                if ln.strip() and not ln.strip().startswith(("```", "#"))]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_cli_lists_every_command():
    from adaptive_lab.cli.main import build_parser

    text = build_parser().format_help()
    for cmd in ("demo", "bench-pool"):
        assert cmd in text
