"""Notebook widgets: tune a policy on a recorded trace, or watch and tune a live pool.

* :class:`ReplayExplorer`: pick a trace and a policy; sliders generated from the
  policy's :class:`~adaptive_lab.policies.Param` metadata re-run the policy on the
  trace (closed-loop simulation or open-loop replay, :mod:`adaptive_lab.sim`) and
  update a ``go.FigureWidget`` in place.
* :class:`LiveMonitor`: attaches to a running
  :class:`~adaptive_lab.pool.AdaptiveThreadPoolExecutor`; a background thread pushes
  new samples into a ``go.FigureWidget``; sliders retune the running policy
  (``policy.set_params``, thread-safe).

Both need the notebooks extra (``pip install adaptive-lab[notebooks]``: ipywidgets,
plotly, anywidget); it is imported when a widget is built, not when this module is.
"""

from __future__ import annotations

import html
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_lab.ui import figures as viz

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
    from adaptive_lab.policies.base import Param, Policy
    from adaptive_lab.trace.format import Trace

MODES = ("closed", "open")


def _require_widgets() -> tuple[Any, Any]:
    """Import ipywidgets and plotly.graph_objects, or say how to install them."""
    go = viz.require_plotly()
    try:
        import anywidget  # noqa: F401  (FigureWidget is built on it)
        import ipywidgets
    except ImportError as exc:  # pragma: no cover
        raise ImportError("adaptive_lab.widgets needs ipywidgets and anywidget: "
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


class ReplayExplorer:
    """Tune a policy on recorded traces with sliders.

    Parameters
    ----------
    traces
        ``dict[name, Trace]``, or a list of trace paths (named by file stem).
    policy
        Registered policy name to start with (see ``available_policies()``).
    mode
        ``"closed"``: fit a :class:`~adaptive_lab.sim.WorkloadModel` to the trace and
        simulate the queue under the policy (the counterfactual); ``"open"``: feed the
        recorded observations to the policy (exact, but the queue stays as recorded).
    params
        Starting parameter values (default: the trace's recorded values when its
        policy is the chosen one, else the policy's defaults).
    first
        Parameter names whose sliders come first (e.g. the one you want to demo).
    continuous_update
        Re-run while a slider is dragged (True) or on release.
    height, width
        Figure size in pixels (``width=None`` lets plotly size it).

    Attributes: ``figure`` (``go.FigureWidget``), ``sliders`` (name -> widget),
    ``replayed`` (the last replayed Trace), ``last_update_ms`` (kernel time of the last
    slider update: replay, figure update and status line), ``error`` (why the last
    values were refused, or None), ``widget`` (the whole UI).
    """

    def __init__(self, traces: Any, policy: str = "threshold", mode: str = "closed", *,
                 params: Mapping[str, Any] | None = None, first: Sequence[str] = (),
                 continuous_update: bool = True, height: int = 760,
                 width: int | None = 1000) -> None:
        from adaptive_lab.policies import available_policies, policy_class

        w, go = _require_widgets()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        policy_class(policy)  # ValueError naming the known policies
        self.traces = load_traces(traces)
        self.mode = mode
        self.first = tuple(first)
        self.continuous_update = continuous_update
        self.last_update_ms = math.nan
        self.updates = 0
        self.error: str | None = None
        self.replayed: Trace | None = None
        self._models: dict[str, Any] = {}
        self._summaries: dict[str, dict[str, Any]] = {}
        self._hold = False
        self.sliders: dict[str, Any] = {}

        names = list(self.traces)
        self.trace_picker = w.Dropdown(options=names, value=names[0], description="trace",
                                       layout=w.Layout(width="300px"))
        self.policy_picker = w.Dropdown(options=available_policies(), value=policy,
                                        description="policy", layout=w.Layout(width="260px"))
        self.mode_picker = w.ToggleButtons(options=list(MODES), value=mode,
                                           tooltips=["simulate the queue (counterfactual)",
                                                     "replay recorded observations (exact)"],
                                           style={"button_width": "70px"})
        self.status = w.HTML()
        self.slider_box = w.VBox(layout=w.Layout(flex_flow="row wrap"))
        self._build_sliders(params)
        replayed = self._replay()
        self.figure = go.FigureWidget(viz.trace_figure(self.trace, replayed=replayed,
                                                       show_replayed=True, height=height,
                                                       width=width))
        self._index = {d.name: i for i, d in enumerate(self.figure.data)}
        self._show_status(0.0)
        self.widget = w.VBox([w.HBox([self.trace_picker, self.policy_picker,
                                      self.mode_picker]),
                              self.slider_box, self.status, self.figure])
        self.trace_picker.observe(self._on_trace, names="value")
        self.policy_picker.observe(self._on_policy, names="value")
        self.mode_picker.observe(self._on_mode, names="value")

    # -- state --------------------------------------------------------------------
    @property
    def trace(self) -> Trace:
        """The trace being explored."""
        return self.traces[self.trace_picker.value]

    @property
    def policy_name(self) -> str:
        return self.policy_picker.value

    def params(self) -> dict[str, Any]:
        """The slider values, by parameter name."""
        return {k: s.value for k, s in self.sliders.items()}

    def policy(self) -> Policy:
        """A fresh policy built from the sliders (ValueError if they conflict)."""
        from adaptive_lab.policies import policy_class

        return policy_class(self.policy_name)(**self.params())

    def _start_values(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        from adaptive_lab.policies import policy_class

        cls = policy_class(self.policy_name)
        values = {p.name: p.default for p in cls.param_specs()}
        rec = self.trace.header.get("policy") or {}
        if isinstance(rec, dict) and rec.get("name") == self.policy_name:
            known = set(values)
            values.update({k: v for k, v in (rec.get("params") or {}).items() if k in known})
        if params:
            for k in params:
                cls.param_spec(k)  # UnknownParameterError (a ValueError) names it
            values.update(params)
        return values

    def _build_sliders(self, params: Mapping[str, Any] | None = None) -> None:
        from adaptive_lab.policies import policy_class

        specs = list(policy_class(self.policy_name).param_specs())
        order = {n: i for i, n in enumerate(self.first)}
        specs.sort(key=lambda p: order.get(p.name, len(order)))
        values = self._start_values(params)
        for s in self.sliders.values():
            s.unobserve_all()
        self.sliders = {p.name: make_slider(p, values[p.name], self.continuous_update)
                        for p in specs}
        for s in self.sliders.values():
            s.observe(self._on_slider, names="value")
        self.slider_box.children = tuple(self.sliders.values())

    # -- running the policy -------------------------------------------------------
    def _model(self) -> Any:
        from adaptive_lab.sim.model import WorkloadModel

        key = self.trace_picker.value
        if key not in self._models:
            self._models[key] = WorkloadModel.fit(self.trace)
        return self._models[key]

    def _replay(self) -> Trace | None:
        """Run the chosen policy on the chosen trace; None (and ``error``) if invalid."""
        from adaptive_lab.sim.closed_loop import simulate
        from adaptive_lab.sim.open_loop import replay

        try:
            policy = self.policy()
        except ValueError as exc:
            self.error = str(exc)
            return None
        self.error = None
        interval = self.trace.header.get("interval")
        if self.mode == "open":
            self.replayed = replay(self.trace, policy, interval=interval)
        else:
            self.replayed = simulate(self._model(), policy, interval=interval)
        return self.replayed

    def update(self, **params: Any) -> Trace | None:
        """Set some slider values (unspecified ones keep theirs), re-run, redraw.

        Returns the replayed trace (None if the values are invalid, see ``error``).
        """
        from adaptive_lab.policies import policy_class

        cls = policy_class(self.policy_name)
        for k, v in params.items():
            spec = cls.param_spec(k)
            v = spec.validate(v, cls.__name__)
            s = self.sliders[k]
            _widen(s, v)
            self._hold = True
            try:
                s.value = v
            finally:
                self._hold = False
        return self.refresh()

    def refresh(self) -> Trace | None:
        """Re-run the policy with the current slider values and update the figure."""
        t0 = time.perf_counter()
        replayed = self._replay()
        if replayed is not None:
            data = viz.replay_data(replayed)
            with self.figure.batch_update():
                for name, d in data.items():
                    tr = self.figure.data[self._index[name]]
                    for k, v in d.items():
                        setattr(tr, k, v)
        self._show_status(time.perf_counter() - t0)
        self.last_update_ms = (time.perf_counter() - t0) * 1000.0  # replay, figure, status
        self.updates += 1
        return replayed

    def _recorded_summary(self) -> dict[str, Any]:
        key = self.trace_picker.value
        if key not in self._summaries:
            self._summaries[key] = self.trace.summary()
        return self._summaries[key]

    def _show_status(self, seconds: float) -> None:
        if self.error is not None:
            self.status.value = ("<span style='color:#b00'>invalid parameters: "
                                 f"{html.escape(self.error)}</span>")
            return
        rep = self.replayed
        if rep is None:
            self.status.value = ""
            return
        rec = self._recorded_summary()
        n_scale = len(rep.scale_events())
        if self.mode == "open":
            tgt = _column(rep.samples, "target")
            text = (f"open loop: mean target {np.nanmean(tgt):.1f} workers "
                    f"(recorded {rec['mean_workers']:.1f}), {n_scale} scale decisions "
                    f"(recorded {rec['scale_events']})")
        else:
            thr, ws = _throughput_and_cost(rep)
            text = (f"closed loop: {thr:.0f} tasks/s, {ws:.0f} worker-s, {n_scale} scale "
                    f"events; recorded {rec['throughput']:.0f} tasks/s, "
                    f"{rec['worker_seconds']:.0f} worker-s, {rec['scale_events']} scale events")
        self.status.value = _status(seconds * 1000.0, text)

    # -- callbacks ------------------------------------------------------------------
    def _on_slider(self, change: Any) -> None:
        if not self._hold:
            self.refresh()

    def _on_policy(self, change: Any) -> None:
        self._build_sliders()
        self.refresh()

    def _on_mode(self, change: Any) -> None:
        self.mode = change["new"]
        self.refresh()

    def _on_trace(self, change: Any) -> None:
        data = viz.trace_data(self.trace)
        with self.figure.batch_update():
            for name, d in data.items():
                tr = self.figure.data[self._index[name]]
                for k, v in d.items():
                    setattr(tr, k, v)
            self.figure.layout.title.text = viz.figure_title(self.trace)
        self.refresh()  # the sliders keep their values: compare traces at equal settings

    # -- display --------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        """Show the explorer (in a notebook)."""
        from IPython.display import display

        display(self.widget)


class LiveMonitor:
    """Watch a running pool's trace grow, and retune its policy with sliders.

    Parameters
    ----------
    pool
        An :class:`~adaptive_lab.pool.AdaptiveThreadPoolExecutor` with a controller
        (built with ``policy=`` or ``record=``). With ``record=`` the monitor reads the
        recorder (every sample and scale event); without, it collects
        ``controller.last_sample`` as it polls.
    refresh
        Seconds between figure updates (the background thread's period).
    window
        Show only the last ``window`` seconds (None: the whole run). Each refresh
        sends the shown data to the browser, so long runs want a window.
    height, width, title
        Figure size in pixels and a fixed title (default: live headline numbers).
    start
        Start the background thread now. It stops by itself once the pool's
        controller stops (``pool.shutdown()``); call :meth:`stop` to join it (in a
        notebook, before the cell that checks results ends).

    The figure is :func:`adaptive_lab.viz.trace_figure` as a ``go.FigureWidget``; its
    target-size trace is named ``"workers"``. ``sliders`` maps parameter name ->
    widget; moving one calls ``policy.set_params`` on the live policy and records a
    ``phase`` event ``set_params`` in the trace.
    """

    def __init__(self, pool: AdaptiveThreadPoolExecutor, *, refresh: float = 0.25,
                 window: float | None = None,
                 start: bool = True, height: int = 700, width: int | None = 1000,
                 title: str | None = None) -> None:
        w, go = _require_widgets()
        ctl = getattr(pool, "controller", None)
        if ctl is None:
            raise ValueError("pool: has no controller; build it with policy=... or record=...")
        if not (isinstance(refresh, (int, float)) and math.isfinite(refresh) and refresh > 0):
            raise ValueError(f"refresh must be a positive number of seconds, got {refresh!r}")
        if window is not None and not (isinstance(window, (int, float)) and window > 0):
            raise ValueError(f"window must be None or a positive number of seconds, "
                             f"got {window!r}")
        self.window = None if window is None else float(window)
        self.pool = pool
        self.controller = ctl
        self.policy: Policy | None = ctl.policy
        self.refresh_period = float(refresh)
        self.updates = 0
        self.error: BaseException | None = None
        self.last_update_ms = math.nan
        self._title = title
        self._samples: list[dict[str, Any]] = []
        self._header: dict[str, Any] = {"policy": ctl.policy.describe() if ctl.policy
                                        else {"name": "manual"}}
        self._seen = -1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hold = False
        self.status = w.HTML()
        snap = self.snapshot()
        self.figure = go.FigureWidget(viz.trace_figure(
            snap, height=height, width=width, title=title or self._live_title(snap)))
        self._index = {d.name: i for i, d in enumerate(self.figure.data)}
        self._seen = len(snap.samples)
        self.sliders: dict[str, Any] = {}
        if self.policy is not None:
            values = self.policy.params()
            for p in self.policy.param_specs():
                s = make_slider(p, values[p.name], continuous_update=False)
                s.observe(self._on_slider, names="value")
                self.sliders[p.name] = s
        self.widget = w.VBox([w.VBox(list(self.sliders.values()),
                                     layout=w.Layout(flex_flow="row wrap")),
                              self.status, self.figure])
        if start:
            self.start()

    # -- data -----------------------------------------------------------------------
    def snapshot(self) -> Trace:
        """The pool's trace so far (from the recorder, or the samples polled so far)."""
        from adaptive_lab.trace.format import Trace

        rec = self.controller.recorder
        if rec is not None:
            return rec.trace()
        last = self.controller.last_sample
        with self._lock:
            if last is not None and (not self._samples or last["t"] > self._samples[-1]["t"]):
                self._samples.append(dict(last))
            return Trace(header=self._header, samples=list(self._samples))

    def _live_title(self, snap: Trace) -> str:
        name = self.policy.name if self.policy is not None else "manual"
        if not snap.samples:
            return f"live: policy {name}, waiting for samples"
        s = snap.samples[-1]
        return (f"live: policy {name} · t={s['t']:.1f} s · {s['workers']} workers · "
                f"{s['queued']} queued · {s.get('completed', 0)} done")

    def refresh(self) -> bool:
        """Push new samples into the figure; True if there were any."""
        from adaptive_lab.trace.format import Trace

        t0 = time.perf_counter()
        snap = self.snapshot()
        if len(snap.samples) == self._seen:
            return False
        seen = len(snap.samples)
        if self.window is not None and snap.samples:
            t_min = snap.samples[-1]["t"] - self.window
            snap = Trace(header=snap.header,
                         samples=[x for x in snap.samples if x["t"] >= t_min],
                         events=[e for e in snap.events if e["t"] >= t_min])
        data = viz.trace_data(snap)
        with self.figure.batch_update():
            for name, d in data.items():
                tr = self.figure.data[self._index[name]]
                for k, v in d.items():
                    setattr(tr, k, v)
            self.figure.layout.title.text = self._title or self._live_title(snap)
        self._seen = seen
        self.updates += 1
        self.last_update_ms = (time.perf_counter() - t0) * 1000.0
        return True

    # -- thread ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the background refresh thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="adaptive-lab-live-monitor",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.refresh_period):
                self.refresh()
                if not self.controller.running:
                    break
            self.refresh()
        except BaseException as exc:  # shown by stop(); never kill the kernel
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop and join the refresh thread, then draw the final state."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                raise RuntimeError(f"LiveMonitor thread did not stop within {timeout} s")
        self.refresh()
        if self.error is not None:
            err, self.error = self.error, None
            raise RuntimeError(f"LiveMonitor refresh failed: {err!r}") from err

    # -- tuning -----------------------------------------------------------------------
    def set_params(self, **params: Any) -> None:
        """Retune the live policy (validated, thread-safe) and move the sliders to match."""
        if self.policy is None:
            raise ValueError("pool: has no policy to tune")
        self.policy.set_params(**params)
        self.controller.phase("set_params", params=dict(params))
        values = self.policy.params()
        self._hold = True
        try:
            for k in params:
                s = self.sliders[k]
                _widen(s, values[k])
                s.value = values[k]
        finally:
            self._hold = False
        self.status.value = f"set {html.escape(str(params))}"

    def _on_slider(self, change: Any) -> None:
        if self._hold or self.policy is None:
            return
        name = change["owner"].description
        try:
            self.set_params(**{name: change["new"]})
        except ValueError as exc:
            self._hold = True
            try:
                change["owner"].value = change["old"]
            finally:
                self._hold = False
            self.status.value = (f"<span style='color:#b00'>{html.escape(str(exc))}"
                                 "</span>")

    # -- display ------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        """Show the monitor (in a notebook)."""
        from IPython.display import display

        display(self.widget)

    def __enter__(self) -> LiveMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["MODES", "LiveMonitor", "ReplayExplorer", "load_traces", "make_slider",
           "slider_range"]
