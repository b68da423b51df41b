"""``adaptive-lab corpus`` and ``adaptive-lab scan`` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_lab.cli.main import main
from adaptive_lab.trace.format import Trace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "corpus"
    assert main(["corpus", str(root), "--files", "120", "--dirs", "6", "--eicar", "2",
                 "--seed", "5"]) == 0
    return root


def test_corpus_command_writes_what_it_says(tmp_path, capsys):
    root = tmp_path / "c"
    assert main(["corpus", str(root), "--files", "50", "--mix", "B", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["files"] == 50 and info["size_mix"] == "B"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 50 and sum(p.stat().st_size for p in files) == info["bytes"]


def test_corpus_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "x").write_text("mine")
    assert main(["corpus", str(tmp_path), "--files", "5"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_scan_json_summary_and_exit_status(corpus, capsys):
    assert main(["scan", str(corpus), "--json", "--workers", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"] == out["files_seen"] == 120 and out["errors"] == 0
    assert out["pool"]["policy"] is None and out["pool"]["final_size"] == 2


def test_scan_with_signatures_exits_1_and_reports_matches(corpus, capsys):
    assert main(["scan", str(corpus), "--signatures", "builtin", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["matched_files"] == 2 and out["match_counts"] == {"eicar-test-file": 2}


def test_scan_table_results_file_and_trace(corpus, tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    trace = tmp_path / "trace.jsonl"
    code = main(["scan", str(corpus), "--policy", "threshold", "--set", "scale_up_queue=10",
                 "--record", str(trace), "--results", str(results), "--digest", "blake2b",
                 "--profile", "latency", "--latency-ms", "1"])
    assert code == 0
    text = capsys.readouterr().out
    assert "120 ok" in text and "policy threshold" in text and "scale events" in text
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert len(lines) == 120 and all(len(x["digest"]) == 128 for x in lines)
    t = Trace.load(trace)
    assert t.header["policy"]["name"] == "threshold"
    assert t.header["workload"]["profile"]["latency_ms"] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--digest", "nope"], "digest"),
    (["--profile", "nope"], "profile"),
    (["--workers", "0"], "--workers"),
    (["--workers", "2", "--set", "scale_up_queue=3"], "--set"),
    (["--signatures", "/nonexistent/sigs.txt"], "signatures"),
    (["--policy", "nope"], "policy"),
    (["--processes", "-1"], "--processes"),
    (["--processes", "2", "--workers", "2"], "--workers"),
    (["--processes", "2", "--policy", "threshold"], "--policy"),
])
def test_scan_bad_input_exits_2_naming_it(corpus, capsys, argv, message):
    assert main(["scan", str(corpus), *argv]) == 2
    assert message in capsys.readouterr().err


def test_scan_on_worker_processes(corpus, capsys):
    assert main(["scan", str(corpus), "--json", "--processes", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["executor"] == "ProcessPoolExecutor" and out["errors"] == 0
    assert out["files"] == out["files_seen"] > 0
    assert out["pool"] == {"policy": None, "executor": "processes", "scale_events": 0,
                           "final_size": 2, "min_workers": 2, "max_workers": 2}


def test_scan_defaults_to_the_adaptive_policy(corpus, capsys):
    assert main(["scan", str(corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pool"]["policy"]["name"] == "adaptive"


def test_scan_missing_root_exits_2(tmp_path, capsys):
    assert main(["scan", str(tmp_path / "missing")]) == 2
    assert "root" in capsys.readouterr().err


def test_console_script_interrupt_prints_partial_summary(corpus, tmp_path):
    """A real SIGINT to a real child: exit 130, a partial summary, no traceback."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    trace = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptive_lab", "scan", str(corpus), "--json",
         "--profile", "latency", "--latency-ms", "200", "--workers", "2",
         "--record", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not trace.exists() and time.monotonic() < deadline:  # the pool exists
        time.sleep(0.05)
    time.sleep(0.6)  # a few files done
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["cancelled"] and summary["files"] < 120
    assert summary["files_seen"] == summary["files"] + summary["not_scanned"]
    assert "Traceback" not in err


def test_ctrl_c_on_worker_processes_stops_promptly(corpus):
    """Ctrl-C on a terminal signals the whole process group, worker processes too:
    exit 130 within seconds, a partial summary, no traceback, no process left."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptive_lab", "scan", str(corpus), "--json",
         "--profile", "latency", "--latency-ms", "200", "--processes", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True)
    time.sleep(3.0)  # interpreter and workers started, a few files done
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["cancelled"] and summary["executor"] == "ProcessPoolExecutor"
    assert "Traceback" not in err
    with pytest.raises(ProcessLookupError):  # the group is gone: no worker left
        os.killpg(proc.pid, 0)
