"""Tests of the benchmark: pure statistics by hand, and a real ``--quick`` run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from adaptive_lab.bench import runner as bench
from adaptive_lab.bench.config import (
    BENCH_PROFILES,
    BenchSettings,
    build_configs,
    resolve_policies,
    resolve_profiles,
)
from adaptive_lab.bench.render import format_table, write_html
from adaptive_lab.bench.report import report_claim
from adaptive_lab.bench.stats import (
    converge_time,
    describe,
    direction_changes,
    resource_stats,
    steady_after,
)
from adaptive_lab.cli.main import main


# -- pure pieces ------------------------------------------------------------------
@pytest.mark.parametrize("sizes, expected", [
    ([], 0), ([4], 0), ([4, 8, 12, 16], 0),          # monotone: no reversal
    ([4, 8, 4], 1), ([4, 8, 8, 4, 8], 2),            # plateaus do not count
    ([10, 8, 6, 8, 6, 8], 3),  # down, up, down, up
])
def test_direction_changes(sizes: list[int], expected: int) -> None:
    assert direction_changes(sizes) == expected


def test_describe_median_min_max_ignores_missing() -> None:
    assert describe([3.0, None, 1.0, float("nan"), 2.0]) == {
        "median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert describe([]) == {"median": None, "min": None, "max": None, "n": 0}


def test_converge_time_first_full_window_after_the_step() -> None:
    # 100 files/s until t=2, then 1000 files/s from t=3: the first 0.5 s window lying
    # wholly after the step (at 1.0) with >= 900 files/s ends at 3.5 -> 2.5 s.
    slow = np.arange(0.0, 3.0, 0.01)
    fast = np.arange(3.0, 6.0, 0.001)
    t = np.concatenate([slow, fast])
    c = converge_time(t, step_at=1.0, target=900.0, end=6.0)
    assert c is not None and abs(c - 2.5) < 0.06
    assert converge_time(t, step_at=1.0, target=5000.0, end=6.0) is None
    assert converge_time(t, step_at=1.0, target=float("nan"), end=6.0) is None


def test_steady_after_counts_the_interval() -> None:
    t = np.arange(0.0, 10.0, 0.1)  # 10 files/s
    assert abs(steady_after(t, 2.0, 7.0) - 10.0) < 0.5
    assert math.isnan(steady_after(t, 5.0, 4.0))


def test_resource_stats_by_hand() -> None:
    # t, size, alive, cumulative CPU s, RSS MiB; 1 CPU-second per second on 2 cores
    rows = np.array([[0.0, 2, 2, 0.0, 10.0], [0.5, 4, 4, 0.5, 20.0],
                     [1.0, 4, 4, 1.0, 15.0]])
    st = resource_stats(rows, ncores=2)
    assert st["peak_cpu_percent"] == pytest.approx(50.0)
    assert st["worker_seconds"] == pytest.approx((2 + 4) / 2 * 0.5 + 4 * 0.5)
    assert st["mean_workers"] == pytest.approx(3.5)
    assert st["max_workers"] == 4 and st["peak_rss_mb"] == 20.0


def test_quick_cancel_future_keeps_cancel_semantics() -> None:
    from concurrent.futures import Future

    from adaptive_lab.bench.stats import _quick_cancel

    pending, done = _quick_cancel(Future()), _quick_cancel(Future())
    done.set_result(1)
    assert pending.cancel() and pending.cancel() and pending.cancelled()
    assert not done.cancel() and done.result() == 1


def test_build_configs_has_baseline_default_sweep_report_and_policies() -> None:
    cfgs = build_configs(4, (8, 1, 8), ["aimd"])
    assert [c.name for c in cfgs] == ["baseline-4", "tpe-default", "fixed-1", "fixed-8",
                                      "report-threshold", "policy:aimd"]
    assert [c.uses_our_pool for c in cfgs] == [False, False, True, True, True, True]
    with pytest.raises(ValueError, match="baseline_workers"):
        build_configs(0, (1,), [])
    with pytest.raises(ValueError, match="fixed_sizes"):
        build_configs(4, (0,), [])


def test_resolve_names_and_bad_input() -> None:
    assert [p.name for p in resolve_profiles("all")] == list(BENCH_PROFILES)
    assert [p.name for p in resolve_profiles("cpu, step")] == ["cpu", "step"]
    with pytest.raises(ValueError, match="profile"):
        resolve_profiles("nope")
    assert "fixed" not in resolve_policies("all") and "threshold" in resolve_policies("all")
    assert resolve_policies("none") == []
    with pytest.raises(ValueError, match="unknown policy"):
        resolve_policies("threshold,nope")
    with pytest.raises(ValueError, match="repeat"):
        BenchSettings(profiles=[], policies=[], repeat=0)
    with pytest.raises(ValueError, match="step_at"):
        BenchSettings(profiles=[], policies=[], step_at=5.0, step_time_cap=2.0)


def _row(name: str, kind: str, fps: list[float], workers: int | None = None,
         events: int = 3) -> dict:
    return {"name": name, "kind": kind, "workers": workers,
            "runs": [{"rep": i, "files_per_s": v} for i, v in enumerate(fps)],
            "summary": {"scale_events": {"max": events}}}


@pytest.mark.parametrize("report_fps, base_fps, tpe_fps, events, vs_base, vs_tpe", [
    # +20 % vs both in every round: holds
    ([120, 118, 121], [100, 98, 101], [100, 100, 100], 3, True, True),
    # +14 % vs the baseline: does not
    ([114, 114, 114], [100, 100, 100], [90, 90, 90], 3, False, True),
    # median +20 % but one round loses: not consistent, does not hold
    ([120, 120, 90], [100, 100, 100], [100, 100, 100], 3, False, False),
    # +30 % but the policy never resized (min_workers, like the baseline): no
    ([130, 130, 130], [100, 100, 100], [200, 200, 200], 0, False, False),
])
def test_report_claim_verdicts(report_fps: list[float], base_fps: list[float],
                               tpe_fps: list[float], events: int, vs_base: bool,
                               vs_tpe: bool) -> None:
    from adaptive_lab.policies import THRESHOLD_DEFAULTS

    # the baseline has the report's min_workers (4 on up to 4 cores)
    rows = [_row("baseline-4", "baseline", base_fps, THRESHOLD_DEFAULTS["min_workers"]),
            _row("tpe-default", "tpe_default", tpe_fps, 6),
            _row("report-threshold", "report", report_fps, events=events)]
    verdict = report_claim(rows, "baseline-4")
    assert verdict["holds_vs_baseline"] is vs_base
    assert verdict["holds_vs_tpe_default"] is vs_tpe
    assert verdict["holds"] is (vs_base and vs_tpe)
    assert ("does NOT hold" in verdict["text"]) is (not vs_base and not vs_tpe)
    assert ("never resized" in verdict["text"]) is (events == 0)


# -- a real quick run -------------------------------------------------------------
RUN_KEYS = {"files_done", "files_seen", "skipped", "errors", "not_scanned", "unwalked",
            "capped", "accounted", "elapsed_s", "files_per_s", "ms_per_file", "task_p50_ms",
            "task_p95_ms", "peak_cpu_percent", "peak_rss_mb", "mean_workers",
            "worker_seconds", "direction_changes_per_min", "timeline", "trace", "rep",
            "position", "cache"}
SUMMARY_KEYS = {"files_per_s", "ms_per_file", "task_p50_ms", "task_p95_ms",
                "peak_cpu_percent", "peak_rss_mb", "mean_workers", "worker_seconds",
                "direction_changes_per_min", "gain_percent", "ratio_to_oracle"}


@pytest.fixture(scope="module")
def quick_doc(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, str]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "res.json"
    orig = bench.can_drop_caches
    bench.can_drop_caches = lambda: (False, "test: pretend we are not root")
    try:
        rc = main(["bench", "--quick", "--quiet", "--files-count", "200",
                   "--profile", "local,cold,latency-5ms,step", "--policy", "threshold",
                   "--fixed-sizes", "2,16", "--time-cap", "0.3", "--step-at", "0.2",
                   "--step-time-cap", "0.6", "--output", str(out),
                   "--html", str(tmp / "r.html"), "--markdown", str(tmp / "r.md")])
    finally:
        bench.can_drop_caches = orig
    assert rc == 0
    return json.loads(out.read_text()), tmp, "ok"


def test_quick_run_schema(quick_doc: tuple[dict, Path, str]) -> None:
    doc, tmp, _ = quick_doc
    assert doc["schema"] == "adaptive-lab/bench" and doc["version"] == 1
    assert {"created", "duration_s", "host", "command", "settings", "corpus",
            "profiles"} <= set(doc)
    assert doc["corpus"]["files"] == 200
    names = [p["name"] for p in doc["profiles"]]
    assert names == ["local", "cold", "latency-5ms", "step"]
    cold = doc["profiles"][1]
    assert cold["available"] is False and "root" in cold["reason"] and cold["configs"] == []
    for p in doc["profiles"]:
        if not p["available"]:
            continue
        got = [c["name"] for c in p["configs"]]
        expect = ["baseline-4", "tpe-default", "fixed-2", "fixed-16", "report-threshold",
                  "policy:threshold"]
        if p["name"] == "local":
            expect += ["plain-loop", "native-xargs", "scan-processes"]
        assert got == expect
        assert p["oracle"]["config"] in ("fixed-2", "fixed-16")
        assert p["cache"] == "warm"
        assert isinstance(p["report_claim"]["holds"], bool) and p["report_claim"]["text"]
        for c in p["configs"]:
            if c["kind"] == "reference":
                continue
            assert SUMMARY_KEYS <= set(c["summary"]), c["name"]
            assert set(c["summary"]["files_per_s"]) == {"median", "min", "max", "n"}
            (run,) = c["runs"]
            assert RUN_KEYS <= set(run), (c["name"], RUN_KEYS - set(run))
            if c["kind"] in ("fixed", "report", "policy"):  # our pool: trace saved
                trace = tmp / run["trace"]
                assert trace.exists()
                from adaptive_lab.trace.format import Trace
                assert Trace.load(trace).header["workload"]["config"] == c["name"]
            else:
                assert run["trace"] is None
    assert "step" in doc["profiles"][3] and "converge_s" in \
        doc["profiles"][3]["configs"][0]["summary"]
    native = doc["profiles"][0]["native_targets"]
    assert native["processes_files_per_s"] > 0 and "scan-processes" in native["text"]


def test_quick_run_accounts_for_every_file(quick_doc: tuple[dict, Path, str]) -> None:
    doc, _, _ = quick_doc
    for p in doc["profiles"]:
        for c in p["configs"]:
            for run in c["runs"]:
                if c["kind"] == "reference":
                    assert run["files_done"] == p["files"], c["name"]
                    continue
                assert run["accounted"], (p["name"], c["name"], run)
                parts = (run["files_done"] + run["skipped"] + run["errors"]
                         + run["not_scanned"])
                assert parts == run["files_seen"], (p["name"], c["name"])
                if not run["capped"]:  # ran to the end: the walk saw every file
                    assert run["files_seen"] == p["files"], (p["name"], c["name"])
                    assert run["files_done"] == p["files"]
                else:
                    assert run["files_seen"] + run["unwalked"] == p["files"]
    capped = [r["capped"] for p in doc["profiles"] for c in p["configs"] for r in c["runs"]
              if c["kind"] != "reference"]
    assert any(capped) and not all(capped)  # both kinds of run were checked


def test_table_and_html(quick_doc: tuple[dict, Path, str]) -> None:
    doc, tmp, _ = quick_doc
    text = format_table(doc)
    for word in ("== local (warm)", "unavailable", "oracle:", "the report's threshold policy:",
                 "vs native tools:",
                 "ratio to oracle", "policy:threshold"):
        assert word in text
    page = (tmp / "r.html").read_text()
    assert page.startswith("<!doctype html>") and "plotly" in page.lower()
    assert write_html(doc, tmp / "again.html") is not None
    md = (tmp / "r.md").read_text()
    assert md.startswith("| profile |") and "| cold | unavailable" in md
    assert "| report-threshold |" in md and "| policy:threshold |" in md


def test_a_failing_run_is_recorded_and_the_rest_goes_on(tmp_path: Path) -> None:
    calls = []

    def broken_scan(root: object, executor: object, **kw: object) -> None:
        calls.append(kw["profile"])
        raise RuntimeError("disk on fire")

    settings = BenchSettings(profiles=[BENCH_PROFILES["local"]], policies=[],
                             files_count=20, repeat=2, fixed_sizes=(2,), references=False,
                             output=tmp_path / "r.json")
    doc = bench.run_benchmark(settings, scan_fn=broken_scan)
    (prof,) = doc["profiles"]
    assert len(calls) == 2 * len(prof["configs"]) == 8  # every run was attempted
    for c in prof["configs"]:
        assert c["failed_runs"] == 2 and not c["all_accounted"]
        assert all(r["error"] == "RuntimeError: disk on fire" for r in c["runs"])
    assert "RUN(S) FAILED" in format_table(doc)
