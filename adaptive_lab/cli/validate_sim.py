"""``adaptive-lab validate-sim``: measure the simulator's error against live runs.

Records live runs of two policies on the same workload (the real scanner over a warm
corpus, :func:`adaptive_lab.scanner.record.record_scan`), fits a
:class:`~adaptive_lab.WorkloadModel` on each run, simulates the *other* policy
on it and reports the relative error of throughput, makespan and mean worker count.

The ``local`` profile records pinned to one CPU by default (``--cpus``): unpinned, a
warm scan's GIL-bound threads hand the GIL between two cores, and its cost per file
then depends on what else runs on the machine, so identical live runs differ by
16-27 % (docs/replay.md, Fidelity).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NAME = "validate-sim"
HELP = "record live runs of two policies, fit on one, predict the other; report the error"

METRICS = ("throughput", "makespan_s", "mean_workers")

#: per profile: scanner phases (profile, passes), corpus files and size mix
DEFAULTS: dict[str, dict[str, Any]] = {
    "latency": {"files": 2000, "size_mix": "B", "passes": 12},
    "local": {"files": 4000, "size_mix": "A", "passes": 30, "cpus": 1},
    "mixed": {"files": 2000, "size_mix": "B", "passes": 4},
    "cpu": {"files": 2000, "size_mix": "B", "passes": 4},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="latency", choices=sorted(DEFAULTS),
                        help="workload profile (a scanner profile; default latency)")
    parser.add_argument("--files", type=int, default=None,
                        help="corpus files (default per profile: latency 2000, local 4000)")
    parser.add_argument("--passes", type=int, default=None,
                        help="scans of the corpus per run (default per profile)")
    parser.add_argument("--policy-a", default="threshold",
                        help="first policy, NAME or NAME:key=value,key=value "
                        "(default threshold)")
    parser.add_argument("--policy-b", default="fixed:n=12",
                        help="second policy (default fixed:n=12)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="live runs per policy, interleaved A B A B ... (default 1); "
                        "every (A_i, B_i) pair is cross-predicted")
    parser.add_argument("--min-workers", type=int, default=2)
    parser.add_argument("--max-workers", type=int, default=24)
    parser.add_argument("--interval", type=float, default=0.5,
                        help="controller decision interval, s (default 0.5)")
    parser.add_argument("--sample-period", type=float, default=0.1,
                        help="controller sample period, s (default 0.1)")
    parser.add_argument("--batch-seconds", type=float, default=None,
                        help="scanner batch target, s (default the scanner's 0.0015; 1e-9 = "
                        "one file per task, so every run counts the same tasks); "
                        "implies --batch-files 0")
    parser.add_argument("--batch-files", type=int, default=None,
                        help="tasks of exactly this many files instead of the scanner's "
                        "adaptive batches (default 0 = the scanner)")
    parser.add_argument("--cpus", type=int, default=None,
                        help="record with this process pinned to this many CPUs (the "
                        "highest-numbered it may use; default per profile: local 1, "
                        "others 0 = no pinning); see docs/replay.md")
    parser.add_argument("--sim-seeds", type=int, default=5,
                        help="simulations per prediction (seeds 0..N-1, which draw other "
                        "tenants' CPU differently); the prediction is their mean (default 5)")
    parser.add_argument("--corpus", default=None,
                        help="corpus directory (default: a reusable temp directory)")
    parser.add_argument("--keep-traces", default=None, metavar="DIR",
                        help="also save the live and simulated traces in DIR")
    parser.add_argument("--output", default=None, metavar="JSON",
                        help="write the results as JSON")


def parse_policy(spec: str) -> Any:
    """``NAME`` or ``NAME:key=value,key=value`` -> a policy."""
    from adaptive_lab.policies import make_policy, parse_assignments

    name, _, rest = spec.partition(":")
    items = [x for x in rest.split(",") if x.strip()] if rest else []
    return make_policy(name.strip(), **parse_assignments(items))


def predict_metrics(model: Any, policy: Any, seeds: int) -> tuple[Any, dict[str, Any]]:
    """Simulate with seeds 0..seeds-1 (they differ in the draws of other tenants' CPU);
    return the seed-0 trace and the mean of each metric (the expected run)."""
    import numpy as np

    from adaptive_lab.sim.closed_loop import simulate

    traces = [simulate(model, policy, seed=k) for k in range(max(1, seeds))]
    ms = [run_metrics(tr) for tr in traces]
    mean = dict(ms[0])
    for k in (*METRICS, "tasks"):
        mean[k] = float(np.mean([m[k] for m in ms]))
    mean["seeds"] = len(ms)
    return traces[0], mean


def with_background(model: Any, trace: Any) -> Any:
    """A copy of ``model`` whose segments all have the other tenants' CPU (% of the
    machine) recorded in ``trace``: its median and 16 quantiles."""
    import copy

    import numpy as np

    from adaptive_lab.sim.fit import quantiles16

    out = copy.deepcopy(model)
    bg = background_cpu(trace)
    if len(bg):
        for seg in out.segments:
            seg.background_cpu = float(np.median(bg))
            seg.background_q = quantiles16(bg) if len(bg) >= 16 else None
    out._tables.clear()
    out._lists.clear()
    return out


def background_cpu(tr: Any) -> Any:
    """Per sample, the system CPU % not used by this process (% of the machine, >= 0)."""
    import numpy as np

    host = tr.header.get("host") or {}
    cores = float(host.get("cores") or 1)
    share = cores / max(cores, float(host.get("cpu_count") or cores))
    a = tr.to_arrays()
    bg = np.maximum(a["cpu_percent"][1:] - a["process_cpu_percent"][1:] * share, 0.0)
    return bg[np.isfinite(bg)]


def rel_err(pred: float, live: float) -> float:
    """(pred - live) / live, in percent (NaN when live is 0 or unknown)."""
    if not (math.isfinite(pred) and math.isfinite(live)) or live == 0:
        return math.nan
    return 100.0 * (pred - live) / live


def run_metrics(tr: Any) -> dict[str, float]:
    """Throughput (tasks/s over the makespan), makespan (s), mean workers (time-weighted).

    A task is a scanner batch, and batch sizes adapt to measured speed, so two runs of
    the same scan may count different tasks; ``files_per_s`` (same files in every run)
    is then the fair rate, and its error is the makespan's.
    """
    import numpy as np

    s = tr.summary()
    mk = tr.header.get("makespan_s")
    makespan = float(mk) if mk is not None else float(s["duration_s"])
    dur = s["duration_s"]
    mean_w = s["worker_seconds"] / dur if dur > 0 else math.nan
    files = None
    wl = tr.header.get("workload") or {}
    if "corpus" in wl and "phases" in wl:  # a record_scan run: the same files in each run
        files = wl["corpus"]["files"] * sum(p["passes"] for p in wl["phases"])
    # other tenants' CPU, % of the machine (median over the run): not modelled, and
    # it moves a CPU-bound run's speed and the decisions of a policy reading system CPU
    bg = background_cpu(tr)
    return {"tasks": s["tasks"], "makespan_s": makespan, "files": files,
            "background_cpu": float(np.median(bg)) if len(bg) else math.nan,
            "files_per_s": files / makespan if files and makespan > 0 else None,
            "throughput": s["tasks"] / makespan if makespan > 0 else math.nan,
            "mean_workers": mean_w, "scale_events": s["scale_events"]}


@contextlib.contextmanager
def pinned(cpus: int | None) -> Iterator[None]:
    """Restrict this process to its ``cpus`` highest-numbered allowed CPUs, then
    restore the affinity (no-op for None or where affinity cannot be set)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield
        return
    old = os.sched_getaffinity(0)
    if cpus > len(old):
        raise ValueError(f"cpus must be <= the {len(old)} CPUs this process may use, "
                         f"got {cpus}")
    os.sched_setaffinity(0, sorted(old)[-cpus:])
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def validate(profile: str, policy_a: Any, policy_b: Any, *, files: int, passes: int,
             size_mix: str, corpus: str, min_workers: int, max_workers: int,
             interval: float, sample_period: float, repeat: int = 1, keep: str | None = None,
             batch_seconds: float | None = None, batch_files: int | None = None,
             cpus: int | None = None, sim_seeds: int = 5, log: Any = print
             ) -> dict[str, Any]:
    """Record the live runs, cross-predict each (A_i, B_i) pair, return the results.

    ``cpus``: pin this process (so the pool's threads) to that many CPUs while
    recording, restoring the affinity afterwards (None: no pinning).
    """
    import numpy as np

    from adaptive_lab.scanner.record import record_scan
    from adaptive_lab.sim.closed_loop import describe_model
    from adaptive_lab.sim.model import WorkloadModel

    kw: dict[str, Any] = {
        "corpus": corpus, "files": files, "size_mix": size_mix,
        "min_workers": min_workers, "max_workers": max_workers, "interval": interval,
        "sample_period": sample_period, "batch_seconds": batch_seconds,
        "batch_files": batch_files}
    out: dict[str, Any] = {
        "profile": profile, "files": files, "passes": passes, "size_mix": size_mix,
        "repeat": repeat,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_start": list(os.getloadavg())},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"min_workers": min_workers, "max_workers": max_workers,
                     "interval": interval, "sample_period": sample_period,
                     "batch_seconds": batch_seconds, "batch_files": batch_files,
                     "cpus": cpus if hasattr(os, "sched_setaffinity") else None,
                     "sim_seeds": sim_seeds,
                     "policy_a": policy_a.describe(),
                     "policy_b": policy_b.describe()},
        "live": [], "predictions": [],
    }
    log(f"{profile}: {files} files x {passes} passes, "
        + (f"pinned to {cpus} CPU(s)" if cpus and hasattr(os, "sched_setaffinity")
           else "not pinned")
        + (f", tasks of {batch_files} files" if batch_files else ", scanner batches"))
    for r in range(repeat):
        live = {}
        for label, pol in (("A", policy_a), ("B", policy_b)):
            t0 = time.perf_counter()
            with pinned(cpus):
                tr = record_scan([(profile, passes)], pol, **kw)
            live[label] = tr
            m = run_metrics(tr)
            out["live"].append({"run": r, "label": label, "loadavg": os.getloadavg()[0], **m})
            log(f"run {r} live {label} {pol.describe()['name']:>10}: {m['tasks']} tasks in "
                f"{m['makespan_s']:.2f} s = {m['throughput']:.0f}/s, mean workers "
                f"{m['mean_workers']:.1f} ({time.perf_counter() - t0:.1f} s wall, "
                f"load {os.getloadavg()[0]:.1f})")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                tr.save(Path(keep) / f"{profile}-live-{label}{r}.jsonl")
        for fit_on, predict in (("A", "B"), ("B", "A")):
            model = WorkloadModel.fit(live[fit_on])
            pol = policy_b if predict == "B" else policy_a
            sim, sm = predict_metrics(model, pol, sim_seeds)
            lm = run_metrics(live[predict])
            err = {k: rel_err(sm[k], lm[k]) for k in METRICS}
            # a diagnostic, not the prediction: the same model with the other
            # tenants' CPU of the predicted run (an input the model cannot know)
            _, gm = predict_metrics(with_background(model, live[predict]), pol, sim_seeds)
            err_given = {k: rel_err(gm[k], lm[k]) for k in METRICS}
            out["predictions"].append({"run": r, "fit_on": fit_on, "predict": predict,
                                       "model": describe_model(model), "live": lm,
                                       "sim": sm, "error_pct": err,
                                       "error_pct_tenants_given": err_given})
            log(f"run {r} fit on {fit_on}, predict {predict}: throughput "
                f"{err['throughput']:+.1f} %, makespan {err['makespan_s']:+.1f} %, "
                f"mean workers {err['mean_workers']:+.1f} % (other tenants' CPU "
                f"{run_metrics(live[fit_on])['background_cpu']:.0f} % in the fitted run, "
                f"{lm['background_cpu']:.0f} % in the predicted one; given it: "
                f"{err_given['throughput']:+.1f} / {err_given['makespan_s']:+.1f} / "
                f"{err_given['mean_workers']:+.1f} %)")
            if keep:
                sim.save(Path(keep) / f"{profile}-sim-{predict}{r}-from-{fit_on}.jsonl")
    summary: dict[str, Any] = {}
    for key, name in (("error_pct", ""), ("error_pct_tenants_given", "tenants_given_")):
        for k in METRICS:
            e = np.array([abs(p[key][k]) for p in out["predictions"]])
            summary[name + k] = {"median_abs_pct": float(np.nanmedian(e)),
                                 "max_abs_pct": float(np.nanmax(e))}
    # the noise floor: spread of the same policy's live runs
    for label in ("A", "B"):
        mk = np.array([x["makespan_s"] for x in out["live"] if x["label"] == label])
        summary[f"live_{label}_makespan_cv_pct"] = (
            float(100 * mk.std(ddof=1) / mk.mean()) if len(mk) > 1 else None)
    out["summary"] = summary
    out["machine"]["loadavg_end"] = list(os.getloadavg())
    log("|error| %, median (max): " + ", ".join(
        f"{k} {v['median_abs_pct']:.1f} ({v['max_abs_pct']:.1f})"
        for k, v in summary.items() if isinstance(v, dict)))
    return out


def run(args: argparse.Namespace) -> int:
    d = DEFAULTS[args.profile]
    files = args.files or d["files"]
    passes = args.passes or d["passes"]
    batch_files = args.batch_files if args.batch_files is not None else (
        None if args.batch_seconds is not None else d.get("batch_files"))
    if batch_files is not None and batch_files < 0:
        raise ValueError(f"--batch-files must be >= 0, got {batch_files}")
    batch_files = batch_files or None
    cpus = args.cpus if args.cpus is not None else d.get("cpus")
    if cpus is not None and cpus < 0:
        raise ValueError(f"--cpus must be >= 0, got {cpus}")
    cpus = cpus or None
    for name, v in (("files", files), ("passes", passes), ("repeat", args.repeat),
                    ("sim-seeds", args.sim_seeds)):
        if v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    corpus = args.corpus or os.path.join(
        tempfile.gettempdir(), f"adaptive-lab-validate-{d['size_mix']}{files}")
    res = validate(args.profile, parse_policy(args.policy_a), parse_policy(args.policy_b),
                   files=files, passes=passes, size_mix=d["size_mix"], corpus=corpus,
                   min_workers=args.min_workers, max_workers=args.max_workers,
                   interval=args.interval, sample_period=args.sample_period,
                   repeat=args.repeat, keep=args.keep_traces,
                   batch_seconds=args.batch_seconds, batch_files=batch_files, cpus=cpus,
                   sim_seeds=args.sim_seeds)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(res, indent=1, default=str) + "\n")
        print(f"wrote {args.output}")
    return 0
