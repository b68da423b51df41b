"""A local HTTP server with a capacity and a service time: the limiter's workload.

Built on aiohttp's server (``aiohttp.web``), on 127.0.0.1 only. Each request to
``/work`` waits for one of ``capacity`` places (an ``asyncio.Semaphore``), holds it for
``service_ms`` and answers 200. With ``shed_queue`` set, a request that finds every
place taken and ``shed_queue`` requests already waiting is answered 503 at once (load
shedding). The capacity can change while it runs (``POST /capacity?n=``): lowering
it lets the requests being served finish (a task takes the places as they free up),
as a server that loses half its backends would. ``GET /stats`` reports what it did.

:func:`start_server` runs it on the caller's event loop (tests);
:class:`ServerProcess` runs it in a process of its own (the benchmark, so that the
server's work does not share the client's event loop), which stops by itself after
``lifetime`` seconds or when its parent goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["RunningServer", "ServerConfig", "ServerProcess", "start_server"]


@dataclass(frozen=True)
class ServerConfig:
    """``capacity`` requests served at once, each for ``service_ms``; past
    ``shed_queue`` waiting requests (None: never) the rest get 503."""

    capacity: int
    service_ms: float
    shed_queue: int | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.capacity, int) and self.capacity >= 1):
            raise ValueError(f"capacity must be an int >= 1, got {self.capacity!r}")
        if not self.service_ms >= 0:
            raise ValueError(f"service_ms must be >= 0, got {self.service_ms!r}")
        if self.shed_queue is not None and self.shed_queue < 0:
            raise ValueError(f"shed_queue must be >= 0 or None, got {self.shed_queue!r}")


class _State:
    """The server's places and counters (one event loop: no locks)."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.sem = asyncio.Semaphore(cfg.capacity)
        self.capacity = cfg.capacity
        self.service = cfg.service_ms / 1000.0
        self.held = 0  # places taken away by a lowered capacity
        self.waiting = self.inside = self.max_inside = 0
        self.served = self.shed = 0
        self._takers: set[asyncio.Task[None]] = set()

    def set_capacity(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"capacity must be >= 1, got {n}")
        delta, self.capacity = n - self.capacity, n
        if delta > 0:
            give = min(self.held, delta)
            self.held -= give
            for _ in range(delta):
                self.sem.release()
        elif delta < 0:
            task = asyncio.get_running_loop().create_task(self._take(-delta))
            self._takers.add(task)
            task.add_done_callback(self._takers.discard)

    async def _take(self, k: int) -> None:
        for _ in range(k):
            await self.sem.acquire()  # behind the waiting requests: they finish first
            self.held += 1

    def stats(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "service_ms": self.cfg.service_ms,
                "shed_queue": self.cfg.shed_queue, "served": self.served,
                "shed": self.shed, "inside": self.inside, "waiting": self.waiting,
                "max_inside": self.max_inside}


_STATE: web.AppKey[_State] = web.AppKey("state", _State)


async def _work(request: web.Request) -> web.Response:
    st = request.app[_STATE]
    q = st.cfg.shed_queue
    if q is not None and st.waiting >= q and st.sem.locked():
        st.shed += 1
        return web.Response(status=503, text="overloaded")
    st.waiting += 1
    try:
        await st.sem.acquire()
    finally:
        st.waiting -= 1
    st.inside += 1
    st.max_inside = max(st.max_inside, st.inside)
    try:
        await asyncio.sleep(st.service)
    finally:
        st.inside -= 1
        st.sem.release()
    st.served += 1
    return web.Response(text="ok")


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[_STATE].stats())


async def _capacity(request: web.Request) -> web.Response:
    try:
        n = int(request.query["n"])
        request.app[_STATE].set_capacity(n)
    except (KeyError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(request.app[_STATE].stats())


def make_app(cfg: ServerConfig) -> web.Application:
    """The aiohttp application (``/work``, ``/stats``, ``POST /capacity?n=``)."""
    app = web.Application()
    app[_STATE] = _State(cfg)
    app.router.add_get("/work", _work)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/capacity", _capacity)
    return app


class RunningServer:
    """A server started by :func:`start_server`: its ``url`` and ``close()``."""

    def __init__(self, runner: web.AppRunner, app: web.Application, port: int) -> None:
        self._runner = runner
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @property
    def state(self) -> _State:
        return self.app[_STATE]

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_server(cfg: ServerConfig, port: int = 0, shutdown_timeout: float = 1.0
                       ) -> RunningServer:
    """Serve ``cfg`` on 127.0.0.1 (a free port by default) on the running loop;
    ``close()`` waits up to ``shutdown_timeout`` s for requests still being served."""
    app = make_app(cfg)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    return RunningServer(runner, app, int(runner.addresses[0][1]))


async def _serve(cfg: ServerConfig, lifetime: float, parent: int) -> None:
    srv = await start_server(cfg)
    print(srv.port, flush=True)  # the parent reads the port from here
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    deadline = loop.time() + lifetime
    while not stop.is_set() and loop.time() < deadline and os.getppid() == parent:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    await srv.close()


class ServerProcess:
    """The server in a process of its own (``python -m adaptive_lab.bench.aio_server``);
    a context manager. ``url`` is set once it listens. It exits on :meth:`stop`, after
    ``lifetime`` seconds, or when this process goes away."""

    def __init__(self, cfg: ServerConfig, lifetime: float = 900.0) -> None:
        self.cfg = cfg
        self.lifetime = float(lifetime)
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "adaptive_lab.bench.aio_server",
               "--capacity", str(self.cfg.capacity), "--service-ms", str(self.cfg.service_ms),
               "--lifetime", str(self.lifetime), "--parent", str(os.getpid())]
        if self.cfg.shed_queue is not None:
            cmd += ["--shed-queue", str(self.cfg.shed_queue)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the benchmark server did not start")
        self.url = f"http://127.0.0.1:{int(line)}"
        return self

    def stop(self) -> None:
        p, self._proc = self._proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()  # SIGTERM: the server closes cleanly
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - stuck
            p.kill()
            p.wait()
        if p.stdout is not None:
            p.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM, ``--lifetime`` seconds, or the ``--parent`` process ends."""
    p = argparse.ArgumentParser(prog="python -m adaptive_lab.bench.aio_server")
    p.add_argument("--capacity", type=int, required=True)
    p.add_argument("--service-ms", type=float, required=True)
    p.add_argument("--shed-queue", type=int, default=None)
    p.add_argument("--lifetime", type=float, default=900.0)
    p.add_argument("--parent", type=int, default=os.getppid())
    a = p.parse_args(argv)
    cfg = ServerConfig(a.capacity, a.service_ms, a.shed_queue)
    asyncio.run(_serve(cfg, a.lifetime, a.parent))


if __name__ == "__main__":
    main()
