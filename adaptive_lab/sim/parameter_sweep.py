"""Parameter sweeps: score every combination of a policy's parameters.

Two modes:

* ``closed`` (default): :func:`~adaptive_lab.sim.simulate` per point on a fitted
  :class:`~adaptive_lab.sim.model.WorkloadModel` (about a controller tick per sample per
  point, so tens of ms each).
* ``open``: :func:`~adaptive_lab.sim.open_loop.replay` per point on the recorded trace (the
  sizes ignore feedback), then the recorded work is pushed through a fluid queue at
  the replayed sizes with the model's capacity to estimate throughput and makespan.
  For :class:`~adaptive_lab.policies.threshold.ThresholdPolicy` the open-loop rules
  are evaluated for the whole grid at once with numpy (bit-identical to the policy's
  own code; ``tests/test_sim.py`` compares them).

Metrics per point: ``throughput`` (tasks/s over the makespan), ``makespan`` (s),
``worker_seconds`` (integral of the size until the work is done), ``oscillation``
(direction changes of the size per minute), ``mean_workers``, ``scale_events``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaptive_lab.policies.base import Policy, clamp_target
from adaptive_lab.policies.threshold import ThresholdPolicy
from adaptive_lab.sim.model import WorkloadModel
from adaptive_lab.sim.open_loop import _bounds, _columns, _interval, decision_indices, replay
from adaptive_lab.trace.format import Trace

__all__ = ["METRICS", "SweepResult", "sweep"]

#: metric -> True if larger is better
METRICS = {"throughput": True, "makespan": False, "worker_seconds": False,
           "oscillation": False, "mean_workers": False, "scale_events": False}


@dataclass
class SweepResult:
    """Per-point parameters and metrics as flat numpy arrays (grid order, C-style).

    ``shape`` is the grid's shape (one axis per parameter, in ``grid`` order), so
    ``result.metrics["throughput"].reshape(result.shape)`` is the grid view.
    ``valid`` is False where the parameters were rejected (metrics NaN there).
    """

    policy: str
    mode: str
    names: list[str]
    shape: tuple[int, ...]
    params: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    valid: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)
    vectorised: bool = False

    def __len__(self) -> int:
        return len(self.valid)

    def table(self) -> list[dict[str, Any]]:
        """One dict per point: the parameters, then the metrics."""
        rows = []
        for i in range(len(self)):
            row: dict[str, Any] = {n: self.params[n][i].item() for n in self.names}
            row.update({m: float(v[i]) for m, v in self.metrics.items()})
            row["valid"] = bool(self.valid[i])
            rows.append(row)
        return rows

    def frame(self) -> Any:
        """The table as a pandas DataFrame (requires pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover
            raise ImportError("SweepResult.frame() needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.table())

    def best(self, metric: str = "throughput") -> dict[str, Any]:
        """The point with the best value of ``metric`` (max throughput, min the rest)."""
        if metric not in self.metrics:
            raise ValueError(f"metric must be one of {sorted(self.metrics)}, got {metric!r}")
        v = np.where(self.valid & np.isfinite(self.metrics[metric]), self.metrics[metric],
                     np.nan)
        if np.all(np.isnan(v)):
            raise ValueError(f"no valid point has a finite {metric}")
        i = int(np.nanargmax(v) if METRICS.get(metric, True) else np.nanargmin(v))
        return self.table()[i]

    def pareto(self, x: str = "worker_seconds", y: str = "throughput") -> list[dict[str, Any]]:
        """Points not dominated on (low ``x``, high ``y``), sorted by ``x``."""
        for m in (x, y):
            if m not in self.metrics:
                raise ValueError(f"metric must be one of {sorted(self.metrics)}, got {m!r}")
        idx = pareto_front(self.metrics[x], self.metrics[y], self.valid)
        rows = self.table()
        return [rows[i] for i in idx]


def pareto_front(cost: np.ndarray, gain: np.ndarray, valid: np.ndarray | None = None
                 ) -> list[int]:
    """Indices on the front minimising ``cost`` and maximising ``gain``, by cost."""
    ok = np.isfinite(cost) & np.isfinite(gain)
    if valid is not None:
        ok &= valid
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((-gain[idx], cost[idx]))]
    out, best = [], -math.inf
    for i in order:
        if gain[i] > best:
            out.append(int(i))
            best = gain[i]
    return out


def _grid_points(policy_class: type[Policy], grid: dict[str, Sequence[Any]],
                 base: dict[str, Any]) -> tuple[list[str], tuple[int, ...], list[dict]]:
    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict of parameter -> values")
    names = list(grid)
    for n in names:
        policy_class.param_spec(n)  # raises naming an unknown parameter
        if len(grid[n]) == 0:
            raise ValueError(f"grid['{n}'] is empty")
    shape = tuple(len(grid[n]) for n in names)
    points = [{**base, **dict(zip(names, combo, strict=True))}
              for combo in itertools.product(*(list(grid[n]) for n in names))]
    return names, shape, points


def oscillation(targets: np.ndarray, duration: float) -> np.ndarray:
    """Direction changes of each column of ``targets`` (T, G) per minute."""
    targets = np.asarray(targets)
    if duration <= 0 or len(targets) < 3:
        return np.zeros(targets.shape[1])
    sign = np.sign(np.diff(targets, axis=0))
    rows = np.arange(len(sign))[:, None]
    last = np.maximum.accumulate(np.where(sign != 0, rows, -1), axis=0)  # last move so far
    prev = np.vstack([np.full((1, sign.shape[1]), -1), last[:-1]])  # ... before this row
    prev_sign = np.take_along_axis(sign, np.maximum(prev, 0), axis=0)
    flips = (sign != 0) & (prev >= 0) & (sign != prev_sign)
    return flips.sum(axis=0) / (duration / 60.0)


def fluid_metrics(targets: np.ndarray, t: np.ndarray, done: np.ndarray,
                  model: WorkloadModel) -> dict[str, np.ndarray]:
    """Push the recorded work through a fluid queue at sizes ``targets`` (T, G).

    ``targets[i]`` is the size in force during ``(t[i-1], t[i]]``; ``done`` the
    recorded cumulative completions. Backlogged segments release their tasks at their
    first sample, arrival-limited ones as recorded. Time is cut into blocks over which
    every column's size and the segment are constant; in each block the queue gets the
    block's arrivals and then serves at the model's throughput at ``min(size,
    window)`` for the block's length (arrivals are taken at the block's start).
    """
    targets = np.asarray(targets, dtype=np.int64)
    T, G = targets.shape
    seg_of = np.zeros(T, dtype=np.int64)
    for j, s in enumerate(model.segments):
        seg_of[t >= s.t0 - 1e-9] = j
    kmax = int(targets.max()) + 1
    caps_tab = np.stack([np.minimum(model.table(j, kmax)[: kmax + 1],
                                    s.submit_rate if s.submit_rate is not None else np.inf)
                         for j, s in enumerate(model.segments)])
    n = np.diff(done, prepend=done[0]).astype(float)
    arrivals = np.zeros(T)
    for j, s in enumerate(model.segments):
        rows = np.flatnonzero(seg_of == j)
        if not len(rows):
            continue
        if s.arrival_rate is None:
            arrivals[rows[0]] += n[rows].sum()
        else:
            arrivals[rows] += n[rows]
    total = float(arrivals.sum())
    dt = np.diff(t, prepend=t[0])
    # blocks of constant sizes (all columns) and segment
    change = np.zeros(T, dtype=bool)
    change[0] = True
    if T > 1:
        change[1:] = np.any(targets[1:] != targets[:-1], axis=1) | (seg_of[1:] != seg_of[:-1])
    starts = np.flatnonzero(change)
    b_arr = np.add.reduceat(arrivals, starts)
    b_dt = np.add.reduceat(dt, starts)
    b_t0 = np.where(starts > 0, t[np.maximum(starts - 1, 0)], t[0])
    b_size = targets[starts]  # (B, G)
    b_cap = caps_tab[seg_of[starts][:, None], np.minimum(b_size, model.window)]
    capdt = b_cap * b_dt[:, None]
    served = np.empty_like(capdt)
    q = np.zeros(G)
    for b in range(len(starts)):
        q += b_arr[b]
        np.minimum(q, capdt[b], out=served[b])
        q -= served[b]
    ws_before = np.vstack([np.zeros((1, G)), np.cumsum(b_size * b_dt[:, None], axis=0)[:-1]])
    active = served > 0
    any_active = active.any(axis=0)
    last = len(starts) - 1 - np.argmax(active[::-1], axis=0)  # last block that served
    cols = np.arange(G)
    cap_last = b_cap[last, cols]
    frac = np.where(cap_last > 0, served[last, cols] / np.where(cap_last > 0, cap_last, 1.0), 0)
    finish = np.where(any_active, b_t0[last] + frac, np.nan)
    ws_finish = np.where(any_active, ws_before[last, cols] + b_size[last, cols] * frac, np.nan)
    left = q > 1e-9  # work left at the end: finish it at the last size
    if left.any():
        cap = caps_tab[seg_of[-1]][np.minimum(targets[-1], model.window)]
        extra = np.where(cap > 0, q / np.where(cap > 0, cap, 1.0), np.inf)
        ws_end = ws_before[-1] + b_size[-1] * b_dt[-1]
        finish = np.where(left, t[-1] + extra, finish)
        ws_finish = np.where(left, ws_end + targets[-1] * extra, ws_finish)
    makespan = finish - t[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        thr = np.where(makespan > 0, total / makespan, np.nan)
    dur = float(t[-1] - t[0])
    bw = b_size.astype(float)
    return {"throughput": thr, "makespan": makespan, "worker_seconds": ws_finish,
            "oscillation": oscillation(b_size, dur),
            "mean_workers": (bw * b_dt[:, None]).sum(axis=0) / dur if dur > 0 else bw[0],
            "scale_events": np.count_nonzero(np.diff(b_size, axis=0), axis=0).astype(float)}


def threshold_targets(trace: Trace, points: list[dict[str, Any]], *,
                      interval: float | None = None, min_workers: int | None = None,
                      max_workers: int | None = None, initial_workers: int | None = None
                      ) -> np.ndarray:
    """Open-loop ThresholdPolicy sizes for many parameter sets at once: (T, G).

    The same rules, order, comparisons and arithmetic as
    :meth:`ThresholdPolicy.decide` (NaN compares False; EWMA smoothing), for every
    point in parallel; ``targets[i]`` is the size in force when sample i was taken,
    as ``replay(...).samples[i]["target"]``.
    """
    c = _columns(trace)
    lo, hi = _bounds(trace, min_workers, max_workers)
    idx = dec = decision_indices(c.t, _interval(trace, interval))
    P = {name: np.array([p[name] for p in points]) for name in
         ("scale_up_cpu", "scale_up_queue", "scale_down_cpu", "scale_down_queue",
          "memory_pressure", "moderate_queue", "up_step", "moderate_step", "down_step",
          "smoothing")}
    G = len(points)
    init = clamp_target(int(initial_workers if initial_workers is not None
                            else trace.samples[0]["workers"]), lo, hi)
    cur = np.full(G, init, dtype=np.int64)
    a = c.a
    cpu_col, mem_col, q_col = a["cpu_percent"], a["memory_percent"], a["queued"]
    alpha = P["smoothing"]
    smooth = alpha > 0.0
    s_cpu = np.full(G, np.nan)
    s_q = np.full(G, np.nan)
    first = True
    after = np.empty((len(idx) + 1, G), dtype=np.int64)
    after[0] = init
    if not smooth.any():  # no state but the size: all rules for all times at once
        ii = np.asarray(idx, dtype=np.int64)
        cpu = cpu_col[ii][:, None]
        q = q_col[ii].astype(float)[:, None]
        mem = mem_col[ii][:, None]
        r1 = mem > P["memory_pressure"]
        r2 = ~r1 & (cpu > P["scale_down_cpu"]) & (q < P["scale_down_queue"])
        r3 = ~r1 & ~r2 & (cpu < P["scale_up_cpu"]) & (q > P["scale_up_queue"])
        r4 = ~r1 & ~r2 & ~r3 & (q > P["moderate_queue"])
        delta = np.where(r1 | r2, -P["down_step"],
                         np.where(r3, P["up_step"], np.where(r4, P["moderate_step"], 0))
                         ).astype(np.int64)
        for j in range(len(idx)):
            cur = np.clip(cur + delta[j], lo, hi)
            after[j + 1] = cur
        idx = []  # done
    for j, i in enumerate(idx):
        cpu_raw, q_raw, mem_now = float(cpu_col[i]), float(q_col[i]), float(mem_col[i])
        if smooth.any():
            if math.isfinite(cpu_raw):
                s_cpu = np.where(np.isfinite(s_cpu), alpha * s_cpu + (1 - alpha) * cpu_raw,
                                 cpu_raw)
            else:  # the policy keeps a finite EWMA, else takes the raw value
                s_cpu = np.where(np.isfinite(s_cpu), s_cpu, cpu_raw)
            s_q = np.full(G, q_raw) if first else alpha * s_q + (1 - alpha) * q_raw
            cpu = np.where(smooth, s_cpu, cpu_raw)
            q = np.where(smooth, s_q, q_raw)
        else:
            cpu = np.full(G, cpu_raw)
            q = np.full(G, q_raw)
        first = False
        r1 = mem_now > P["memory_pressure"]
        r2 = ~r1 & (cpu > P["scale_down_cpu"]) & (q < P["scale_down_queue"])
        r3 = ~r1 & ~r2 & (cpu < P["scale_up_cpu"]) & (q > P["scale_up_queue"])
        r4 = ~r1 & ~r2 & ~r3 & (q > P["moderate_queue"])
        delta = np.where(r1 | r2, -P["down_step"],
                         np.where(r3, P["up_step"], np.where(r4, P["moderate_step"], 0)))
        cur = np.clip(cur + delta.astype(np.int64), lo, hi)
        after[j + 1] = cur
    m = np.searchsorted(np.asarray(dec, dtype=np.int64), np.arange(len(c.t)), side="left")
    return after[m]


def sweep(model_or_trace: WorkloadModel | Trace, policy_class: type[Policy],
          grid: dict[str, Sequence[Any]], *, mode: str = "closed",
          base: dict[str, Any] | None = None, vectorise: bool = True,
          interval: float | None = None, min_workers: int | None = None,
          max_workers: int | None = None, initial_workers: int | None = None,
          seed: int = 0, **simulate_kw: Any) -> SweepResult:
    """Score every combination in ``grid`` (dict of parameter -> values).

    ``mode="open"`` needs a :class:`Trace` (the model for the fluid estimate is fitted
    from it); ``mode="closed"`` takes a model or a trace (fitted). ``base`` holds
    fixed parameters. ``vectorise=False`` forces the per-policy code path.
    Returns a :class:`SweepResult`.
    """
    if mode not in ("open", "closed"):
        raise ValueError(f"mode must be 'open' or 'closed', got {mode!r}")
    if not (isinstance(policy_class, type) and issubclass(policy_class, Policy)):
        raise TypeError(f"policy_class must be a Policy subclass, got {policy_class!r}")
    names, shape, points = _grid_points(policy_class, grid, dict(base or {}))
    valid = np.ones(len(points), dtype=bool)
    errors: dict[int, str] = {}
    policies: list[Policy | None] = []
    for i, p in enumerate(points):
        try:
            policies.append(policy_class(**p))
        except ValueError as exc:
            valid[i] = False
            errors[i] = str(exc)
            policies.append(None)
    params = {n: np.array([p[n] for p in points]) for n in names}
    good = [i for i in range(len(points)) if valid[i]]
    chosen = {i: p for i, p in enumerate(policies) if p is not None}
    metrics = {m: np.full(len(points), np.nan) for m in METRICS}
    vec = False
    if mode == "open":
        if not isinstance(model_or_trace, Trace):
            raise TypeError("mode='open' needs the recorded Trace, not a model")
        trace = model_or_trace
        model = WorkloadModel.fit(trace)
        kw: dict[str, Any] = {"interval": interval, "min_workers": min_workers,
                              "max_workers": max_workers, "initial_workers": initial_workers}
        if vectorise and policy_class is ThresholdPolicy and good:
            targets = threshold_targets(trace, [chosen[i].params() for i in good], **kw)
            vec = True
        elif good:
            cols = [[s["target"] for s in replay(trace, chosen[i], **kw).samples]
                    for i in good]
            targets = np.array(cols, dtype=np.int64).T
        if good:
            c = _columns(trace)
            res = fluid_metrics(targets, c.t, c.fin, model)
            for m, v in res.items():
                metrics[m][good] = v
    else:
        from adaptive_lab.sim.closed_loop import simulate

        model = model_or_trace if isinstance(model_or_trace, WorkloadModel) else \
            WorkloadModel.fit(model_or_trace)
        for i in good:
            tr = simulate(model, chosen[i], interval=interval, min_workers=min_workers,
                          max_workers=max_workers, initial_workers=initial_workers,
                          seed=seed, **simulate_kw)
            for m, value in closed_metrics(tr).items():
                metrics[m][i] = value
    return SweepResult(policy=policy_class.name, mode=mode, names=names, shape=shape,
                       params=params, metrics=metrics, valid=valid, errors=errors,
                       vectorised=vec)


def closed_metrics(tr: Trace) -> dict[str, float]:
    """Sweep metrics of one (simulated or live) trace."""
    s = tr.summary()
    a = tr.to_arrays()
    mk = tr.header.get("makespan_s")
    makespan = float(mk) if mk is not None else s["duration_s"]
    w = a["workers"][None, :].T
    return {"throughput": s["tasks"] / makespan if makespan > 0 else math.nan,
            "makespan": makespan, "worker_seconds": s["worker_seconds"],
            "oscillation": float(oscillation(w, s["duration_s"])[0]),
            "mean_workers": s["mean_workers"], "scale_events": float(s["scale_events"])}
