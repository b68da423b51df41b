"""Experiment driver for the default policy: adaptive vs a sweep of fixed sizes, real threads.

Each *profile* emulates a scan on real files with real threads (see ``PROFILES``):
``latency1/5/20`` sleep L ms then read and hash a 4 KiB file; ``cpu`` runs pure
Python holding the GIL; ``warm`` reads and sha256-hashes 8-64 KiB files from the page
cache; ``cold`` evicts each file first (``posix_fadvise(DONTNEED)``, only our own
files) so it is read from disk; ``mixed`` interleaves 5 ms latency, warm and cpu tasks;
``step`` switches 1 ms -> 20 ms latency half-way, ``stepdown`` 20 ms -> 1 ms.

A feeder keeps ``2 * pool.size + 4`` tasks in flight (like the scanner's
backpressure, but following the current size) for ``--duration`` seconds; throughput
= tasks completed / duration, so ramp-up counts. Runs are interleaved (every size of
a profile, then the next repetition) and the medians are compared as ratios to the best fixed size.

    python scripts/tune_adaptive.py --profiles all --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaptive_lab.bench.stats import direction_changes
from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor
from adaptive_lab.policies.adaptive import ThroughputSeekingPolicy
from adaptive_lab.policies.base import Observation

CORPUS = Path(os.environ.get("TUNE_CORPUS", "/tmp/adaptive_tune_corpus"))
SMALL, LOCAL = 512, 1500
DEFAULT_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384)


def make_corpus() -> tuple[list[str], list[str]]:
    """4 KiB files for latency tasks and 8-64 KiB files for local hashing (idempotent)."""
    rng = random.Random(42)
    small_dir, local_dir = CORPUS / "small", CORPUS / "local"
    small_dir.mkdir(parents=True, exist_ok=True)
    local_dir.mkdir(parents=True, exist_ok=True)
    small = [str(small_dir / f"s{i:04d}") for i in range(SMALL)]
    local = [str(local_dir / f"l{i:04d}") for i in range(LOCAL)]
    for p in small:
        if not os.path.exists(p):
            Path(p).write_bytes(rng.randbytes(4096))
    for p in local:
        if not os.path.exists(p):
            Path(p).write_bytes(rng.randbytes(rng.randint(8, 64) * 1024))
    return small, local


def _hash_file(path: str, evict: bool = False) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        if evict:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        h = hashlib.sha256()
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            h.update(b)
        return len(h.digest())
    finally:
        os.close(fd)


def _cpu(n: int = 3000) -> int:
    s = 0
    for i in range(n):
        s += i * i
    return s


class Workload:
    """task(i, t) for a profile; ``t`` is seconds since the run started (for steps)."""

    def __init__(self, name: str, small: list[str], local: list[str], step_at: float) -> None:
        self.name, self.small, self.local, self.step_at = name, small, local, step_at

    def latency_ms(self, t: float) -> float:
        if self.name == "step":
            return 1.0 if t < self.step_at else 20.0
        if self.name == "stepdown":
            return 20.0 if t < self.step_at else 1.0
        return float(self.name.removeprefix("latency"))

    def task(self, i: int, t: float) -> None:
        name = self.name
        if name == "cpu":
            _cpu()
        elif name == "warm":
            _hash_file(self.local[i % len(self.local)])
        elif name == "cold":
            _hash_file(self.local[i % len(self.local)], evict=True)
        elif name == "mixed":
            k = i % 5
            if k < 2:
                time.sleep(0.005)
                _hash_file(self.small[i % len(self.small)])
            elif k < 4:
                _hash_file(self.local[i % len(self.local)])
            else:
                _cpu()
        else:
            time.sleep(self.latency_ms(t) / 1e3)
            _hash_file(self.small[i % len(self.small)])


PROFILES = ("warm", "cold", "latency1", "latency5", "latency20", "cpu", "mixed", "step",
            "stepdown")


def run_once(wl: Workload, size: int | None, duration: float, max_workers: int,
             params: dict | None = None, inflight_of_max: bool = False) -> dict:
    """One timed run; size None = adaptive policy.

    The feeder keeps ``2 * pool.size + 4`` tasks in flight (the pool's *current* size),
    or ``2 * max_workers + 4`` with ``inflight_of_max``: a deep queue of fast tasks
    costs a Python pool a lot (measured: 8 workers on warm tasks, 20 vs 1028 in
    flight, about 2x), so sizing the backlog by the upper bound would handicap the
    adaptive runs.
    """
    if size is None:
        pol = ThroughputSeekingPolicy(**(params or {}))
        pool = AdaptiveThreadPoolExecutor(max_workers=max_workers, policy=pol, record=True)
    else:
        pool = AdaptiveThreadPoolExecutor(max_workers=size, policy=None, record=True)
    done = threading.Semaphore(0)
    release = done.release
    outstanding = 0
    t0 = time.perf_counter()
    i = 0
    phase_done = False
    step_completed = 0
    try:
        while True:
            now = time.perf_counter() - t0
            if now >= duration:
                break
            if not phase_done and wl.name.startswith("step") and now >= wl.step_at:
                phase_done = True
                step_completed = pool.stats().completed
                if pool.controller is not None:
                    pool.controller.phase("step", at=now)
            while done.acquire(blocking=False):
                outstanding -= 1
            limit = 2 * (pool.max_workers if inflight_of_max else pool.size) + 4
            if outstanding >= limit:
                if done.acquire(timeout=0.05):
                    outstanding -= 1
                continue
            f = pool.submit(wl.task, i, now)
            f.add_done_callback(lambda _f: release())
            outstanding += 1
            i += 1
        completed = pool.stats().completed
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    tr = pool.trace()
    samples = tr.samples if tr is not None else []
    events = tr.events if tr is not None else []
    out = {"profile": wl.name, "size": "adaptive" if size is None else size,
           "throughput": completed / duration, "completed": completed}
    if wl.name.startswith("step"):
        out["phase1"] = step_completed / wl.step_at
        out["phase2"] = (completed - step_completed) / (duration - wl.step_at)
    if size is None:
        out["workers"] = [(round(s["t"], 2), s["workers"], round(s["throughput"]))
                          for s in samples]
        out["scales"] = [(round(e["t"], 2), e["from"], e["to"], e["reason"]) for e in events
                         if e.get("type") == "scale"]
    return out


def step_response(run: dict, step_at: float, target: float, window: float = 0.5) -> float:
    """Seconds after the step until throughput over ``window`` s first reaches ``target``."""
    pts = [(t, x) for t, _, x in run["workers"] if t > step_at]
    if not pts:
        return float("nan")
    dt = pts[1][0] - pts[0][0] if len(pts) > 1 else 0.1
    k = max(1, round(window / dt))
    for j in range(k - 1, len(pts)):
        if statistics.fmean(x for _, x in pts[j - k + 1:j + 1]) >= target:
            return pts[j][0] - step_at
    return float("inf")


def sim_curve(n: int, latency: float, cost: float, penalty: float) -> tuple[float, float]:
    """Model X(n), R(n): linear n / latency, a rounded knee at 1 / cost, then a loss of
    ``penalty`` per doubling past the knee (the shape measured on this machine)."""
    lin, cap = n / latency, 1.0 / cost
    x = (lin ** -4 + cap ** -4) ** -0.25
    knee = cap * latency
    if n > knee:
        x *= (1 - penalty) ** math.log2(n / knee)
    return x, n / x


SIM = {  # name: (latency before, latency after, per-task cost, penalty)
    "warm": (70e-6, None, 60e-6, 0.15), "cpu": (150e-6, None, 150e-6, 0.05),
    "latency1": (1e-3, None, 70e-6, 0.15), "latency5": (5e-3, None, 70e-6, 0.1),
    "latency20": (20e-3, None, 80e-6, 0.05), "step": (1e-3, 20e-3, 70e-6, 0.1),
    "stepdown": (20e-3, 1e-3, 70e-6, 0.1),
}


def simulate(name: str, seconds: float, sigma: float, stall: float, seed: int,
             params: dict, step_at: float, hi: int = 512) -> dict:
    """Closed loop on the model with log-normal noise ``sigma`` per 0.1 s window and a
    ``stall`` probability (the process descheduled: X x 0.3, R x 3)."""
    before, after, cost, pen = SIM[name]
    rng = random.Random(seed)
    pol = ThroughputSeekingPolicy(**params)
    n, t, xs, ws = 2, 0.0, [], []
    while t < seconds - 1e-9:
        t += 0.1
        lat = before if after is None or t < step_at else after
        x, r = sim_curve(n, lat, cost, pen)
        xs.append((t, x))
        noise = math.exp(rng.gauss(0, sigma))
        xo, ro = x * noise, r
        if rng.random() < stall:
            xo, ro = xo * 0.3, r * 3
        ws.append(n)
        n = pol(Observation(t=t, workers=n, busy=n, queue_depth=1000, throughput=xo,
                            latency_mean=ro, dt=0.1, min_workers=2, max_workers=hi)).target
    lat2 = after or before
    best = max(sim_curve(k, lat2, cost, pen)[0] for k in range(1, hi + 1))
    best1 = max(sim_curve(k, before, cost, pen)[0] for k in range(1, hi + 1))
    out = {"ratio": statistics.fmean(x for _, x in xs) / best,
           "reversals_per_min": direction_changes(ws) * 60 / seconds, "final": ws[-1]}
    if after is not None:
        p1 = [x for tt, x in xs if tt < step_at]
        out["ratio"] = statistics.fmean(p1) / best1
        reach = [tt - step_at for tt, x in xs if tt > step_at and x >= 0.9 * best]
        out["resp"] = reach[0] if reach else math.inf
        out["ratio_after"] = statistics.fmean(x for tt, x in xs if tt > step_at) / best
    return out


def run_sim(a: argparse.Namespace, params: dict) -> int:
    for name in SIM:
        rs = [simulate(name, a.duration, a.sigma, a.stall, s, params, a.duration / 2)
              for s in range(a.repeat)]
        line = (f"{name:9s} ratio median {statistics.median(r['ratio'] for r in rs):.2f} "
                f"min {min(r['ratio'] for r in rs):.2f} | reversals/min "
                f"{statistics.median(r['reversals_per_min'] for r in rs):.0f}")
        if "resp" in rs[0]:
            line += (f" | after step {statistics.median(r['ratio_after'] for r in rs):.2f}, "
                     f"90 % in {statistics.median(r['resp'] for r in rs):.1f}s (max "
                     f"{max(r['resp'] for r in rs):.1f}s)")
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="all")
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-workers", type=int, default=512)
    ap.add_argument("--step-at", type=float, default=None, help="default: duration / 2")
    ap.add_argument("--inflight-of-max", action="store_true",
                    help="backlog 2 * max_workers + 4 instead of 2 * current size + 4")
    ap.add_argument("--set", action="append", default=[], help="policy param key=value")
    ap.add_argument("--json", default=None)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--sim", action="store_true",
                    help="closed loop on a noisy model curve instead of real threads")
    ap.add_argument("--sigma", type=float, default=0.2, help="--sim: log-normal noise")
    ap.add_argument("--stall", type=float, default=0.05, help="--sim: stall probability")
    a = ap.parse_args(argv)
    if a.sim:
        return run_sim(a, dict(kv.split("=", 1) for kv in a.set))
    profiles = PROFILES if a.profiles == "all" else tuple(a.profiles.split(","))
    sizes = [int(s) for s in a.sizes.split(",") if s]
    params = dict(kv.split("=", 1) for kv in a.set)
    step_at = a.step_at if a.step_at is not None else a.duration / 2
    small, local = make_corpus()
    results: list[dict] = []
    for prof in profiles:
        wl = Workload(prof, small, local, step_at)
        for rep in range(a.repeat):
            order = [*sizes, None]
            random.Random(rep).shuffle(order)
            for size in order:
                r = run_once(wl, size, a.duration, a.max_workers, params, a.inflight_of_max)
                r["rep"] = rep
                results.append(r)
                if a.json:
                    Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}))
                if a.verbose:
                    print(f"{prof:9s} rep{rep} {r['size']!s:>8}: {r['throughput']:8.0f}/s",
                          flush=True)
        summarize(prof, [r for r in results if r["profile"] == prof], step_at, a.duration)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))
    return 0


def summarize(prof: str, runs: list[dict], step_at: float, duration: float) -> dict:
    """Print medians per size, the adaptive ratio to the best fixed size and dynamics."""
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(str(r["size"]), []).append(r)
    med = {k: statistics.median(r["throughput"] for r in v) for k, v in by.items()}
    fixed = {k: v for k, v in med.items() if k != "adaptive"}
    best = max(fixed, key=fixed.get)
    ada = by["adaptive"]
    ratio = med["adaptive"] / fixed[best]
    ratios = sorted(r["throughput"] / fixed[best] for r in ada)
    finals = [r["workers"][-1][1] if r["workers"] else 0 for r in ada]
    changes = [direction_changes([w for _, w, _ in r["workers"]]) * 60 / duration for r in ada]
    line = (f"{prof:9s} best fixed {best:>4} {fixed[best]:8.0f}/s | adaptive {med['adaptive']:8.0f}"
            f"/s ratio {ratio:.2f} (runs {', '.join(f'{x:.2f}' for x in ratios)}) | final "
            f"size {finals} | reversals/min {statistics.median(changes):.0f}")
    extra = {}
    if prof.startswith("step"):
        p2 = {k: statistics.median(r["phase2"] for r in v) for k, v in by.items()}
        best2 = max((k for k in p2 if k != "adaptive"), key=p2.get)
        resp = [step_response(r, step_at, 0.9 * p2[best2]) for r in ada]
        extra = {"best2": best2, "resp": resp}
        line += (f"\n{'':9s} after step: best fixed {best2} {p2[best2]:.0f}/s; adaptive "
                 f"{p2['adaptive']:.0f}/s ({p2['adaptive'] / p2[best2]:.2f}); time to 90%: "
                 f"{', '.join(f'{x:.2f}s' for x in resp)}")
    print(line, flush=True)
    print("          " + "  ".join(f"{k}:{v:.0f}" for k, v in sorted(
        fixed.items(), key=lambda kv: int(kv[0]))), flush=True)
    return {"best": best, "ratio": ratio, **extra}


if __name__ == "__main__":
    raise SystemExit(main())
