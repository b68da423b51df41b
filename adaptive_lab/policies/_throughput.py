"""Measurement helpers of the default policy (:mod:`.adaptive`): completions per pool
size, throughput elasticities, the CPU and bandwidth-delay bounds, and the constants its
rules read them with (docs/default-policy.md gives the measurements behind each).

Pure functions and small value types, no clock and no threads: the policy feeds them
the observations it is given, so replays are deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from adaptive_lab.policies.base import Observation

#: Little's law reads the knee from latency only if the workers spend most of their time
#: inside tasks (X * R / n above this). Short GIL-bound tasks wait for the GIL *between*
#: tasks, so their run time stays flat while the pool is already past the knee.
LITTLE_MIN_UTIL = 0.7

#: The CPU cap needs at least this fraction of ``cpu_limit`` busy: below it the reading is
#: mostly fixed overhead (with process CPU: the scanner's walk, the controller), which
#: would make a slow-task workload look CPU-heavy; the cap would be over 4x the size.
CPU_CAP_MIN_BUSY = 0.25

#: With at least as many threads as cores and this many cores busy, the process's Python
#: code (one core at a time under the GIL) is the bottleneck: measured, 3 threads lost
#: 10-40 % to 2 on warm hashing (1.3-1.5 cores busy) and on pure Python (1.1), and 38
#: lost to 27 on 1 ms storage (1.3). Applies when ``cpu_limit`` is automatic (0).
GIL_BUSY = 0.95

#: At a thread per core with the GIL saturated, under this many cores busy and at least
#: ``GIL_SERIAL_USER`` of them in user mode, the threads only take turns running Python
#: (pure Python: 1.08 cores busy with 2 threads, 0.96 in user mode; 1 thread made 6-9 %
#: more; cold reads 1.05 but 0.54 user, and 1 thread lost 25 %): probe one thread fewer.
#: 1.1, not the 1.25 first chosen on process CPU: hashing is user-mode CPU too, and on a
#: loaded machine 2 threads hashing 1 MiB buffers (the GIL released) kept 1.2 cores
#: busy, probed 1 thread, found it as good while the other tenants ran, and stayed.
GIL_SERIAL_BUSY = 1.1
GIL_SERIAL_USER = 0.8

#: The workers' own CPU misses the GIL time the submitter and the controller take, so a
#: pure-Python loop on 2 workers shows 0.87 cores, not 1 (submitted all at once: then the
#: cap read 2 x 2 / 0.87 = 4.6 and a step to 4 lost 6 %). From ``GIL_SERIAL_MIN`` cores,
#: with CPU per task at least ``GIL_SERIAL_SHARE`` of the latency (0.45 there; 1 ms
#: sleeps 0.05), the tasks take turns on one core: no more threads.
GIL_SERIAL_MIN = 0.75
GIL_SERIAL_SHARE = 0.25

#: Workers kept per bandwidth-delay product ``X * R_min`` (BBR's ``cwnd_gain``, 2): at
#: exactly the product any latency jitter costs throughput. Measured here, the best
#: fixed sizes were 1.3-2.5x it, and 1.25x it lost 5-15 % on 1 and 5 ms storage.
BDP_GAIN = 2.0

#: The CPU a window's tasks cost is the workers' own (``task_cpu_cores``). Process CPU
#: also counts the submitter: ``map`` of 20,000 20 ms sleeps kept 0.6 cores busy at 2
#: workers while submitting, a "CPU cap" of 6 where 384 is best; and counting a bounded
#: producer's CPU (taking the larger of the two) held 1 ms sleeps at 24-28 threads where
#: 64 are best (0.60 of the best fixed size, against 0.83 on the workers' CPU alone).
#: Without ``task_cpu_cores`` (old traces) process CPU is used, except in a window that
#: submitted more than ``FEEDING`` x the tasks it finished (plus the pool size).
FEEDING = 2.0

#: Little-law climb: a climb step whose latency stayed this flat (Little elasticity at
#: least this) is in the linear region, so with a deep queue the next size is the
#: Little's-law size ``rate_guess x R`` at once rather than ``growth`` x.
LINEAR = 0.8


def _as_cores(percent: float, obs: Observation) -> float:
    """A process CPU % of ``obs`` (relative to all its cores) as cores kept busy."""
    return percent * obs.cores / 100.0


@dataclass(frozen=True)
class _Point:
    """One measured size: ``rate`` tasks/s, mean ``latency`` s (NaN if unknown),
    ``cpu`` cores the tasks kept busy and ``user_cpu`` the process's user-mode cores."""

    n: int
    rate: float
    latency: float
    cpu: float = math.nan
    user_cpu: float = math.nan

    @property
    def busy(self) -> float:
        """Workers busy inside tasks by Little's law (``X R``); NaN when unknown."""
        return self.rate * self.latency


@dataclass
class _Segment:
    """Completions accumulated at one size since the last measurement was used."""

    n: int
    dur: float = 0.0
    tasks: float = 0.0
    lat_sum: float = 0.0
    lat_tasks: float = 0.0
    cpu_s: float = 0.0  # CPU-seconds the tasks used over cpu_dur
    cpu_dur: float = 0.0
    usr_s: float = 0.0  # the process's user-mode CPU-seconds, over usr_dur
    usr_dur: float = 0.0
    rates: list[tuple[float, float]] = field(default_factory=list)

    def add(self, obs: Observation, fed: float = 0.0) -> None:
        """Add one window; ``fed`` is the tasks submitted during it."""
        done = max(0.0, obs.throughput * obs.dt)
        self.dur += obs.dt
        self.tasks += done
        self.rates.append((max(0.0, obs.throughput), obs.dt))
        if math.isfinite(obs.latency_mean) and done > 0:
            self.lat_sum += obs.latency_mean * done
            self.lat_tasks += done
        used = obs.task_cpu_cores  # the workers' own CPU
        if math.isnan(used) and not fed > FEEDING * done + obs.workers:
            used = _as_cores(obs.process_cpu_percent, obs)  # (old traces; no burst)
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

    def point(self) -> _Point:
        latency = self.lat_sum / self.lat_tasks if self.lat_tasks > 0 else math.nan
        cpu = self.cpu_s / self.cpu_dur if self.cpu_dur > 0 else math.nan
        user = self.usr_s / self.usr_dur if self.usr_dur > 0 else math.nan
        return _Point(self.n, self.rate, latency, cpu, user)


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
    return p.n > 0 and p.rate > 0 and p.latency > 0 and p.busy / p.n >= LITTLE_MIN_UTIL


def _combined(eff_x: float, eff_r: float) -> float:
    """Mean of the measured and the Little's-law elasticity (either alone if the other
    is unknown): two partly independent noisy readings of the same slope."""
    if math.isfinite(eff_r):
        return 0.5 * (eff_x + eff_r) if math.isfinite(eff_x) else eff_r
    return eff_x


def cpu_cap(p: _Point, cores: float, cpu_limit: float) -> float:
    """The largest size the CPU leaves room for: ``p.n`` workers kept ``p.cpu`` cores
    busy, so ``p.n * limit / p.cpu`` fill ``limit`` cores (inf when unknown). Little's
    law with the measured CPU per task ``c`` for the rate (``n / u = R / c``, Goetz's
    ``cores x (1 + W/C)``). With the GIL saturated more threads only queue for it."""
    limit = cpu_limit if cpu_limit > 0 else cores
    if not (limit > 0 and p.cpu >= CPU_CAP_MIN_BUSY * limit):  # NaN fails too
        return math.inf
    if cpu_limit <= 0 and p.n >= cores and (p.cpu >= GIL_BUSY or _gil_serial(p)):
        return float(p.n)
    return p.n * limit / p.cpu


def _gil_serial(p: _Point) -> bool:
    """About one core busy with CPU-heavy tasks (CPU per task at least
    ``GIL_SERIAL_SHARE`` of the latency): the threads take turns holding the GIL."""
    return (GIL_SERIAL_MIN <= p.cpu < GIL_SERIAL_BUSY and p.rate > 0
            and p.cpu / p.rate >= GIL_SERIAL_SHARE * p.latency)


def bandwidth_delay(p: _Point, min_latency: float, min_latency_at: int) -> float:
    """Workers needed to carry ``p.rate`` at the lowest latency seen, ``X * R_min``
    (Little's law; BBR's bandwidth-delay product), or NaN when unknown. Only for tasks
    that mostly wait (CPU per task under a quarter of ``R_min``: a GIL queue inflates
    the latency of CPU-heavy tasks), and only when ``R_min`` was measured at under half
    the size (less contention), else it is just ``X R = n`` and says nothing."""
    r = min_latency
    if not (r > 0 and p.rate > 0 and 2 * min_latency_at <= p.n):
        return math.nan
    c = p.cpu / p.rate if p.cpu > 0 else math.nan
    return math.nan if c >= 0.25 * r else p.rate * r
