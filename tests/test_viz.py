"""Tests for adaptive_lab.ui.figures and ui.sweep_figures: figures from traces and sweeps,
HTML export, lazy plotly."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from adaptive_lab.trace.format import Trace, make_header
from adaptive_lab.ui import figures as viz
from adaptive_lab.ui import sweep_figures as sweeps


def synthetic_trace(n: int = 40, *, target: bool = False, policy: str = "threshold") -> Trace:
    """A small hand-made trace: queue drains while the pool grows from 4 to 12."""
    samples, events = [], []
    workers = 4
    for i in range(n):
        t = i * 0.5
        if i and i % 10 == 0 and workers < 12:
            events.append({"t": t, "type": "scale", "from": workers, "to": workers + 4,
                           "reason": f"+4: queue {100 - i} > 20"})
            workers += 4
        s = {"t": t, "workers": workers, "alive": workers, "busy": min(workers, 3),
             "queued": max(0, 100 - 3 * i), "completed": 10 * i, "failed": 0,
             "cpu_percent": 30.0 + i % 7, "memory_percent": 40.0,
             "throughput": 20.0 if i else None, "latency_p50": 0.010, "latency_p95": 0.020}
        if target:
            s["target"] = workers + 2
        samples.append(s)
    events.append({"t": 3.0, "type": "phase", "name": "step"})
    header = make_header(policy={"name": policy, "params": {}}, interval=1.0,
                         workload={"name": "synthetic"})
    return Trace.loads(Trace(header=header, samples=samples, events=events).dumps())


def by_name(fig, name):
    return fig.data[viz.trace_index(fig, name)]


def test_trace_figure_panels_and_data():
    tr = synthetic_trace()
    fig = viz.trace_figure(tr)
    names = [d.name for d in fig.data]
    for n in ("workers", "alive", "busy", "scale events", "queued", "cpu %", "memory %",
              "throughput", "latency p50", "latency p95"):
        assert n in names
    assert not any(n.startswith("replayed") for n in names)
    w = by_name(fig, "workers")
    assert list(w.y) == [s["workers"] for s in tr.samples]
    assert list(w.x) == [s["t"] for s in tr.samples]
    assert np.allclose(by_name(fig, "latency p95").y, 20.0)  # milliseconds
    assert math.isnan(by_name(fig, "throughput").y[0])  # missing stays a gap
    ev = by_name(fig, "scale events")
    assert list(ev.x) == [5.0, 10.0]
    assert list(ev.y) == [8.0, 12.0]
    assert "queue 90 > 20" in ev.hovertext[0] and ev.hovertext[0].startswith("4 → 8")
    assert "threshold" in fig.layout.title.text and "synthetic" in fig.layout.title.text
    assert fig.layout.height == 820


def test_trace_figure_open_and_closed_replay():
    rec = synthetic_trace()
    fig = viz.trace_figure(rec, replayed=synthetic_trace(target=True))
    tgt = by_name(fig, "replayed target")
    assert list(tgt.y) == [s["workers"] + 2 for s in rec.samples]
    assert len(by_name(fig, "replayed queued").x) == 0  # open loop: queue as recorded
    closed = synthetic_trace(n=20)
    fig = viz.trace_figure(rec, replayed=closed)
    assert list(by_name(fig, "replayed target").y) == [s["workers"] for s in closed.samples]
    assert list(by_name(fig, "replayed queued").y) == [s["queued"] for s in closed.samples]
    assert len(by_name(fig, "replayed scale events").x) == 1
    empty = viz.trace_figure(rec, show_replayed=True)
    assert len(by_name(empty, "replayed target").x) == 0


def test_trace_data_matches_figure():
    tr = synthetic_trace()
    fig = viz.trace_figure(tr)
    for name, d in viz.trace_data(tr).items():
        np.testing.assert_array_equal(by_name(fig, name).x, d["x"])
    with pytest.raises(KeyError):
        viz.trace_index(fig, "nope")


def test_compare_figure():
    a, b = synthetic_trace(), synthetic_trace(n=20, policy="fixed")
    fig = viz.compare_figure([a, b], ["threshold", "fixed 8"])
    groups = {d.legendgroup for d in fig.data}
    assert groups == {"threshold", "fixed 8"}
    assert len(fig.data) == 8
    assert fig.data[0].name.startswith("threshold (")
    fig2 = viz.compare_figure({"x": a})
    assert fig2.data[0].legendgroup == "x"
    fig3 = viz.compare_figure([a, b])
    assert fig3.data[0].legendgroup == "1: threshold"
    with pytest.raises(ValueError, match="labels"):
        viz.compare_figure([a, b], ["only one"])
    with pytest.raises(ValueError, match="traces"):
        viz.compare_figure([])


def sweep_table():
    rows = []
    for q in (5, 10, 20):
        for u in (1, 2, 4):
            for s in (0.0, 0.5):
                rows.append({"policy": "threshold", "scale_up_queue": q, "up_step": u,
                             "smoothing": s, "throughput": q * u + 10 * s,
                             "worker_seconds": float(q + u), "makespan": 1.0 / (q * u),
                             "oscillation": 0.0})
    return rows


def test_sweep_heatmap_values_and_reduce():
    fig = sweeps.sweep_heatmap(sweep_table(), "scale_up_queue", "up_step", "throughput")
    hm = fig.data[0]
    assert list(hm.x) == ["5", "10", "20"] and list(hm.y) == ["1", "2", "4"]
    z = np.asarray(hm.z)
    assert z.shape == (3, 3)
    assert z[2, 1] == pytest.approx(10 * 4 + 2.5)  # mean over smoothing 0 and 0.5
    assert "mean over 2 other settings" in fig.layout.title.text
    zmax = np.asarray(sweeps.sweep_heatmap(sweep_table(), "scale_up_queue", "up_step",
                                           reduce="max").data[0].z)
    assert zmax[2, 1] == pytest.approx(45.0)
    with pytest.raises(ValueError, match="metric"):
        sweeps.sweep_heatmap(sweep_table(), "scale_up_queue", "up_step", "nope")
    with pytest.raises(ValueError, match="reduce"):
        sweeps.sweep_heatmap(sweep_table(), "scale_up_queue", "up_step", reduce="median")
    with pytest.raises(ValueError, match="x and y"):
        sweeps.sweep_heatmap(sweep_table(), "up_step", "up_step")


def test_sweep_rows_accepts_columns_and_frames():
    cols = {"a": np.array([1, 2]), "throughput": np.array([3.0, 4.0])}
    assert sweeps.sweep_rows(cols) == [{"a": 1, "throughput": 3.0}, {"a": 2, "throughput": 4.0}]
    pd = pytest.importorskip("pandas")
    assert sweeps.sweep_rows(pd.DataFrame(cols))[1]["throughput"] == 4.0

    class Result:
        def table(self):
            return cols
    assert len(sweeps.sweep_rows(Result())) == 2


@pytest.mark.parametrize(
    ("cost", "benefit", "front"),
    [
        ([1, 2, 3], [1, 2, 3], [True, True, True]),      # each costs more and gives more
        ([1, 2, 3], [3, 2, 1], [True, False, False]),    # the cheapest is also the best
        ([1, 1, 2], [1, 2, 2], [False, True, False]),    # ties: dominated by equal-or-better
        ([1, np.nan, 2], [1, 5, 2], [True, False, True]),  # NaN is never on the front
    ],
)
def test_pareto_mask_table(cost, benefit, front):
    assert list(sweeps.pareto_mask(np.array(cost, float), np.array(benefit, float))) == front


def test_pareto_figure_front():
    rows = sweep_table()
    fig = sweeps.pareto_figure(rows, color="policy")
    front = fig.data[-1]
    assert front.name == "Pareto front"
    xs, ys = np.asarray(front.x), np.asarray(front.y)
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) > 0)
    # no row beats a front point on both axes
    for x, y in zip(xs, ys, strict=True):
        assert not any(r["worker_seconds"] <= x and r["throughput"] > y for r in rows)
    assert "smoothing=" in front.hovertext[0]
    with pytest.raises(ValueError, match="color"):
        sweeps.pareto_figure(rows, color="nope")


def test_save_html_is_self_contained(tmp_path):
    fig = viz.trace_figure(synthetic_trace())
    p = viz.save_html(fig, tmp_path / "sub" / "trace.html")
    text = p.read_text(encoding="utf-8")
    assert '<script src="http' not in text and "<script src=\"//" not in text
    assert "Plotly.newPlot" in text and p.stat().st_size > 1_000_000  # plotly.js inlined
    with pytest.raises(ValueError, match="path"):
        viz.save_html(fig, tmp_path / "trace.png")


def test_import_without_plotly_gives_install_hint():
    code = (
        "import sys; sys.modules['plotly'] = None; sys.modules['plotly.graph_objects'] = None\n"
        "import adaptive_lab.ui.figures as v, adaptive_lab.ui.explorer, adaptive_lab.ui.monitor\n"
        "import adaptive_lab.ui.sweep_figures\n"
        "try:\n    v.trace_figure(None)\nexcept ImportError as e:\n    print('HINT', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "HINT" in out and "pip install adaptive-lab[notebooks]" in out
