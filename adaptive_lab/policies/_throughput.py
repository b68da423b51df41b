"""Measurement helpers of the default policy (:mod:`.adaptive`): completions per pool
size, throughput elasticities, and the constants its rules read them with.

Pure functions and small value types, no clock and no threads: the policy feeds them
the observations it is given, so replays are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from adaptive_lab.policies.base import Observation


def _as_cores(percent: float, obs: Observation) -> float:
    """A process CPU % of ``obs`` (relative to all its cores) as cores kept busy."""
    return percent * obs.cores / 100.0


@dataclass
class _Segment:
    """Completions accumulated at one size since the last measurement was used."""

    n: int
    dur: float = 0.0
    tasks: float = 0.0
    lat_sum: float = 0.0
    lat_tasks: float = 0.0
    cpu_s: float = 0.0  # CPU-seconds the process used over cpu_dur
    cpu_dur: float = 0.0
    usr_s: float = 0.0  # ... of which in user mode, over usr_dur
    usr_dur: float = 0.0
    rates: list[tuple[float, float]] = field(default_factory=list)

    def add(self, obs: Observation) -> None:
        done = max(0.0, obs.throughput * obs.dt)
        self.dur += obs.dt
        self.tasks += done
        self.rates.append((max(0.0, obs.throughput), obs.dt))
        if math.isfinite(obs.latency_mean) and done > 0:
            self.lat_sum += obs.latency_mean * done
            self.lat_tasks += done
        used = _as_cores(obs.process_cpu_percent, obs)
        if math.isfinite(used) and used >= 0:
            self.cpu_s += used * obs.dt
            self.cpu_dur += obs.dt
        user = _as_cores(obs.process_user_cpu_percent, obs)
        if math.isfinite(user) and user >= 0:
            self.usr_s += user * obs.dt
            self.usr_dur += obs.dt

    @property
    def rate(self) -> float:
        """Throughput: the time-weighted median of the windows' rates (3+ windows), so
        a window in which other tenants stalled the process, or the burst after it,
        does not decide; else the plain mean."""
        if self.dur <= 0:
            return math.nan
        if len(self.rates) < 3:
            return self.tasks / self.dur
        acc, half = 0.0, self.dur / 2
        for x, dt in sorted(self.rates):
            acc += dt
            if acc + 1e-12 >= half:
                return x
        return self.rates[-1][0]  # pragma: no cover - unreachable

    @property
    def latency(self) -> float:
        return self.lat_sum / self.lat_tasks if self.lat_tasks > 0 else math.nan

    @property
    def cores_busy(self) -> float:
        """Cores the process kept busy (CPU-seconds per second); NaN if unknown."""
        return self.cpu_s / self.cpu_dur if self.cpu_dur > 0 else math.nan

    def point(self) -> _Point:
        user = self.usr_s / self.usr_dur if self.usr_dur > 0 else math.nan
        return _Point(self.n, self.rate, self.latency, self.cores_busy, user)


#: Little's law reads the knee from latency only if the workers spend most of their time
#: inside tasks (X * R / n above this). Short GIL-bound tasks wait for the GIL *between*
#: tasks, so their run time stays flat while the pool is already past the knee.
LITTLE_MIN_UTIL = 0.7


#: The CPU cap needs at least this fraction of ``cpu_limit`` busy: below it the reading is
#: mostly the process's fixed overhead (the scanner's walk, the controller), which would
#: make a slow-task workload look CPU-heavy; the cap would be over 4x the size anyway.
CPU_CAP_MIN_BUSY = 0.25


#: With at least as many threads as cores and this many cores busy, the process's Python
#: code (one core at a time under the GIL) is the bottleneck: measured, 3 threads lost
#: 10-40 % to 2 on warm hashing (1.3-1.5 cores busy) and on pure Python (1.1), and 38
#: lost to 27 on 1 ms storage (1.3). Applies when ``cpu_limit`` is automatic (0).
GIL_BUSY = 0.95

#: At a thread per core with the GIL saturated, under this many cores busy and at least
#: ``GIL_SERIAL_USER`` of them in user mode, the threads only take turns running Python
#: (pure Python: 1.08 cores busy with 2 threads, 0.96 in user mode; 1 thread made 6-9 %
#: more). Warm hashing keeps 1.5 cores busy (the GIL is released while hashing); cold
#: reads 1.05, but half of it is the kernel's I/O work (0.54 user), and there 1 thread
#: lost 25 % to 2. Then the policy probes one thread fewer.
GIL_SERIAL_BUSY = 1.25
GIL_SERIAL_USER = 0.8

#: Workers kept per bandwidth-delay product ``X * R_min`` (BBR's ``cwnd_gain``, 2): at
#: exactly the product any latency jitter costs throughput. Measured here, the best
#: fixed sizes were 1.3-2.5x it (1 ms storage 8-16 for 6.5, 5 ms 64 for 29, 20 ms
#: 128-256 for 104), and 1.25x it lost 5-15 % on 1 and 5 ms.
BDP_GAIN = 2.0


def _little_elasticity(n0: int, x0: float, r0: float, n1: int, x1: float, r1: float
                       ) -> float:
    """Throughput elasticity between sizes n0 < n1 implied by Little's law (X = n / R
    with every worker busy): 1 when latency stays flat (below the knee), 0 when it grows
    as fast as the workers (past it). NaN when unknown or when utilisation is low."""
    if not (n1 > n0 > 0 and r0 > 0 and r1 > 0 and x0 > 0 and x1 > 0):  # NaN fails too
        return math.nan
    if min(x0 * r0 / n0, x1 * r1 / n1) < LITTLE_MIN_UTIL:
        return math.nan
    k = n1 / n0
    return (k * r0 / r1 - 1.0) / (k - 1.0)


def _busy_in_tasks(p: _Point) -> bool:
    """Whether the workers spend most of their time inside tasks (Little's law, X R / n),
    so latency says where the knee is. False for GIL-bound tasks, which wait between."""
    return p.n > 0 and p.x > 0 and p.r > 0 and p.x * p.r / p.n >= LITTLE_MIN_UTIL


def _combined(eff_x: float, eff_r: float) -> float:
    """Mean of the measured and the Little's-law elasticity (either alone if the other
    is unknown): two partly independent noisy readings of the same slope."""
    if math.isfinite(eff_r):
        return 0.5 * (eff_x + eff_r) if math.isfinite(eff_x) else eff_r
    return eff_x


@dataclass(frozen=True)
class _Point:
    n: int
    x: float  # throughput, tasks/s
    r: float  # mean task latency, s (NaN if unknown)
    u: float = math.nan  # cores the process kept busy (NaN if unknown)
    uu: float = math.nan  # ... in user mode: Python code, not kernel I/O work
