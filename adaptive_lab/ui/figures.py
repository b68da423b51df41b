"""Plotly figures from traces: pure functions, usable from scripts and notebooks.

Every builder takes data (a :class:`~adaptive_lab.Trace`) and
returns a ``plotly.graph_objects.Figure`` with its final layout, so the same figure
can be shown in a notebook, wrapped in a ``go.FigureWidget`` by the widgets, or
written to a self-contained HTML file with :func:`save_html` (plotly.js inlined,
works offline).

plotly is an optional dependency (``pip install adaptive-lab[notebooks]``); it is only
imported when a builder is called.

Trace names are stable (``"workers"``, ``"queued"``, ``"replayed target"`` ...) so
widgets can find a trace by name and update it in place. Sweep heatmaps and Pareto
fronts are in :mod:`adaptive_lab.ui.sweep_figures`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from adaptive_lab.trace.format import Trace

INSTALL_HINT = "pip install adaptive-lab[notebooks]"

#: Rows of :func:`trace_figure`: (key, y-axis title).
PANELS: tuple[tuple[str, str], ...] = (
    ("workers", "workers"),
    ("queue", "queued"),
    ("system", "CPU, mem %"),
    ("throughput", "tasks/s"),
    ("latency", "task ms"),
)
#: Panel heights relative to each other (the workers panel is the story).
_ROW_HEIGHTS = (0.32, 0.17, 0.17, 0.17, 0.17)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
          "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
REPLAY_COLOR = "#d62728"

def require_plotly() -> Any:
    """Import and return ``plotly.graph_objects``, or raise an ImportError saying how."""
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - exercised by test with a blocked import
        raise ImportError(
            "adaptive_lab.ui needs plotly, which is an optional dependency: "
            f"{INSTALL_HINT}"
        ) from exc
    return go


# -- columns ----------------------------------------------------------------------
def _col(arrays: Mapping[str, np.ndarray], name: str, n: int) -> np.ndarray:
    """A float column with missing values (None, -1 counts) as NaN."""
    a = arrays.get(name)
    if a is None:
        return np.full(n, np.nan)
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        out = a.astype(np.float64)
        out[a < 0] = np.nan
        return out
    return a.astype(np.float64)


def trace_columns(trace: Trace) -> dict[str, np.ndarray]:
    """The plotted columns of ``trace`` as float arrays (NaN where unknown).

    Includes ``target`` when the samples carry one (open-loop replays do).
    """
    arrays = trace.to_arrays()
    n = len(trace.samples)
    cols = {k: _col(arrays, k, n) for k in arrays}
    if n and "target" in trace.samples[0]:
        cols["target"] = np.array(
            [np.nan if s.get("target") is None else float(s["target"]) for s in trace.samples])
    for k in ("latency_p50", "latency_p95", "latency_mean"):
        cols[k + "_ms"] = cols[k] * 1000.0
    return cols


def scale_event_points(trace: Trace) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """x (time), y (new size) and hover text of the trace's scale events."""
    evs = trace.scale_events()
    x = np.array([float(e["t"]) for e in evs], dtype=np.float64)
    y = np.array([float(e["to"]) for e in evs], dtype=np.float64)
    text = [f"{e['from']} → {e['to']}: {e.get('reason', '')}" for e in evs]
    return x, y, text


def _title(trace: Trace, title: str | None) -> str:
    if title is not None:
        return title
    pol = trace.header.get("policy") or {}
    name = pol.get("name", "?") if isinstance(pol, dict) else str(pol)
    wl = trace.header.get("workload") or {}
    wname = wl.get("name") or wl.get("profile") if isinstance(wl, dict) else None
    s = trace.summary()
    thr = s["throughput"]
    parts = [f"policy {name}"]
    if wname:
        parts.append(f"workload {wname}")
    parts.append(f"{s['duration_s']:.0f} s, {s['tasks']} tasks"
                 + (f", {thr:.0f} tasks/s" if math.isfinite(thr) else ""))
    return " · ".join(parts)


# -- the trace view -----------------------------------------------------------------
#: Recorded traces of :func:`trace_figure`: name -> (row, column, style).
_RECORDED: tuple[tuple[str, int, str], ...] = (
    ("workers", 1, "workers"), ("alive", 1, "alive"), ("busy", 1, "busy"),
    ("scale events", 1, ""), ("queued", 2, "queued"), ("cpu %", 3, "cpu_percent"),
    ("process cpu %", 3, "process_cpu_percent"), ("memory %", 3, "memory_percent"),
    ("throughput", 4, "throughput"), ("latency p50", 5, "latency_p50_ms"),
    ("latency p95", 5, "latency_p95_ms"),
)
#: Replay traces of :func:`trace_figure` (present with ``replayed`` or ``show_replayed``).
REPLAY_NAMES = ("replayed target", "replayed scale events", "replayed queued",
                "replayed throughput")
_EMPTY = np.array([], dtype=np.float64)


def trace_data(trace: Trace) -> dict[str, dict[str, Any]]:
    """Data of the recorded traces of :func:`trace_figure`, by trace name.

    Each value holds ``x`` and ``y`` (and ``hovertext`` for scale events): assign
    them to a ``FigureWidget``'s trace of the same name to update it in place.
    """
    c = trace_columns(trace)
    out: dict[str, dict[str, Any]] = {}
    for name, _, col in _RECORDED:
        if col:
            out[name] = {"x": c["t"], "y": c[col]}
    ex, ey, etext = scale_event_points(trace)
    out["scale events"] = {"x": ex, "y": ey, "hovertext": etext}
    return out


def replay_data(replayed: Trace | None) -> dict[str, dict[str, Any]]:
    """Data of the replay traces of :func:`trace_figure`, by trace name.

    Open loop (samples carry ``target``): the target and its scale events; the queue
    and throughput traces stay empty, as an open-loop replay does not change them.
    Closed loop: the simulated size, scale events, queue and throughput.
    """
    if replayed is None or not replayed.samples:
        return {n: {"x": _EMPTY, "y": _EMPTY, **({"hovertext": []} if "events" in n else {})}
                for n in REPLAY_NAMES}
    s0 = replayed.samples
    t = np.fromiter((s["t"] for s in s0), np.float64, len(s0))

    def col(key: str) -> np.ndarray:
        return np.fromiter((math.nan if s.get(key) is None else s[key] for s in s0),
                           np.float64, len(s0))

    closed = "target" not in s0[0]
    ex, ey, etext = scale_event_points(replayed)
    return {
        "replayed target": {"x": t, "y": col("workers") if closed else col("target")},
        "replayed scale events": {"x": ex, "y": ey, "hovertext": etext},
        "replayed queued": {"x": t if closed else _EMPTY,
                            "y": col("queued") if closed else _EMPTY},
        "replayed throughput": {"x": t if closed else _EMPTY,
                                "y": col("throughput") if closed else _EMPTY},
    }


def figure_title(trace: Trace, title: str | None = None) -> str:
    """The default title of :func:`trace_figure`: policy, workload and headline numbers."""
    return _title(trace, title)


def trace_figure(trace: Trace, *, replayed: Trace | None = None, title: str | None = None,
                 height: int = 820, width: int | None = None,
                 show_replayed: bool | None = None) -> go.Figure:
    """Multi-panel view of one run, optionally with a replayed policy overlaid.

    Rows: target and live workers (with scale events as markers whose hover text is
    the policy's reason), queue depth, CPU and memory %, throughput, and task time
    p50/p95. ``replayed`` (from ``sim.replay`` or ``sim.simulate``) adds its target
    size as ``"replayed target"`` and its scale events as ``"replayed scale events"``;
    a closed-loop replay also adds its queue and throughput. ``show_replayed=True``
    adds the replay traces even when ``replayed`` is None (empty, to be filled in).
    ``width`` None fills the container. Trace names are listed in :func:`trace_data`
    and :data:`REPLAY_NAMES`.
    """
    go = require_plotly()
    from plotly.subplots import make_subplots

    if show_replayed is None:
        show_replayed = replayed is not None
    fig = make_subplots(rows=len(PANELS), cols=1, shared_xaxes=True,
                        vertical_spacing=0.025, row_heights=list(_ROW_HEIGHTS))
    line = {
        "workers": ({"color": COLORS[0], "shape": "hv", "width": 2.5}, "target %{y}"),
        "alive": ({"color": COLORS[9], "shape": "hv", "width": 1}, "alive %{y}"),
        "busy": ({"color": COLORS[7], "width": 1, "dash": "dot"}, "busy %{y}"),
        "queued": ({"color": COLORS[1], "width": 1.5}, "queued %{y}"),
        "cpu %": ({"color": COLORS[3], "width": 1.5}, "%{y:.0f}%"),
        "process cpu %": ({"color": COLORS[5], "width": 1, "dash": "dot"}, "%{y:.0f}%"),
        "memory %": ({"color": COLORS[4], "width": 1.5}, "%{y:.0f}%"),
        "throughput": ({"color": COLORS[2], "width": 1.5}, "%{y:.1f} tasks/s"),
        "latency p50": ({"color": COLORS[6], "width": 1.5}, "%{y:.2f} ms"),
        "latency p95": ({"color": COLORS[8], "width": 1.5}, "%{y:.2f} ms"),
    }
    data = trace_data(trace)
    for name, row, _ in _RECORDED:
        d = data[name]
        if name == "scale events":
            tr = go.Scatter(mode="markers", name=name,
                            marker={"color": COLORS[0], "size": 8, "symbol": "diamond"},
                            hovertemplate="t=%{x:.1f}s %{hovertext}<extra>scale</extra>", **d)
        else:
            style, hover = line[name]
            tr = go.Scatter(mode="lines", name=name, line=style,
                            hovertemplate=f"t=%{{x:.1f}}s {hover}<extra>{name}</extra>", **d)
        fig.add_trace(tr, row=row, col=1)
    if show_replayed:
        rdata = replay_data(replayed)
        dash = {"color": REPLAY_COLOR, "width": 1.5, "dash": "dash"}
        fig.add_trace(go.Scatter(mode="lines", name="replayed target",
                                 line={**dash, "width": 2, "shape": "hv"},
                                 hovertemplate="t=%{x:.1f}s replayed %{y}<extra>replay</extra>",
                                 **rdata["replayed target"]), row=1, col=1)
        fig.add_trace(go.Scatter(mode="markers", name="replayed scale events",
                                 marker={"color": REPLAY_COLOR, "size": 7,
                                         "symbol": "triangle-up-open"},
                                 hovertemplate="t=%{x:.1f}s %{hovertext}<extra>replay</extra>",
                                 **rdata["replayed scale events"]), row=1, col=1)
        fig.add_trace(go.Scatter(mode="lines", name="replayed queued", line=dash,
                                 **rdata["replayed queued"]), row=2, col=1)
        fig.add_trace(go.Scatter(mode="lines", name="replayed throughput", line=dash,
                                 **rdata["replayed throughput"]), row=4, col=1)

    axis_row = {"y" if i == 1 else f"y{i}": i for i in range(1, len(PANELS) + 1)}
    for tr in fig.data:  # legend entries grouped by panel, in panel order
        tr.legendgroup = PANELS[axis_row[tr.yaxis] - 1][0]
    for i, (_, label) in enumerate(PANELS, start=1):
        fig.update_yaxes(title_text=label, row=i, col=1, rangemode="tozero")
    fig.update_yaxes(range=[0, 100], row=3, col=1)
    fig.update_xaxes(title_text="time (s)", row=len(PANELS), col=1)
    fig.update_layout(
        title={"text": _title(trace, title), "x": 0.01},
        height=height, width=width, margin={"l": 60, "r": 10, "t": 50, "b": 40},
        hovermode="closest",
        legend={"tracegroupgap": 18, "font": {"size": 11}, "y": 1, "yanchor": "top",
                "groupclick": "toggleitem"},
        template="plotly_white",
    )
    return fig


def trace_index(fig: Any, name: str) -> int:
    """Index of the figure's first trace called ``name`` (KeyError if none)."""
    for i, tr in enumerate(fig.data):
        if tr.name == name:
            return i
    raise KeyError(f"figure has no trace named {name!r}")


# -- several traces ---------------------------------------------------------------
def compare_figure(traces: Sequence[Trace] | Mapping[str, Trace],
                   labels: Sequence[str] | None = None, *, title: str | None = None,
                   height: int = 700) -> go.Figure:
    """Several runs on shared axes: workers, queue, throughput and task time p95.

    ``traces`` is a sequence (labels default to each trace's policy name) or a
    mapping label -> trace.
    """
    go = require_plotly()
    from plotly.subplots import make_subplots

    if isinstance(traces, Mapping):
        if labels is not None:
            raise ValueError("labels: give either a mapping of traces or labels, not both")
        labels = list(traces.keys())
        traces = list(traces.values())
    traces = list(traces)
    if not traces:
        raise ValueError("traces must not be empty")
    if labels is None:
        labels = [f"{i + 1}: {tr.policy_name or '?'}" for i, tr in enumerate(traces)]
    labels = [str(x) for x in labels]
    if len(labels) != len(traces):
        raise ValueError(f"labels has {len(labels)} names for {len(traces)} traces")
    rows = (("workers", "workers", "hv"), ("queued", "queued tasks", "linear"),
            ("throughput", "tasks/s", "linear"), ("latency_p95_ms", "task time p95 (ms)",
                                                   "linear"))
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.03)
    for k, (tr, label) in enumerate(zip(traces, labels, strict=True)):
        c = trace_columns(tr)
        color = COLORS[k % len(COLORS)]
        s = tr.summary()
        for r, (col, _, shape) in enumerate(rows, start=1):
            fig.add_trace(go.Scatter(
                x=c["t"], y=c[col], name=label, legendgroup=label, showlegend=(r == 1),
                mode="lines", line={"color": color, "width": 1.8, "shape": shape},
                hovertemplate=f"{label}<br>t=%{{x:.1f}}s %{{y:.4g}}<extra></extra>",
            ), row=r, col=1)
        if s["samples"]:
            fig.data[-len(rows)].update(
                name=f"{label} ({s['throughput']:.0f}/s, {s['worker_seconds']:.0f} w·s)")
    for r, (_, label, _) in enumerate(rows, start=1):
        fig.update_yaxes(title_text=label, row=r, col=1, rangemode="tozero")
    fig.update_xaxes(title_text="time (s)", row=len(rows), col=1)
    fig.update_layout(title={"text": title or "comparison", "x": 0.01}, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, template="plotly_white",
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    return fig


# -- export -------------------------------------------------------------------------
def save_html(fig: Any, path: str | os.PathLike) -> Path:
    """Write ``fig`` as one self-contained HTML file (plotly.js inlined, works offline)."""
    require_plotly()
    p = Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"path must end in .html, got {str(path)!r}")
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(p), include_plotlyjs=True, full_html=True,
                   config={"displaylogo": False})
    return p


__all__ = [
    "INSTALL_HINT",
    "REPLAY_NAMES",
    "compare_figure",
    "figure_title",
    "replay_data",
    "require_plotly",
    "save_html",
    "scale_event_points",
    "trace_columns",
    "trace_data",
    "trace_figure",
    "trace_index",
]
