"""Host facts: the CPU cores this process may use (affinity and cgroup quota aware).

One copy of this fact for the whole package: the pools' default sizes, the policies'
CPU arithmetic and the trace headers all read it from here.
"""

from __future__ import annotations

import math
import os


def available_cores() -> int:
    """CPU cores this process may use: affinity-aware, and cgroup-quota-aware on Linux."""
    if hasattr(os, "process_cpu_count"):
        n = os.process_cpu_count() or 1  # 3.13+
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:  # pragma: no cover
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _cgroup_cpu_quota() -> float | None:
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


