"""``adaptive-lab replay``: what would another policy have done on a recorded trace?"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from adaptive_lab.cli._common import add_policy_arguments, policy_from_args

NAME = "replay"
HELP = ("replay a recorded trace under a policy: open loop (the recorded observations) "
        "or closed loop (a fitted workload model)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", metavar="TRACE", help="a recorded trace (.jsonl)")
    add_policy_arguments(parser)
    parser.add_argument("--mode", choices=("open", "closed"), default="open",
                        help="open: feed the recorded observations (exact, ignores "
                        "feedback); closed: simulate on a model fitted from the trace")
    parser.add_argument("--interval", type=float, default=None,
                        help="decision interval, s (default: the trace's)")
    parser.add_argument("--min-workers", type=int, default=None)
    parser.add_argument("--max-workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (closed mode)")
    parser.add_argument("--output", metavar="TRACE.jsonl", default=None,
                        help="save the replayed/simulated trace")
    parser.add_argument("--html", metavar="REPORT.html", default=None,
                        help="save an interactive plotly report (needs plotly)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _load(path: str) -> Any:
    from adaptive_lab.trace.format import Trace

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"TRACE: no such file: {path}")
    return Trace.load(p)  # TraceFormatError (a ValueError) names the bad line


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def summarise(recorded: Any, result: Any, mode: str) -> dict[str, Any]:
    """Recorded vs replayed headline numbers."""
    import numpy as np

    out: dict[str, Any] = {"mode": mode, "recorded": recorded.summary()}
    if mode == "open":
        t = np.array([s["t"] for s in result.samples], dtype=float)
        tg = np.array([s["target"] for s in result.samples], dtype=float)
        ws = float(np.sum((tg[1:] + tg[:-1]) * np.diff(t)) / 2) if len(t) > 1 else 0.0
        out["replayed"] = {
            "policy": result.policy_name, "scale_events": len(result.scale_events()),
            "errors": sum(1 for e in result.events if e.get("type") == "error"),
            "mean_target": float(tg.mean()) if len(tg) else math.nan,
            "max_target": int(tg.max()) if len(tg) else 0, "worker_seconds": ws}
    else:
        s = result.summary()
        s["makespan_s"] = result.header.get("makespan_s")
        out["simulated"] = s
    return _clean(out)


def run(args: argparse.Namespace) -> int:
    from adaptive_lab.sim.closed_loop import simulate
    from adaptive_lab.sim.open_loop import replay

    trace = _load(args.trace)
    policy = policy_from_args(args)
    if args.mode == "open":
        result = replay(trace, policy, interval=args.interval, min_workers=args.min_workers,
                        max_workers=args.max_workers)
    else:
        from adaptive_lab.sim.model import WorkloadModel

        model = WorkloadModel.fit(trace)
        result = simulate(model, policy, interval=args.interval,
                          min_workers=args.min_workers, max_workers=args.max_workers,
                          seed=args.seed)
    if args.output:
        result.save(args.output)
    if args.html:
        try:
            from adaptive_lab.ui import figures as viz
        except ImportError as exc:
            raise ValueError(f"--html needs plotly ({exc}); "
                             "pip install 'adaptive-lab[notebooks]'") from None
        if args.mode == "open":
            fig = viz.trace_figure(trace, replayed=result)
        else:
            fig = viz.compare_figure({"recorded": trace, "simulated": result})
        viz.save_html(fig, args.html)
    summary = summarise(trace, result, args.mode)
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
        return 0
    rec = summary["recorded"]
    print(f"recorded: {rec['policy']}, {rec['samples']} samples, {rec['duration_s']:.1f} s, "
          f"{rec['tasks']} tasks, mean workers {rec['mean_workers']:.1f}, "
          f"{rec['scale_events']} scale events")
    if args.mode == "open":
        r = summary["replayed"]
        print(f"replayed (open loop, feedback ignored): {r['policy']}, mean target "
              f"{r['mean_target']:.1f}, max {r['max_target']}, {r['scale_events']} scale "
              f"events, {r['worker_seconds']:.0f} worker-seconds")
    else:
        s = summary["simulated"]
        mk = s["makespan_s"]
        print(f"simulated (closed loop): {s['policy']}, makespan "
              f"{'unfinished' if mk is None else f'{mk:.2f} s'}, {s['tasks']} tasks, "
              f"throughput {s['throughput']:.0f}/s, mean workers {s['mean_workers']:.1f}, "
              f"{s['scale_events']} scale events")
    for what, path in (("trace", args.output), ("report", args.html)):
        if path:
            print(f"wrote {what} {path}")
    return 0
