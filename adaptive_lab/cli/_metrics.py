"""``--metrics-port``: serve Prometheus metrics while a command runs (extra ``metrics``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="serve Prometheus metrics at http://ADDR:PORT/metrics while "
                             "the command runs (0: any free port; needs the metrics extra)")
    parser.add_argument("--metrics-addr", default="127.0.0.1", metavar="ADDR",
                        help="address to serve the metrics on (default 127.0.0.1; "
                             "0.0.0.0 for every interface)")


def start_metrics(args: argparse.Namespace, *watched: Any) -> Any:
    """Start the endpoint if ``--metrics-port`` was given (else None) and watch the
    objects given (a scanner, a pool without a policy; a policy's pool is watched
    already). Its URL goes to stderr."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    try:
        from adaptive_lab.integrations.prometheus import serve
    except ImportError:
        raise ValueError("--metrics-port needs prometheus_client: "
                         "pip install 'adaptive-lab[metrics]'") from None
    try:
        server = serve(port, args.metrics_addr)
    except OSError as exc:
        raise ValueError(f"--metrics-port {port}: {exc}") from None
    watch_metrics(server, *watched)
    print(f"metrics: {server.url}", file=sys.stderr, flush=True)
    return server


def watch_metrics(server: Any, *watched: Any) -> None:
    """Export ``watched`` on a running endpoint (nothing when ``server`` is None);
    objects that cannot be watched (a process pool has no ``stats()``) are left out."""
    if server is None:
        return
    from adaptive_lab.integrations.prometheus import watch

    for obj in watched:
        try:
            watch(obj)
        except ValueError:
            pass


def stop_metrics(server: Any) -> None:
    if server is not None:
        server.close()
