"""Fixtures for the end-to-end notebook tests: JupyterLab in a real Chromium.

One JupyterLab server per test session runs on a free 127.0.0.1 port with a random
token, on a temporary copy of ``notebooks/`` (and its sibling ``data/``, which the
notebooks read as ``../data``), with temporary settings, a fresh workspace directory,
news, update checks, the extension manager and autosave off, so nothing is written
into the repository. One Chromium (Debian's, through Playwright's ``executable_path``;
``playwright install`` is never needed) serves every test; each test gets its own
browser context and its own Lab workspace name, and its kernels are shut down after
it. Teardown kills every process this file started, by pid, even when a test fails.

Environment:

- ``CI=true``: a missing Chromium or Playwright fails the tests instead of skipping.
- ``ADAPTIVE_LAB_SCREENSHOTS``: folder for screenshots (default: a pytest tmp dir).
- ``ADAPTIVE_LAB_NOTEBOOKS_DIR``: test another notebooks folder (its ``../data`` is
  copied too); the default is the repository's ``notebooks/``.
- ``ADAPTIVE_LAB_CHROMIUM``: path of the Chromium binary (default ``/usr/bin/chromium``
  or ``chromium`` on PATH).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_TIMEOUT = 60.0

# Lab user settings: no news, no update check, no extension manager (it queries PyPI),
# no autosave (Lab must never write the notebooks, not even the temporary copies).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where skipping is not allowed."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip locally, fail under CI: a CI run must never silently skip the browser."""
    if in_ci():
        pytest.fail(f"{reason}: under CI=true the browser tests must run, so this fails")
    pytest.skip(f"{reason}: browser tests skipped")


def find_chromium() -> str | None:
    """Path of Debian's chromium, or None when it is not installed."""
    explicit = os.environ.get("ADAPTIVE_LAB_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the server may still race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_tree(pids: list[int], timeout: float = 5.0) -> None:
    """Terminate the given processes (by pid), then kill whatever is left."""
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)


def descendants(pid: int) -> list[int]:
    """Pids of every living descendant of ``pid``."""
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@dataclass
class LabServer:
    """A running JupyterLab server started by the fixture."""

    url: str
    token: str
    root: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    seen_pids: set[int] = field(default_factory=set)

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API; returns the decoded JSON body (or None)."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str, workspace: str) -> str:
        """URL opening ``notebook`` in its own (fresh) Lab workspace."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"

    def require(self, notebook: str) -> None:
        """Skip (fail under CI) when ``notebook`` is not in the notebooks folder."""
        if not (self.root / notebook).is_file():
            skip_or_fail(f"notebooks/{notebook} does not exist")

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no server log>"

    def remember_children(self) -> None:
        """Note the server's current descendants (kernels live in their own sessions)."""
        self.seen_pids.update(descendants(self.proc.pid))

    def shutdown_kernels(self) -> None:
        """Shut down every session and kernel, so one test's kernel can't load the next."""
        self.remember_children()
        try:
            for session in self.api("GET", "/api/sessions") or []:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            for kernel in self.api("GET", "/api/kernels") or []:
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
        except (urllib.error.URLError, OSError):
            pass  # the server is gone; teardown kills what is left by pid


def _copy_notebooks(tmp: Path) -> Path:
    """Copy notebooks/ (and its sibling data/) into ``tmp``; return the notebooks copy."""
    source = Path(os.environ.get("ADAPTIVE_LAB_NOTEBOOKS_DIR") or REPO / "notebooks")
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc")
    root = tmp / "notebooks"
    shutil.copytree(source, root, ignore=ignore)
    data = source.resolve().parent / "data"
    if data.is_dir():
        shutil.copytree(data, tmp / "data", ignore=ignore)
    return root


def _write_lab_settings(settings_dir: Path) -> None:
    for rel, values in LAB_SETTINGS.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


def _wait_ready(proc: subprocess.Popen[bytes], url: str, token: str, log: Path) -> bool:
    """Poll /api/status until the server answers; False if the process died."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    request = urllib.request.Request(
        f"{url}/api/status", headers={"Authorization": f"token {token}"}
    )
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(
        f"JupyterLab did not answer within {SERVER_START_TIMEOUT:.0f} s; log tail:\n"
        + log.read_text(errors="replace")[-4000:]
    )


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium; skip (fail under CI) when it or Playwright is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("Playwright for Python is not installed (pip install -e '.[dev]')")
    path = find_chromium()
    if path is None:
        where = os.environ.get("ADAPTIVE_LAB_CHROMIUM") or "/usr/bin/chromium or on PATH"
        skip_or_fail(f"Chromium not found at {where} (apt-get install -y chromium)")
    return str(path)


# Module scope, not session: Playwright's sync API keeps an asyncio loop marked as
# running in the main thread until it stops, which breaks later asyncio.run() callers.
@pytest.fixture(scope="module")
def lab_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LabServer]:
    """A JupyterLab server on a temporary copy of the notebooks, killed at the end.

    Chromium is launched while the server boots (the two take seconds each).
    """
    tmp = tmp_path_factory.mktemp("lab")
    root = _copy_notebooks(tmp)
    settings_dir = tmp / "lab-settings"
    _write_lab_settings(settings_dir)
    token = secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-workspaces"),  # fresh for every run
        JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        ADAPTIVE_LAB_CI="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    env.pop("JUPYTER_TOKEN", None)
    log_path = tmp / "jupyterlab.log"
    server: LabServer | None = None
    for _attempt in range(3):  # another process may grab the free port first
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable, "-m", "jupyterlab",
            "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",
            # A test's kernel may hold non-daemon threads (a pool); don't wait 5 s for it.
            "--KernelManager.shutdown_wait_time=1.0",
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            if _attempt == 0:
                request.getfixturevalue("chromium_browser")
            ready = _wait_ready(proc, url, token, log_path)
        except BaseException:
            kill_tree([*descendants(proc.pid), proc.pid])
            raise
        if ready:
            server = LabServer(url=url, token=token, root=root, log_path=log_path, proc=proc)
            break
        kill_tree([*descendants(proc.pid), proc.pid])
    if server is None:
        pytest.fail(f"JupyterLab failed to start; log tail:\n{log_path.read_text()[-4000:]}")
    try:
        yield server
    finally:
        server.shutdown_kernels()
        server.remember_children()
        # SIGTERM lets the server stop its kernels; then kill by pid whatever remains.
        try:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        kill_tree([*server.seen_pids, server.proc.pid])


@pytest.fixture(scope="module")
def chromium_browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the session; its processes are killed at teardown."""
    import psutil
    from playwright.sync_api import sync_playwright

    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    manager = sync_playwright().start()
    started: set[int] = set()
    try:
        instance = manager.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        started = {c.pid for c in me.children(recursive=True)} - before
        yield instance
    finally:
        started |= {c.pid for c in me.children(recursive=True)} - before
        try:
            manager.stop()  # closes the browser and the driver
        finally:
            kill_tree(sorted(started), timeout=3)


@pytest.fixture
def lab_page(chromium_browser: Any, lab_server: LabServer) -> Iterator[Any]:
    """A fresh browser context and page at 1400x1000; kernels are shut down after."""
    context = chromium_browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda err: page.console_errors.append(f"pageerror: {err}"))
    page.on(
        "console",
        lambda msg: (
            page.console_errors.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error"
            else None
        ),
    )
    try:
        yield page
    finally:
        try:
            context.close()
        finally:
            lab_server.shutdown_kernels()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $ADAPTIVE_LAB_SCREENSHOTS or a pytest temporary folder."""
    configured = os.environ.get("ADAPTIVE_LAB_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
