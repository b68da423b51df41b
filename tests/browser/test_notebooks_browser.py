"""The notebooks as a user sees them: JupyterLab in a real Chromium, driven by Playwright.

nbval proves the notebooks' code runs; these tests prove the widgets work on a page:
the replay explorer's slider re-simulates and redraws its plotly FigureWidget, and the
quickstart's live monitor grows while its scan runs. Every wait is on a real condition
(kernel state read from ``window.jupyterapp``, kernel messages, figure data in the DOM);
none is a fixed sleep. Fixtures (server, browser, teardown) live in ``conftest.py``.

``lab_server`` is conftest's ``LabServer``; ``lab_page`` a Playwright ``Page``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPLAY_NOTEBOOK = "02_replay_explorer.ipynb"
QUICKSTART_NOTEBOOK = "01_quickstart.ipynb"
# Generous: a failure shows within these, but a loaded 2-core machine (other test suites
# running) must not make a healthy notebook fail. Typical times are printed with -s.
RUN_TIMEOUT_MS = 120_000
REPLAYED = "replayed target"  # adaptive_lab.ui.figures.trace_figure's name for the replay's size
RECORDED = "workers"  # ... and for the recorded target size, which a slider must not move

# The notebook panel that is in front, with its connected kernel.
_PANEL_JS = "window.jupyterapp && window.jupyterapp.shell.currentWidget"

KERNEL_READY_JS = f"""(path) => {{
    const w = {_PANEL_JS};
    if (!w || !w.context || w.context.path !== path || !w.context.isReady) return false;
    const s = w.sessionContext && w.sessionContext.session;
    const k = s && s.kernel;
    return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}}"""

# Follow the kernel's messages. Each execute_request gets one `busy` and one `idle`
# status on iopub; so does each comm_msg the page sends (a widget change), and the
# kernel's replies to it (figure updates) arrive on iopub before that `idle`. The
# kernel's current status is no signal: widget traffic flips it while cells run.
TRACK_KERNEL_JS = f"""() => {{
    const k = ({_PANEL_JS}).sessionContext.session.kernel;
    const track = {{started: 0, executed: 0, errors: [], status: k.status, commSent: 0,
                   commDone: 0, pending: {{}}, sent: {{}}, received: {{}}}};
    k.anyMessage.connect((_, args) => {{
        const msg = args.msg, type = msg.header.msg_type;
        const box = args.direction === 'send' ? track.sent : track.received;
        box[type] = (box[type] || 0) + 1;
        if (args.direction === 'send' && type === 'comm_msg') {{
            const data = msg.content.data || {{}};
            track.pending[msg.header.msg_id] = (data.method || '?') + ':'
                + Object.keys(data.state || {{}}).join(',');
            track.commSent += 1;
        }}
    }});
    k.iopubMessage.connect((_, msg) => {{
        const type = msg.header.msg_type;
        const parent = msg.parent_header && msg.parent_header.msg_type;
        if (type === 'error') track.errors.push(msg.content.ename + ': ' + msg.content.evalue);
        if (type === 'status') {{
            const state = msg.content.execution_state;
            track.status = state;
            if (parent === 'execute_request' && state === 'busy') track.started += 1;
            if (parent === 'execute_request' && state === 'idle') track.executed += 1;
            if (state === 'idle' && msg.parent_header.msg_id in track.pending) {{
                delete track.pending[msg.parent_header.msg_id];
                track.commDone += 1;
            }}
        }}
    }});
    window.__labTrack = track;
}}"""

# Lab skips empty code cells, so only non-empty ones send an execute_request.
CODE_CELLS_JS = f"""() => ({_PANEL_JS}).content.widgets.filter(
    c => c.model.type === 'code' && c.model.sharedModel.getSource().trim() !== '').length"""

RUN_DONE_JS = """(n) => window.__labTrack.errors.length > 0 || window.__labTrack.executed >= n"""

# Figure data as the page holds it: trace name, number of x points and the y values.
# plotly may keep typed-array specs in gd.data; the decoded arrays are in _fullData.
TRACES_JS = f"""(index) => {{
    const plots = ({_PANEL_JS}).node.querySelectorAll('.js-plotly-plot');
    const gd = plots[index || 0];
    if (!gd || !gd.data || !gd._fullData) return null;
    const arr = (v, full) => {{
        const src = (Array.isArray(v) || ArrayBuffer.isView(v)) ? v
            : (Array.isArray(full) || ArrayBuffer.isView(full)) ? full : null;
        return src === null ? null : Array.from(src, e => (e == null ? null : Number(e)));
    }};
    return gd.data.map((t, i) => {{
        const f = gd._fullData.find(ft => ft.index === i) || {{}};
        const x = arr(t.x, f.x);
        return {{name: t.name ?? null, nx: x === null ? 0 : x.length, y: arr(t.y, f.y)}};
    }});
}}"""

FIGURE_RENDERED_JS = f"""() => {{
    const traces = ({TRACES_JS})(0);
    return !!traces && traces.length > 0 && traces.some(t => t.y && t.y.length > 0)
        && !!({_PANEL_JS}).node.querySelector('.js-plotly-plot .main-svg');
}}"""

FIGURE_CHANGED_JS = f"""(before) => {{
    const now = ({TRACES_JS})(0);
    return !!now && JSON.stringify(now) !== before;
}}"""

# Every widget change the page sent has been handled by the kernel (its replies are in),
# on two polls in a row with nothing sent in between (ipywidgets may hold back a change
# until the kernel acknowledged the previous one).
WIDGETS_SETTLED_JS = """() => {
    const t = window.__labTrack;
    const settled = t.commDone >= t.commSent;
    const again = settled && window.__settledAt === t.commSent;
    window.__settledAt = settled ? t.commSent : -1;
    return again;
}"""

# Record each distinct state of the trace named `name` as the page draws it: on every
# plotly redraw of its figure (plotly_afterplot) and, as a backstop, every 100 ms.
SAMPLE_WORKERS_JS = f"""(name) => {{
    window.__workers = [];
    const hooked = new WeakSet();
    const record = () => {{
        for (const gd of ({_PANEL_JS}).node.querySelectorAll('.js-plotly-plot')) {{
            const i = (gd.data || []).findIndex(t => t.name === name);
            if (i < 0 || !gd._fullData) continue;
            if (!hooked.has(gd) && gd.on) {{ hooked.add(gd); gd.on('plotly_afterplot', record); }}
            const f = gd._fullData.find(ft => ft.index === i) || {{}};
            const raw = gd.data[i].y;
            const src = (Array.isArray(raw) || ArrayBuffer.isView(raw)) ? raw : f.y;
            const y = Array.from(src || [], v => (v == null ? NaN : Number(v)))
                .filter(v => Number.isFinite(v));
            if (y.length === 0) return;
            const t = window.__labTrack;
            const snap = {{n: y.length, first: y[0], max: Math.max(...y), last: y[y.length - 1],
                          running: t.started > t.executed, ms: Math.round(performance.now())}};
            const prev = window.__workers[window.__workers.length - 1];
            if (!prev || prev.n !== snap.n || prev.max !== snap.max || prev.last !== snap.last)
                window.__workers.push(snap);
            return;
        }}
    }};
    window.__workersTimer = setInterval(record, 100);
}}"""

WORKERS_GREW_JS = """() => {
    const s = window.__workers;
    if (window.__labTrack.errors.length > 0) return true;
    if (s.length < 2) return false;
    const a = s[0], b = s[s.length - 1];
    return b.n > a.n && b.max > b.first;
}"""


class Phases:
    """Wall time of each step of a test, printed at the end (``pytest -s`` shows it)."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.steps: list[str] = []

    def __call__(self, label: str) -> None:
        now = time.monotonic()
        self.steps.append(f"{label} {now - self.last:.1f}s")
        self.last = now

    def __str__(self) -> str:
        return f"{', '.join(self.steps)}; total {self.last - self.start:.1f}s"


def frame(page: Any) -> None:
    """Wait for two animation frames, so the page has drawn what it received."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def settle_for_screenshot(page: Any, element: Any) -> None:
    """Scroll ``element``'s output area to the top, move focus and mouse away, paint."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.move(5, 995)
    element.evaluate(
        """el => {
            const target = el.closest('.jp-Cell-outputWrapper') || el;
            target.scrollIntoView({block: 'start'});
        }"""
    )
    frame(page)


# What the page holds, for failure messages: kernel tracking, figures and their traces.
DIAGNOSE_JS = f"""() => {{
    const w = {_PANEL_JS};
    if (!w || !w.node) return 'no current widget';
    const plots = Array.from(w.node.querySelectorAll('.js-plotly-plot'), gd =>
        (gd.data || []).map(t => {{
            const y = t.y;
            const kind = y == null ? 'none' : Array.isArray(y) ? 'array' + y.length
                : ArrayBuffer.isView(y) ? 'typed' + y.length : typeof y + Object.keys(y);
            return (t.name ?? '?') + ':' + kind;
        }}).join(', '));
    return JSON.stringify({{track: window.__labTrack, plots, workers: window.__workers}});
}}"""


def fail_with_context(page: Any, server: Any, message: str) -> None:
    """Fail with the page's state, browser errors and the server log's end."""
    try:
        state = page.evaluate(DIAGNOSE_JS)
    except Exception as exc:
        state = f"<page not readable: {exc}>"
    errors = "\n".join(getattr(page, "console_errors", [])[-20:]) or "<none>"
    pytest.fail(
        f"{message}\n--- page ---\n{state}\n--- browser errors ---\n{errors}"
        f"\n--- server log ---\n{server.log_tail()}"
    )


def wait_until(
    page: Any, server: Any, js: str, what: str, arg: Any = None, timeout: float = RUN_TIMEOUT_MS
) -> None:
    """Wait for the page condition ``js`` (polled every 100 ms); fail saying ``what``."""
    try:
        page.wait_for_function(js, arg=arg, timeout=timeout, polling=100)
    except Exception as exc:  # playwright's TimeoutError, or the page went away
        fail_with_context(page, server, f"timed out waiting for {what}: {exc}")


def open_notebook(page: Any, server: Any, name: str, phase: Phases | None = None) -> None:
    """Open ``name`` in a fresh workspace and wait for its connected, idle kernel."""
    server.require(name)
    page.goto(server.lab_url(name, f"t-{uuid.uuid4().hex[:12]}"))
    wait_until(page, server, "() => !!window.jupyterapp", "JupyterLab to load")
    if phase is not None:
        phase("lab")
    wait_until(page, server, KERNEL_READY_JS, f"a connected idle kernel for {name}", name)
    # A clean view for the user (and the screenshot): the file browser closed.
    page.evaluate(
        """async () => {
            const app = window.jupyterapp;
            const toggle = 'application:toggle-left-area';
            if (!app.shell.leftCollapsed) await app.commands.execute(toggle);
        }"""
    )
    page.evaluate(TRACK_KERNEL_JS)


def start_run_all(page: Any) -> int:
    """Run All Cells through the menu, as a user does; returns the cells it will run."""
    cells = int(page.evaluate(CODE_CELLS_JS))
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    return cells


def wait_run_done(page: Any, server: Any, cells: int, name: str) -> None:
    """Wait until every code cell has run; fail on the first Python error."""
    wait_until(page, server, RUN_DONE_JS, f"Run All of {name}'s {cells} code cells", cells)
    errors = page.evaluate("() => window.__labTrack.errors")
    if errors:
        fail_with_context(page, server, f"{name} raised in the browser run: {errors}")


def changed_traces(before: list[dict], after: list[dict]) -> list[str]:
    """Names of the traces whose y values differ between two snapshots."""
    assert [t["name"] for t in before] == [t["name"] for t in after], "traces were replaced"
    return [str(b["name"]) for b, a in zip(before, after, strict=True) if b["y"] != a["y"]]


def test_replay_explorer_slider_redraws_figure(
    lab_page: Any, lab_server: Any, screenshot_dir: Path
) -> None:
    """Run the replay explorer; moving its first slider re-simulates the figure."""
    page, phase = lab_page, Phases()
    open_notebook(page, lab_server, REPLAY_NOTEBOOK, phase)
    phase("kernel")
    wait_run_done(page, lab_server, start_run_all(page), REPLAY_NOTEBOOK)
    phase("run all")

    slider = page.locator(".jp-NotebookPanel:visible .widget-slider").first
    slider.wait_for(state="attached")
    slider.scroll_into_view_if_needed()
    wait_until(page, lab_server, FIGURE_RENDERED_JS, "the explorer's figure to render")
    phase("figure")
    before = page.evaluate(TRACES_JS, 0)
    before_json = page.evaluate(f"() => JSON.stringify(({TRACES_JS})(0))")
    readout = slider.locator(".widget-readout")
    value_before = readout.inner_text()

    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    wait_until(page, lab_server, FIGURE_CHANGED_JS, f"the figure's data to change after the "
               f"slider moved {value_before} -> {readout.inner_text()}", before_json)  # fmt: skip
    # Let every queued slider update reach the kernel and come back before comparing.
    wait_until(page, lab_server, WIDGETS_SETTLED_JS, "the kernel to handle the widget changes")
    frame(page)
    after = page.evaluate(TRACES_JS, 0)
    value_after = readout.inner_text()
    phase("slider")

    assert value_after != value_before, "the slider's readout did not move"
    changed = changed_traces(before, after)
    names = [t["name"] for t in after]
    assert REPLAYED in names, f"no {REPLAYED!r} trace in the first figure: {names}"
    assert REPLAYED in changed, f"the slider changed {changed}, not {REPLAYED!r}"
    assert RECORDED not in changed, f"the recorded {RECORDED!r} trace changed: {changed}"
    replayed = next(t for t in after if t["name"] == REPLAYED)
    assert replayed["y"], f"{REPLAYED!r} is empty after the slider moved"

    settle_for_screenshot(page, slider)
    page.screenshot(path=str(screenshot_dir / "replay_explorer.png"))
    phase("screenshot")
    print(f"\nreplay explorer: slider {value_before} -> {value_after}; changed {changed}; "
          f"{phase}; screenshot {screenshot_dir / 'replay_explorer.png'}")  # fmt: skip


def test_quickstart_live_monitor_grows(
    lab_page: Any, lab_server: Any, screenshot_dir: Path
) -> None:
    """Run the quickstart; its "workers" trace grows in the page while the scan runs."""
    page, phase = lab_page, Phases()
    open_notebook(page, lab_server, QUICKSTART_NOTEBOOK, phase)
    phase("kernel")
    cells = start_run_all(page)
    page.evaluate(SAMPLE_WORKERS_JS, RECORDED)
    wait_until(page, lab_server, WORKERS_GREW_JS, f"the {RECORDED!r} trace to grow")
    phase("growth")
    settle_for_screenshot(page, page.locator(".jp-NotebookPanel:visible .js-plotly-plot").first)
    page.screenshot(path=str(screenshot_dir / "quickstart_live_monitor.png"))
    phase("screenshot")
    wait_run_done(page, lab_server, cells, QUICKSTART_NOTEBOOK)
    phase("run done")
    samples = page.evaluate("() => (clearInterval(window.__workersTimer), window.__workers)")

    first, last = samples[0], samples[-1]
    assert last["n"] > first["n"], f"no new points arrived while watching: {samples}"
    assert last["max"] > last["first"], f"the worker count never rose: {samples}"
    assert any(s["running"] and s["n"] < last["n"] for s in samples), (
        f"the page never showed a partial trace while the scan ran: {samples}"
    )
    print(f"\nquickstart: {len(samples)} distinct workers states, points {first['n']} -> "
          f"{last['n']}, workers {last['first']} -> max {last['max']}; {phase}")  # fmt: skip
