"""The live monitor: watch a running adaptive pool and retune its policy, in a notebook."""

from __future__ import annotations

import html
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from adaptive_lab.ui import figures as viz

if TYPE_CHECKING:  # pragma: no cover
    from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
    from adaptive_lab.policies.base import Policy
    from adaptive_lab.trace.format import Trace

from adaptive_lab.ui.widgets import (
    _require_widgets,
    _widen,
    make_slider,
)


class LiveMonitor:
    """Watch a running pool's trace grow, and retune its policy with sliders.

    Parameters
    ----------
    pool
        An :class:`~adaptive_lab.executors.adaptive.AdaptiveThreadPoolExecutor` with a controller
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

    The figure is :func:`adaptive_lab.ui.figures.trace_figure` as a ``go.FigureWidget``; its
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


__all__ = ["LiveMonitor"]
