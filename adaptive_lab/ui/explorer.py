"""The replay explorer: tune a policy on a recorded trace with sliders, in a notebook."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_lab.ui import figures as viz

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_lab.policies.base import Policy
    from adaptive_lab.trace.format import Trace

from adaptive_lab.ui.widgets import (
    MODES,
    _column,
    _require_widgets,
    _status,
    _throughput_and_cost,
    _widen,
    load_traces,
    make_slider,
)


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


__all__ = ["ReplayExplorer"]
