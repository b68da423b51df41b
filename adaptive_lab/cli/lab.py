"""``adaptive-lab lab``: open JupyterLab on notebooks/, refresh their checked outputs,
or benchmark the replay explorer's slider.

* ``adaptive-lab lab`` starts JupyterLab on the repository's ``notebooks/`` (the
  ``make lab`` of this project);
* ``adaptive-lab lab --execute`` runs every notebook in CI mode (``ADAPTIVE_LAB_CI=1``)
  and stores only the outputs of ``# NBVAL_CHECK_OUTPUT`` cells (no widget state), so
  ``pytest --nbval-lax`` has fresh reference numbers;
* ``adaptive-lab lab --bench-slider`` measures the kernel time of a
  :class:`~adaptive_lab.ReplayExplorer` slider move on a synthetic 1-hour
  trace (3,600 samples) and prints / saves JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NAME = "lab"
HELP = "open JupyterLab on notebooks/ (or --execute them, or --bench-slider)"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notebooks", type=Path, default=None,
                        help="notebook directory (default: the repository's notebooks/)")
    parser.add_argument("--port", type=int, default=None, help="JupyterLab port")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--execute", action="store_true",
                        help="run the notebooks in CI mode and store only the outputs of "
                        f"'{CHECK_MARK}' cells")
    parser.add_argument("--bench-slider", action="store_true",
                        help="benchmark a ReplayExplorer slider move on a 1-hour trace")
    parser.add_argument("--mode", choices=("open", "closed", "both"), default="open",
                        help="replay mode for --bench-slider (closed fits a model first)")
    parser.add_argument("--moves", type=int, default=20, help="slider moves for --bench-slider")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")


def notebooks_dir(given: Path | None = None) -> Path:
    """The notebooks directory: ``given``, ``./notebooks`` or the repository's."""
    candidates = [given] if given is not None else [
        Path.cwd() / "notebooks", Path(__file__).resolve().parents[2] / "notebooks"]
    for c in candidates:
        if c is not None and c.is_dir() and any(c.glob("*.ipynb")):
            return c
    raise ValueError(f"--notebooks: no directory with notebooks among "
                     f"{', '.join(str(c) for c in candidates)}")


def run(args: argparse.Namespace) -> int:
    if args.bench_slider:
        return bench_slider(args)
    nbdir = notebooks_dir(args.notebooks)
    if args.execute:
        for nb in sorted(nbdir.glob("[0-9]*.ipynb")):
            t0 = time.perf_counter()
            kept = execute_and_strip(nb)
            print(f"{nb.name}: {time.perf_counter() - t0:.1f} s, kept outputs of {kept} "
                  f"checked cell(s), {nb.stat().st_size / 1024:.0f} KiB")
        return 0
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={nbdir}"]
    if args.port:
        cmd.append(f"--port={args.port}")
    if args.no_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers: Jupyter refuses root
        cmd.append("--allow-root")
    print("running:", " ".join(cmd))
    return subprocess.call(cmd)


# -- refreshing the stored outputs --------------------------------------------------
def strip_notebook(nb: Any) -> int:
    """Keep outputs only in checked cells; drop widget state and timing metadata."""
    kept = 0
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if cell.source.lstrip().startswith(CHECK_MARK) and cell.get("outputs"):
            kept += 1
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "display_data"]
        else:
            cell.outputs = []
            cell.execution_count = None
    return kept


def execute_and_strip(path: Path, timeout: int = 600) -> int:
    """Run ``path`` in CI mode in its directory and store it with checked outputs only."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = nbformat.read(path, as_version=4)
    old = os.environ.get("ADAPTIVE_LAB_CI")
    os.environ["ADAPTIVE_LAB_CI"] = "1"
    try:
        ExecutePreprocessor(timeout=timeout, kernel_name="python3",
                            store_widget_state=False).preprocess(
            nb, {"metadata": {"path": str(path.parent)}})
    finally:
        if old is None:
            os.environ.pop("ADAPTIVE_LAB_CI", None)
        else:
            os.environ["ADAPTIVE_LAB_CI"] = old
    kept = strip_notebook(nb)
    nbformat.write(nb, path)
    return kept


# -- the slider benchmark -----------------------------------------------------------
def hour_trace(n: int = 3600, seed: int = 1) -> Any:
    """A synthetic 1-hour trace (``n`` samples at 1 s, decisions every 5 s).

    Arrivals follow a slow sine with latency alternating 5 / 20 ms every 10 minutes;
    the recorded sizes come from the threshold policy's rules, so a replay has work to do.
    """
    from adaptive_lab.trace.format import Trace, make_header

    rng = random.Random(seed)
    samples: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    workers, completed, submitted, queued = 4, 0, 0, 0
    for i in range(n):
        lat = 0.005 if (i // 600) % 2 == 0 else 0.020
        arrivals = int(400 + 300 * math.sin(i / 300))
        done = min(queued + arrivals, int(workers / lat * 0.9))
        queued += arrivals - done
        submitted += arrivals
        completed += done
        if i and i % 5 == 0:
            new = min(24, workers + (4 if queued > 20 else 2 if queued > 5 else 0))
            if new != workers:
                events.append({"t": float(i), "type": "scale", "from": workers, "to": new,
                               "reason": f"+{new - workers}: queue {queued}"})
                workers = new
        samples.append({
            "t": float(i), "workers": workers, "alive": workers,
            "busy": min(workers, queued + 1), "queued": queued, "submitted": submitted,
            "completed": completed, "failed": 0, "cpu_percent": 20 + 10 * rng.random(),
            "memory_percent": 40.0, "process_cpu_percent": 15.0, "throughput": float(done),
            "latency_mean": lat, "latency_p50": lat, "latency_p95": 1.2 * lat})
    header = make_header(policy={"name": "threshold", "params": {}}, interval=5.0,
                         sample_period=1.0, bounds={"min_workers": 4, "max_workers": 24},
                         workload={"name": "synthetic 1-hour"})
    return Trace(header=header, samples=samples, events=events)


def bench_slider(args: argparse.Namespace) -> int:
    """Move the first slider ``--moves`` times; report kernel ms per update."""
    from adaptive_lab.ui.explorer import ReplayExplorer

    if args.moves < 1:
        raise ValueError(f"--moves must be >= 1, got {args.moves}")
    trace = hour_trace()
    modes = ("open", "closed") if args.mode == "both" else (args.mode,)
    results: dict[str, Any] = {"trace_samples": len(trace.samples),
                               "trace_duration_s": trace.duration, "moves": args.moves,
                               "modes": {}}
    for mode in modes:
        t0 = time.perf_counter()
        ex = ReplayExplorer({"hour": trace}, policy="threshold", mode=mode, first=("up_step",))
        build = time.perf_counter() - t0
        slider = ex.sliders["up_step"]
        times = []
        for k in range(args.moves):
            slider.value = 5 if k % 2 == 0 else 4  # the observer re-runs and redraws
            times.append(ex.last_update_ms)
        times.sort()
        res = {"build_s": round(build, 3), "median_ms": round(statistics.median(times), 2),
               "p90_ms": round(times[int(0.9 * (len(times) - 1))], 2),
               "max_ms": round(times[-1], 2), "target_ms": 100.0}
        res["meets_target"] = res["median_ms"] <= 100.0
        results["modes"][mode] = res
        print(f"{mode:6s} slider update on a {len(trace.samples)}-sample trace: median "
              f"{res['median_ms']:.1f} ms, p90 {res['p90_ms']:.1f} ms, max {res['max_ms']:.1f}"
              f" ms (build {res['build_s']:.1f} s) -> "
              f"{'meets' if res['meets_target'] else 'misses'} the 100 ms target")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print("wrote", args.json)
    return 0
