"""Tests for the notebook widgets (adaptive_lab.ui) without a browser: build, move sliders."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from adaptive_lab import AdaptiveThreadPoolExecutor, ThresholdPolicy
from adaptive_lab.policies import policy_class
from adaptive_lab.trace.format import Trace, make_header
from adaptive_lab.ui.explorer import ReplayExplorer
from adaptive_lab.ui.monitor import LiveMonitor
from adaptive_lab.ui.widgets import load_traces, slider_range


def bursty_trace(n: int = 120, seed_rate: float = 300.0) -> Trace:
    """A recorded-looking trace: bursts of arrivals drain through 4..24 workers."""
    samples, events = [], []
    workers, queued, completed, submitted = 4, 0, 0, 0
    for i in range(n):
        arrivals = int(seed_rate) if (i // 20) % 2 == 0 else 20
        lat = 0.01
        done = min(queued + arrivals, int(workers / lat * 0.5))
        queued += arrivals - done
        submitted += arrivals
        completed += done
        if i and i % 5 == 0 and queued > 20 and workers < 24:
            events.append({"t": float(i), "type": "scale", "from": workers,
                           "to": workers + 4, "reason": f"+4: queue {queued} > 20"})
            workers += 4
        samples.append({"t": float(i), "workers": workers, "alive": workers,
                        "busy": min(workers, queued + 1), "queued": queued,
                        "submitted": submitted, "completed": completed, "failed": 0,
                        "cpu_percent": 25.0, "memory_percent": 40.0,
                        "process_cpu_percent": 20.0, "throughput": float(done),
                        "latency_mean": lat, "latency_p50": lat, "latency_p95": 1.5 * lat})
    header = make_header(policy=ThresholdPolicy().describe(), interval=5.0, sample_period=1.0,
                         bounds={"min_workers": 4, "max_workers": 24},
                         workload={"name": "bursty"})
    return Trace(header=header, samples=samples, events=events)


def ydata(fig, name):
    for d in fig.data:
        if d.name == name:
            return np.asarray(d.y, dtype=float)
    raise KeyError(name)


@pytest.fixture(scope="module")
def explorer():
    return ReplayExplorer({"bursty": bursty_trace(), "short": bursty_trace(60, 200.0)},
                          policy="threshold", mode="open", first=("up_step",))


def test_sliders_come_from_param_metadata(explorer):
    specs = {p.name: p for p in policy_class("threshold").param_specs()}
    assert set(explorer.sliders) == set(specs)
    assert next(iter(explorer.sliders)) == "up_step"  # `first` ordering
    s = explorer.sliders["scale_up_queue"]
    p = specs["scale_up_queue"]
    assert type(s).__name__ == "IntSlider"
    assert (s.min, s.step, s.value) == (p.low, p.step, p.default)
    assert s.max == slider_range(p, p.default)[1] <= p.high
    assert s.tooltip == p.description
    f = explorer.sliders["scale_up_cpu"]
    assert type(f).__name__ == "FloatSlider" and (f.min, f.max) == (0.0, 100.0)


def test_moving_a_slider_updates_the_figure_in_place(explorer):
    fig = explorer.figure
    before = ydata(fig, "replayed target")
    recorded = ydata(fig, "workers")
    explorer.sliders["up_step"].value = explorer.sliders["up_step"].value + 1
    after = ydata(fig, "replayed target")
    assert explorer.figure is fig
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(ydata(fig, "workers"), recorded)  # recording untouched
    assert explorer.replayed.header["policy"]["params"]["up_step"] == 5
    assert math.isfinite(explorer.last_update_ms) and explorer.last_update_ms > 0
    explorer.update(up_step=4)
    np.testing.assert_array_equal(ydata(fig, "replayed target"), before)


def test_update_rejects_conflicting_params_without_redrawing(explorer):
    before = ydata(explorer.figure, "replayed target")
    assert explorer.update(scale_up_cpu=90.0) is None
    assert "scale_up_cpu" in explorer.error and "invalid" in explorer.status.value
    np.testing.assert_array_equal(ydata(explorer.figure, "replayed target"), before)
    assert explorer.update(scale_up_cpu=40.0) is not None and explorer.error is None
    with pytest.raises(ValueError, match="nope"):
        explorer.update(nope=1)
    with pytest.raises(ValueError, match="up_step"):
        explorer.update(up_step=-1)


def test_trace_picker_and_policy_picker(explorer):
    explorer.trace_picker.value = "short"
    assert len(ydata(explorer.figure, "workers")) == 60
    assert len(ydata(explorer.figure, "replayed target")) == 60
    explorer.policy_picker.value = "fixed"
    assert list(explorer.sliders) == ["n"]
    explorer.update(n=7)
    y = ydata(explorer.figure, "replayed target")
    assert y[-1] == 7.0 and set(y) <= {4.0, 7.0}  # starts at the recorded size
    explorer.policy_picker.value = "threshold"
    explorer.trace_picker.value = "bursty"
    assert len(ydata(explorer.figure, "workers")) == 120


def test_closed_loop_changes_queue_too():
    ex = ReplayExplorer([bursty_trace(80, 1200.0)], mode="closed")
    q0 = ydata(ex.figure, "replayed queued")
    w0 = ydata(ex.figure, "replayed target")
    assert len(q0) > 0  # closed loop simulates the queue
    ex.update(up_step=12, moderate_step=8)
    assert not np.array_equal(w0, ydata(ex.figure, "replayed target"))
    assert ex.replayed.header["replay"]["mode"] == "closed"
    ex.mode_picker.value = "open"
    assert len(ydata(ex.figure, "replayed queued")) == 0
    assert "text/plain" in ex._repr_mimebundle_() or ex._repr_mimebundle_()


def test_bad_arguments(tmp_path):
    tr = bursty_trace(30)
    with pytest.raises(ValueError, match="mode"):
        ReplayExplorer({"a": tr}, mode="sideways")
    with pytest.raises(ValueError, match="unknown policy"):
        ReplayExplorer({"a": tr}, policy="nope")
    with pytest.raises(ValueError, match="traces"):
        load_traces({})
    with pytest.raises(ValueError, match="traces"):
        load_traces([42])
    p = tr.save(tmp_path / "burst.jsonl")
    assert list(load_traces([p])) == ["burst"]


# -- live monitor -------------------------------------------------------------------
def test_live_monitor_follows_the_pool_and_retunes_the_policy():
    policy = ThresholdPolicy()
    pool = AdaptiveThreadPoolExecutor(max_workers=24, min_workers=2, policy=policy,
                                      interval=0.1, sample_period=0.05, record=True)
    try:
        mon = LiveMonitor(pool, refresh=0.05)
        assert mon.running
        n0 = len(ydata(mon.figure, "workers"))
        futures = [pool.submit(time.sleep, 0.01) for _ in range(800)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            w = ydata(mon.figure, "workers")
            if len(w) > n0 + 3 and np.nanmax(w) > 2 and mon.updates >= 2:
                break  # (one refresh can bring several samples: wait for a second)
            time.sleep(0.05)
        w = ydata(mon.figure, "workers")
        assert len(w) > n0 + 3 and np.nanmax(w) > 2  # grew while tasks ran
        assert mon.updates >= 2
        # a slider retunes the running policy (thread-safe set_params)
        mon.sliders["scale_up_queue"].value = 33
        assert policy.params()["scale_up_queue"] == 33
        assert any(e["type"] == "phase" and e.get("params") == {"scale_up_queue": 33}
                   for e in pool.trace().events)
        # an invalid value is refused and the slider goes back
        mon.sliders["scale_up_cpu"].value = 95.0
        assert policy.params()["scale_up_cpu"] == 40.0
        assert mon.sliders["scale_up_cpu"].value == 40.0
        assert "scale_up_cpu" in mon.status.value
        mon.set_params(moderate_step=3)
        assert mon.sliders["moderate_step"].value == 3 and policy.moderate_step == 3
        for f in futures:
            f.result()
    finally:
        pool.shutdown()
    mon.stop()
    assert not mon.running
    assert len(ydata(mon.figure, "workers")) == len(pool.trace().samples)
    assert not any(t.name == "adaptive-lab-live-monitor" for t in threading.enumerate())


def test_live_monitor_needs_a_controller():
    with AdaptiveThreadPoolExecutor(max_workers=2, policy=None) as pool:
        with pytest.raises(ValueError, match="pool"):
            LiveMonitor(pool)


def test_live_monitor_without_recorder_polls_last_sample():
    pool = AdaptiveThreadPoolExecutor(max_workers=8, min_workers=2, policy=ThresholdPolicy(),
                                      interval=0.1, sample_period=0.05)
    try:
        with LiveMonitor(pool, refresh=0.05) as mon:
            assert pool.controller.recorder is None
            deadline = time.monotonic() + 10
            while mon.updates < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        pool.shutdown()
    assert len(ydata(mon.figure, "workers")) >= 3


# -- the notebooks --------------------------------------------------------------------
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))
DATA = sorted((Path(__file__).resolve().parents[1] / "data").glob("*.jsonl"))


def test_notebooks_are_small_and_hold_no_widget_state():
    assert len(NOTEBOOKS) == 4
    for p in NOTEBOOKS:
        nb = json.loads(p.read_text(encoding="utf-8"))
        assert "widgets" not in nb.get("metadata", {}), f"{p.name} stores widget state"
        assert p.stat().st_size < 200_000, f"{p.name} is {p.stat().st_size} bytes"
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            outs = cell.get("outputs", [])
            if not src.lstrip().startswith("# NBVAL_CHECK_OUTPUT"):
                assert not outs, f"{p.name}: only checked cells keep outputs"
            for o in outs:
                assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {})


@pytest.mark.skipif(not DATA, reason="no data/*.jsonl")
def test_first_slider_of_notebook_02_changes_every_shipped_trace():
    """The browser test moves the first slider one step: it must change the replay."""
    ex = ReplayExplorer(DATA, policy="threshold", mode="closed",
                        first=("moderate_step", "moderate_queue", "scale_up_queue"))
    first = next(iter(ex.sliders.values()))
    for name in ex.traces:
        ex.trace_picker.value = name
        before = ydata(ex.figure, "replayed target")
        first.value += first.step
        assert not np.array_equal(before, ydata(ex.figure, "replayed target")), name
        first.value -= first.step


def test_lab_command_strips_unchecked_outputs_and_finds_notebooks(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from adaptive_lab.cli.lab import hour_trace, notebooks_dir, strip_notebook

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        nbformat.v4.new_code_cell("fig", execution_count=2, outputs=[
            nbformat.v4.new_output("display_data", data={"text/plain": "x"})]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    assert strip_notebook(nb) == 1
    assert "widgets" not in nb.metadata
    assert nb.cells[0].outputs[0]["text"] == "1\n" and nb.cells[0].execution_count == 1
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    with pytest.raises(ValueError, match="--notebooks"):
        notebooks_dir(tmp_path)
    tr = hour_trace(1200)
    assert len(tr.samples) == 1200 and tr.duration == 1199.0 and tr.scale_events()


def test_live_monitor_window_shows_only_recent_samples():
    pool = AdaptiveThreadPoolExecutor(max_workers=4, min_workers=2, policy=ThresholdPolicy(),
                                      interval=0.05, sample_period=0.02, record=True)
    try:
        with pytest.raises(ValueError, match="window"):
            LiveMonitor(pool, window=0)
        mon = LiveMonitor(pool, refresh=10.0, window=0.1, start=False)
        assert pool.controller.wait_ticks(20, timeout=10)
        mon.refresh()
        t = np.asarray(next(d for d in mon.figure.data if d.name == "workers").x)
        assert len(t) >= 2 and t[-1] - t[0] <= 0.1 + 1e-9
        assert len(pool.trace().samples) > len(t)
    finally:
        pool.shutdown()
