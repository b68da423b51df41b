"""What the notebook widgets share: sliders generated from a policy's parameters, traces.

:class:`~adaptive_lab.ui.explorer.ReplayExplorer` tunes a policy on a recorded trace;
:class:`~adaptive_lab.ui.monitor.LiveMonitor` watches and retunes a live pool. Both need
the notebooks extra (``pip install adaptive-lab[notebooks]``: ipywidgets, plotly,
anywidget); it is imported when a widget is built, not when a module is imported.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_lab.ui import figures as viz

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_lab.policies.base import Param
    from adaptive_lab.trace.format import Trace

MODES = ("closed", "open")


def _require_widgets() -> tuple[Any, Any]:
    """Import ipywidgets and plotly.graph_objects, or say how to install them."""
    go = viz.require_plotly()
    try:
        import anywidget  # noqa: F401  (FigureWidget is built on it)
        import ipywidgets
    except ImportError as exc:  # pragma: no cover
        raise ImportError("adaptive_lab.ui needs ipywidgets and anywidget: "
                          f"{viz.INSTALL_HINT}") from exc
    return ipywidgets, go


def load_traces(traces: Any) -> dict[str, Trace]:
    """Normalise ``traces`` to a dict name -> Trace.

    Accepts a mapping name -> Trace (or path), a single Trace or path, or an
    iterable of paths / Traces (named by file stem, or ``trace 1`` ...).
    """
    from adaptive_lab.trace.format import Trace

    def one(x: Any) -> Trace:
        if isinstance(x, Trace):
            return x
        if isinstance(x, (str, os.PathLike)):
            return Trace.load(x)
        raise ValueError(f"traces: expected Trace objects or paths, got {type(x).__name__}")

    if isinstance(traces, Mapping):
        out = {str(k): one(v) for k, v in traces.items()}
    elif isinstance(traces, (Trace, str, os.PathLike)):
        out = {_name(traces, 0): one(traces)}
    elif isinstance(traces, Iterable):
        out = {}
        for i, x in enumerate(traces):
            out[_name(x, i)] = one(x)
    else:
        raise ValueError(f"traces: expected a dict, a list or a path, got {type(traces).__name__}")
    if not out:
        raise ValueError("traces must not be empty")
    for k, tr in out.items():
        if len(tr.samples) < 2:
            raise ValueError(f"traces: trace {k!r} has fewer than two samples")
    return out


def _name(x: Any, i: int) -> str:
    return Path(x).stem if isinstance(x, (str, os.PathLike)) else f"trace {i + 1}"


def slider_range(p: Param, value: float) -> tuple[float, float]:
    """Slider bounds for ``p``: its range, narrowed for huge integer ranges.

    An integer range like 0..10000 makes a slider useless; show up to
    ``max(4 * default, 4 * value, low + 50)`` unless ``p.extra["slider_high"]`` says.
    """
    high = p.extra.get("slider_high") if p.extra else None
    if high is None:
        high = p.high
        if p.kind is int and p.high - p.low > 200:
            high = min(p.high, max(4 * p.default, 4 * value, p.low + 50))
    return p.low, max(float(high), float(value))


def make_slider(p: Param, value: Any, continuous_update: bool = True) -> Any:
    """An ipywidgets control for ``p``: IntSlider, FloatSlider or Checkbox, with tooltip."""
    w, _ = _require_widgets()
    style = {"description_width": "140px"}
    layout = w.Layout(width="420px")
    common = {"description": p.name, "tooltip": p.description, "style": style,
              "layout": layout, "continuous_update": continuous_update}
    if p.kind is bool:
        return w.Checkbox(value=bool(value), description=p.name, tooltip=p.description,
                          indent=False)
    low, high = slider_range(p, value)
    if p.kind is int:
        return w.IntSlider(value=int(value), min=int(low), max=int(high),
                           step=max(1, int(p.step)), **common)
    step = float(p.step) if p.step else (high - low) / 100.0
    decimals = max(0, min(6, -math.floor(math.log10(step)))) if step > 0 else 2
    return w.FloatSlider(value=float(value), min=float(low), max=float(high), step=step,
                         readout_format=f".{decimals}f", **common)


def _widen(slider: Any, value: Any) -> None:
    """Stretch a slider's range so it can show ``value`` (a valid but off-range value)."""
    if hasattr(slider, "max") and value > slider.max:
        slider.max = value
    if hasattr(slider, "min") and value < slider.min:
        slider.min = value


def _column(samples: list[dict[str, Any]], key: str) -> np.ndarray:
    """One sample field as a float array (NaN where missing), without the other fields."""
    return np.fromiter((math.nan if s.get(key) is None else s[key] for s in samples),
                       np.float64, len(samples))


def _throughput_and_cost(tr: Trace) -> tuple[float, float]:
    """Tasks/s and worker-seconds of a trace, as ``Trace.summary`` computes them (fast)."""
    s = tr.samples
    if len(s) < 2:
        return math.nan, 0.0
    t, w = _column(s, "t"), _column(s, "workers")

    def done(x: dict[str, Any]) -> int:
        return x.get("completed", 0) + max(x.get("failed", 0), 0)

    dur = t[-1] - t[0]
    thr = (done(s[-1]) - done(s[0])) / dur if dur > 0 else math.nan
    return thr, float(np.sum((w[1:] + w[:-1]) * np.diff(t)) / 2.0)


def _status(ms: float, text: str) -> str:
    return (f"<span style='font-family:monospace;font-size:12px'>{html.escape(text)}"
            f" &middot; update {ms:.1f} ms</span>")


__all__ = ["MODES", "load_traces", "make_slider", "slider_range"]
