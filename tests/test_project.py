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


#: The whole public surface, written out: it changes only on purpose.
PUBLIC_API = {
    # executors and their control
    "AdaptiveThreadPoolExecutor", "ResizableThreadPoolExecutor", "BrokenThreadPool",
    "PoolStats", "default_bounds", "Controller", "Resizable",
    # clocks and metrics sources, with their test doubles
    "Clock", "SystemClock", "FakeClock", "MetricsSource", "PsutilMetrics",
    "ScriptedMetrics", "SystemSample", "WorkerPoolMetrics", "available_cores",
    # policies
    "Policy", "Decision", "Observation", "Param", "param", "available_policies",
    "make_policy", "parse_assignments", "policy_class", "register_policy",
    "THRESHOLD_DEFAULTS", "PORTED_POLICIES", "AIMDPolicy", "FixedPolicy",
    "Gradient2Policy", "HillClimbingPolicy", "OccupancyPolicy", "TargetTrackingPolicy",
    "ThresholdPolicy", "ThroughputSeekingPolicy", "UtilizationBandPolicy", "VegasPolicy",
    # traces, replay, simulation
    "Trace", "TraceFormatError", "Recorder", "replay", "simulate", "sweep",
    "SimulatedPool", "SweepResult", "WorkloadModel", "Segment", "record_scan",
    # the scanner and its workloads
    "scan", "Scanner", "ScanSummary", "FileResult", "Signature", "SignatureSet",
    "builtin_signatures", "eicar_bytes", "load_signatures", "parse_signatures",
    "PROFILES", "Profile", "profile_by_name", "CorpusInfo", "make_corpus",
    # benchmarks and their references
    "BenchSettings", "run_benchmark", "compare_scan_speed", "native_scan_command",
    "plain_loop_scan", "run_native_scan",
    # notebooks
    "LiveMonitor", "ReplayExplorer",
    "__version__",
}


def test_public_surface_is_exactly_the_curated_list():
    import adaptive_lab

    assert len(adaptive_lab.__all__) == len(set(adaptive_lab.__all__)), "duplicates"
    assert set(adaptive_lab.__all__) == PUBLIC_API, (
        f"added: {sorted(set(adaptive_lab.__all__) - PUBLIC_API)}; "
        f"removed: {sorted(PUBLIC_API - set(adaptive_lab.__all__))}")
    for name in adaptive_lab.__all__:
        assert hasattr(adaptive_lab, name), name


def test_no_public_name_shadows_a_submodule():
    """``adaptive_lab.X`` is either a module or a name, never a function hiding a module."""
    import pkgutil

    import adaptive_lab

    modules = {m.name for m in pkgutil.iter_modules(adaptive_lab.__path__)}
    assert not (modules & set(adaptive_lab.__all__)), modules & set(adaptive_lab.__all__)
    for pkg in ("sim", "scanner", "trace", "control"):
        mod = __import__(f"adaptive_lab.{pkg}", fromlist=["__all__"])
        subs = {m.name for m in pkgutil.iter_modules(mod.__path__)}
        assert not (subs & set(getattr(mod, "__all__", ()))), (pkg, subs)


def test_names_say_what_things_are():
    """No 'seed', 'anchor' or 'issue' in the public names."""
    import adaptive_lab

    bad = [n for n in adaptive_lab.__all__ if re.search(r"seed|anchor|issue", n, re.I)]
    assert not bad, bad


def test_the_project_speaks_for_itself():
    """No file a user clones points outside the repository or to tracker numbers."""
    import subprocess

    out = subprocess.run(
        ["git", "grep", "-n", "-I", "-E",
         r"(\.\./)+shared/|shared/(seed|MEASURED|DESIGN|STYLE|NOTEBOOKS)|\bissues? ?#?[0-9]+\b",
         "--", ".", ":!tests/test_project.py"],
        cwd=ROOT, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        pytest.skip("not a git checkout")
    assert out.stdout == "", out.stdout[:2000]


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
