"""Regenerate the shipped traces in data/ (real scans on this machine).

Usage: ``python scripts/record_data.py [--only NAME ...] [--out data] [--corpus DIR]``

Each trace is a real scan (:func:`adaptive_lab.scanner.record.record_scan`: the scanner over a
warm corpus made by :func:`adaptive_lab.scanner.corpus.make_corpus`, on a live
AdaptiveThreadPoolExecutor) under the threshold policy with a short interval
(0.5 s, samples every 0.1 s, bounds 2..24), so the replays are interesting. One more
trace at a fixed size is the ground truth of the simulator's fixed-policy test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from adaptive_lab.policies import FixedPolicy, ThresholdPolicy
from adaptive_lab.scanner.profiles import Profile
from adaptive_lab.scanner.record import record_scan

#: name -> (phases, corpus files, size mix, policy)
TRACES = {
    "local": ([("local", 120)], 2000, "A", ThresholdPolicy()),
    "latency": ([("latency", 36)], 2000, "B", ThresholdPolicy()),
    "step": ([(Profile("step", latency_ms=2.0), 24), (Profile("step", latency_ms=10.0), 12)],
             2000, "B", ThresholdPolicy()),
    "mixed": ([("mixed", 24)], 2000, "B", ThresholdPolicy()),
    "latency-fixed12": ([("latency", 30)], 2000, "B", FixedPolicy(12)),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=sorted(TRACES), default=None)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data"))
    p.add_argument("--corpus", default=os.path.join(tempfile.gettempdir(),
                                                     "adaptive-lab-data-corpus"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(TRACES):
        phases, files, mix, policy = TRACES[name]
        path = out / f"{name}.jsonl"
        t0 = time.perf_counter()
        load = os.getloadavg()[0]
        tr = record_scan(phases, policy, corpus=f"{args.corpus}-{mix}{files}", files=files,
                         size_mix=mix, min_workers=2, max_workers=24, interval=0.5,
                         sample_period=0.1)
        tr.header["workload"]["recorded_with"] = (
            f"python scripts/record_data.py --only {name}")
        tr.header["workload"]["loadavg_1min_at_start"] = load
        tr.save(path)
        s = tr.summary()
        print(f"{name}: {s['samples']} samples, {s['duration_s']:.1f} s, {s['tasks']} tasks, "
              f"{s['scale_events']} scale events, {path.stat().st_size / 1024:.0f} KiB, "
              f"load {load:.1f} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
