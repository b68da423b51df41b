"""Plotly figures of parameter sweeps: heatmaps over two parameters, Pareto fronts.

Pure functions of a sweep result (a ``SweepResult``, a DataFrame, a list of dicts or
a dict of columns), like the trace figures of :mod:`adaptive_lab.ui.figures`; plotly
is imported when a builder is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_lab.ui.figures import COLORS, require_plotly

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

#: Metrics a sweep reports, and whether more is better.
SWEEP_METRICS: dict[str, bool] = {
    "throughput": True,
    "makespan": False,
    "worker_seconds": False,
    "oscillation": False,
}

__all__ = ["SWEEP_METRICS", "pareto_figure", "pareto_mask", "sweep_heatmap", "sweep_rows"]


def sweep_rows(sweep: Any) -> list[dict[str, Any]]:
    """The rows of a sweep result (one dict per parameter combination).

    Accepts a ``SweepResult`` (its ``table()``), a pandas DataFrame, a list of dicts
    or a dict of equal-length columns.
    """
    data = sweep.table() if hasattr(sweep, "table") else sweep
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # DataFrame
        return [dict(r) for r in data.to_dict(orient="records")]
    if isinstance(data, Mapping):
        cols = {k: list(np.asarray(v).ravel()) for k, v in data.items()}
        n = {len(v) for v in cols.values()}
        if len(n) > 1:
            raise ValueError("sweep columns have different lengths")
        return [{k: v[i] for k, v in cols.items()} for i in range(n.pop() if n else 0)]
    rows = [dict(r) for r in data]
    return rows


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def sweep_heatmap(sweep: Any, x: str, y: str, metric: str = "throughput", *,
                  reduce: str = "mean", title: str | None = None) -> go.Figure:
    """Heatmap of ``metric`` over two swept parameters ``x`` and ``y``.

    Other swept parameters are aggregated with ``reduce`` ("mean", "max" or "min");
    the title says so.
    """
    go = require_plotly()
    rows = sweep_rows(sweep)
    if not rows:
        raise ValueError("sweep has no rows")
    for name, v in (("x", x), ("y", y), ("metric", metric)):
        if v not in rows[0]:
            raise ValueError(f"{name}: {v!r} is not a sweep column "
                             f"(columns: {', '.join(map(str, rows[0]))})")
    if x == y:
        raise ValueError("x and y must be different parameters")
    funcs: dict[str, Callable[..., Any]] = {"mean": np.nanmean, "max": np.nanmax,
                                          "min": np.nanmin}
    if reduce not in funcs:
        raise ValueError(f"reduce must be one of {sorted(funcs)}, got {reduce!r}")
    xs = sorted({r[x] for r in rows})
    ys = sorted({r[y] for r in rows})
    cells: dict[tuple[Any, Any], list[float]] = {}
    for r in rows:
        cells.setdefault((r[x], r[y]), []).append(_num(r[metric]))
    z = np.full((len(ys), len(xs)), np.nan)
    for (xv, yv), vals in cells.items():
        arr = np.asarray(vals)
        if np.isfinite(arr).any():
            z[ys.index(yv), xs.index(xv)] = funcs[reduce](arr)
    n_other = max(len(v) for v in cells.values())
    better = "higher is better" if SWEEP_METRICS.get(metric, True) else "lower is better"
    default_title = f"{metric} ({better})"
    if n_other > 1:
        default_title += f", {reduce} over {n_other} other settings"
    fig = go.Figure(go.Heatmap(
        x=[str(v) for v in xs], y=[str(v) for v in ys], z=z,
        colorscale="Viridis" if SWEEP_METRICS.get(metric, True) else "Viridis_r",
        colorbar={"title": {"text": metric}},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>",
        texttemplate="%{z:.3g}" if z.size <= 150 else None,
    ))
    fig.update_layout(title={"text": title or default_title, "x": 0.01},
                      xaxis={"title": {"text": x}, "type": "category"},
                      yaxis={"title": {"text": y}, "type": "category"},
                      template="plotly_white", height=480,
                      margin={"l": 70, "r": 20, "t": 50, "b": 50})
    return fig


def pareto_mask(a: np.ndarray, b: np.ndarray, maximize_a: bool = False,
                maximize_b: bool = True) -> np.ndarray:
    """Boolean mask of the points not dominated by any other (NaN points never are)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("a and b must have the same shape")
    sa = -a if maximize_a else a  # minimise both
    sb = -b if maximize_b else b
    ok = np.isfinite(sa) & np.isfinite(sb)
    mask = np.zeros(a.shape, dtype=bool)
    idx = np.flatnonzero(ok)
    for i in idx:
        le = (sa[idx] <= sa[i]) & (sb[idx] <= sb[i])
        lt = (sa[idx] < sa[i]) | (sb[idx] < sb[i])
        mask[i] = not np.any(le & lt)
    return mask


def pareto_figure(sweep: Any, x: str = "worker_seconds", y: str = "throughput", *,
                  color: str | None = None, title: str | None = None) -> go.Figure:
    """Every swept setting as a point (cost ``x`` vs benefit ``y``), the Pareto front joined.

    Directions come from :data:`SWEEP_METRICS` (throughput up, the rest down). Hover
    shows each point's parameters; ``color`` names a column to colour points by
    (e.g. ``"policy"``).
    """
    go = require_plotly()
    rows = sweep_rows(sweep)
    if not rows:
        raise ValueError("sweep has no rows")
    for name, v in (("x", x), ("y", y)):
        if v not in rows[0]:
            raise ValueError(f"{name}: {v!r} is not a sweep column "
                             f"(columns: {', '.join(map(str, rows[0]))})")
    if color is not None and color not in rows[0]:
        raise ValueError(f"color: {color!r} is not a sweep column")
    xa = np.array([_num(r[x]) for r in rows])
    ya = np.array([_num(r[y]) for r in rows])
    mask = pareto_mask(xa, ya, SWEEP_METRICS.get(x, False), SWEEP_METRICS.get(y, True))
    metric_cols = set(SWEEP_METRICS) | {x, y}
    hover = ["<br>".join(f"{k}={_fmt(v)}" for k, v in r.items() if k not in metric_cols)
             + f"<br>{x}={_fmt(r[x])}<br>{y}={_fmt(r[y])}" for r in rows]
    fig = go.Figure()
    groups: dict[Any, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r[color] if color else "settings", []).append(i)
    for k, (g, idx) in enumerate(groups.items()):
        fig.add_trace(go.Scatter(
            x=xa[idx], y=ya[idx], mode="markers", name=str(g),
            marker={"color": COLORS[k % len(COLORS)] if color else "#9aa5b1", "size": 8,
                    "opacity": 0.75},
            hovertext=[hover[i] for i in idx], hovertemplate="%{hovertext}<extra></extra>"))
    front = np.flatnonzero(mask)
    front = front[np.argsort(xa[front], kind="stable")]
    fig.add_trace(go.Scatter(
        x=xa[front], y=ya[front], mode="lines+markers", name="Pareto front",
        line={"color": "#111111", "width": 2},
        marker={"color": "#111111", "size": 10, "symbol": "star"},
        hovertext=[hover[i] for i in front], hovertemplate="%{hovertext}<extra>front</extra>"))
    dx = "higher" if SWEEP_METRICS.get(x, False) else "lower"
    dy = "higher" if SWEEP_METRICS.get(y, True) else "lower"
    fig.update_layout(
        title={"text": title or f"Pareto front: {y} ({dy} is better) vs {x} "
               f"({dx} is better), {len(front)} of {len(rows)} settings", "x": 0.01},
        xaxis={"title": {"text": x}}, yaxis={"title": {"text": y}},
        template="plotly_white", height=480, margin={"l": 70, "r": 20, "t": 50, "b": 50})
    return fig


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
