"""Netflix concurrency-limits' latency-gradient limits (Gradient2, Vegas), as policies.

Sources: Netflix/concurrency-limits,
``concurrency-limits-core/src/main/java/com/netflix/concurrency/limits/limit/Gradient2Limit.java``
(with ``limit/measurement/ExpAvgMeasurement.java``) and ``limit/VegasLimit.java`` (with
``limit/functions/Log10RootFunction.java``).
"""

from __future__ import annotations

import math
import random

from adaptive_lab.policies.aimd import (
    FailureCounter,
    bound_limit,
    initial_limit,
    is_idle,
    rtt_of,
)
from adaptive_lab.policies.base import Decision, Observation, Policy, param


class ExpAvg:
    """``ExpAvgMeasurement``: plain mean over ``warmup`` samples, then an EMA of ``window``."""

    def __init__(self, window: int, warmup: int = 10) -> None:
        self.window, self.warmup = window, warmup
        self.value, self._sum, self._count = 0.0, 0.0, 0

    def add(self, sample: float) -> float:
        if self._count < self.warmup:
            self._count += 1
            self._sum += sample
            self.value = self._sum / self._count
        else:
            f = 2.0 / (self.window + 1)
            self.value = self.value * (1 - f) + sample * f
        return self.value


class Gradient2Policy(Policy):
    """Grow while task latency stays near its long-term average, shrink when it rises.

    Source: Netflix/concurrency-limits ``limit/Gradient2Limit.java`` (``_update``)::

        long = ExpAvg(longWindow=600, warmup=10).add(rtt)
        if long / rtt > 2: long *= 0.95          # recover fast after overload
        if inflight < limit / 2: hold              # app-limited: don't grow
        gradient = clamp(rttTolerance * long / rtt, 0.5, 1.0)
        new = limit * gradient + queueSize
        new = limit * (1 - smoothing) + new * smoothing
        limit = clamp(new, minLimit, maxLimit); return int(limit)

    Defaults (the source's): smoothing 0.2, long window 600 samples (10 warm-up),
    RTT tolerance 1.5, queue size 4, initial limit 20, bounds 20..200. Here the bounds
    are the pool's ``[min_workers, max_workers]`` and ``initial_limit = 0`` starts
    from the pool's current size. With default smoothing the limit grows by at most
    ``queue_size * smoothing`` = 0.8 per decision.

    Mapping: RTT = ``obs.latency_mean`` (or ``latency_p50``), inflight =
    ``obs.busy``, one decision = one sample. Unknown or non-positive RTT: hold.
    """

    name = "gradient2"
    smoothing: float = param(default=0.2, low=0.0, high=1.0, step=0.05,
                             doc="weight of the new estimate in the limit")
    long_window: int = param(default=600, low=1, high=100_000, step=10,
                             doc="samples in the long-term RTT average")
    rtt_tolerance: float = param(default=1.5, low=1.0, high=10.0, step=0.1,
                                 doc="latency increase tolerated before the limit shrinks")
    queue_size: int = param(default=4, low=0, high=10_000, step=1,
                            doc="growth allowance added to the limit")
    initial_limit: int = param(default=0, low=0, high=100_000, step=1,
                               doc="starting limit (0 = the pool's current size)")
    use_p50: bool = param(default=False, doc="RTT = median task time instead of the mean")

    def reset(self) -> None:
        self._limit: float | None = None
        self._long = ExpAvg(self.long_window, 10)

    def decide(self, obs: Observation) -> Decision:
        if self._limit is None:
            self._limit = float(initial_limit(self.initial_limit, obs))
        limit = self._limit
        rtt = rtt_of(obs, self.use_p50)
        if not (math.isfinite(rtt) and rtt > 0):
            if is_idle(obs):
                self._limit = float(bound_limit(obs.min_workers, obs))
                return Decision(obs.clamp(int(self._limit)),
                                f"idle (no task finished, running or queued): limit "
                                f"{int(limit)} -> {int(self._limit)}")
            return Decision(obs.clamp(int(limit)),
                            f"hold at limit {int(limit)}: rtt unknown ({rtt})")
        long = self._long.add(rtt)
        note = ""
        if long / rtt > 2:
            self._long.value *= 0.95
            note = f"; long rtt decayed to {self._long.value:.4f} s"
        if obs.busy < limit / 2:
            return Decision(
                obs.clamp(int(limit)),
                f"hold at limit {int(limit)}: app-limited (inflight {obs.busy} < "
                f"{limit:.2f} / 2); rtt {rtt:.4f} s, long {long:.4f} s{note}",
            )
        gradient = max(0.5, min(1.0, self.rtt_tolerance * long / rtt))
        new = limit * gradient + self.queue_size
        new = limit * (1 - self.smoothing) + new * self.smoothing
        new = bound_limit(new, obs)
        self._limit = float(new)
        return Decision(
            obs.clamp(int(new)),
            f"gradient {gradient:.3f} (tolerance {self.rtt_tolerance:g} * long {long:.4f} s"
            f" / rtt {rtt:.4f} s): limit {limit:.2f} -> {float(new):.2f}{note}",
        )


def log10_root(x: int) -> int:
    """``Log10RootFunction``: ``max(1, int(log10(x)))`` (1 for x < 1)."""
    if x < 1:
        return 1
    return max(1, int(math.log10(x)))


class VegasPolicy(Policy):
    """TCP-Vegas-style limit: estimate the queue from RTT over the no-load RTT.

    Source: Netflix/concurrency-limits ``limit/VegasLimit.java``. Every
    ``probe_multiplier * limit * jitter`` samples (jitter uniform in [0.5, 1)) the
    current RTT becomes ``rtt_noload``; a new minimum RTT also resets it. Otherwise
    ``queue = ceil(limit * (1 - rtt_noload / rtt))`` and, with ``log = max(1,
    int(log10(limit)))``: a drop -> ``limit - log``; ``inflight * 2 < limit`` ->
    hold; ``queue <= log`` -> ``limit + 6 log`` (beta); ``queue < 3 log`` (alpha) ->
    ``limit + log``; ``queue > 6 log`` -> ``limit - log``; else hold. The new limit
    is clamped and blended: ``(1 - smoothing) * limit + smoothing * new``.

    Defaults (the source's): smoothing 1.0, probe multiplier 30, initial limit 20,
    max 1000. Here the bounds are the pool's and ``initial_limit = 0`` starts from
    the current size. Drop = a task failed since the last decision; RTT =
    ``obs.latency_mean`` (or p50), inflight = ``obs.busy``. The probe jitter comes
    from ``random.Random(seed)``. Unknown or non-positive RTT: hold.
    """

    name = "vegas"
    smoothing: float = param(default=1.0, low=0.0, high=1.0, step=0.05,
                             doc="weight of the new estimate in the limit")
    probe_multiplier: int = param(default=30, low=1, high=10_000, step=1,
                                  doc="re-probe the no-load RTT every ~multiplier * limit samples")
    initial_limit: int = param(default=0, low=0, high=100_000, step=1,
                               doc="starting limit (0 = the pool's current size)")
    use_p50: bool = param(default=False, doc="RTT = median task time instead of the mean")
    seed: int = param(default=0, low=0, high=2**31 - 1, step=1, doc="seed of the probe jitter")

    def reset(self) -> None:
        self._rng = random.Random(self.seed)
        self._limit: float | None = None
        self._noload = 0.0
        self._probe_count = 0
        self._jitter = self._rng.uniform(0.5, 1.0)
        self._failures = FailureCounter()

    def decide(self, obs: Observation) -> Decision:
        failed = self._failures.new_failures(obs)
        if self._limit is None:
            self._limit = float(initial_limit(self.initial_limit, obs))
        limit = self._limit
        rtt = rtt_of(obs, self.use_p50)
        keep = obs.clamp(int(limit))
        if not (math.isfinite(rtt) and rtt > 0):
            if is_idle(obs):
                self._limit = float(bound_limit(obs.min_workers, obs))
                return Decision(obs.clamp(int(self._limit)),
                                f"idle (no task finished, running or queued): limit "
                                f"{int(limit)} -> {int(self._limit)}")
            return Decision(keep, f"hold at limit {int(limit)}: rtt unknown ({rtt})")
        self._probe_count += 1
        if self._jitter * self.probe_multiplier * limit <= self._probe_count:
            self._jitter = self._rng.uniform(0.5, 1.0)
            self._probe_count = 0
            self._noload = rtt
            return Decision(keep, f"hold at limit {int(limit)}: probe, rtt_noload = {rtt:.4f} s")
        if self._noload == 0 or rtt < self._noload:
            self._noload = rtt
            return Decision(keep, f"hold at limit {int(limit)}: new min rtt {rtt:.4f} s")
        queue = math.ceil(limit * (1 - self._noload / rtt))
        lg = log10_root(int(limit))
        alpha, beta, threshold = 3 * lg, 6 * lg, lg
        head = f"queue {queue} (limit {limit:.2f}, rtt {rtt:.4f} s, noload {self._noload:.4f} s)"
        if failed > 0:
            new, why = limit - lg, f"drop ({failed} task(s) failed): -{lg}"
        elif obs.busy * 2 < limit:
            return Decision(keep, f"hold at limit {int(limit)}: app-limited "
                                  f"(inflight {obs.busy} * 2 < {limit:.2f})")
        elif queue <= threshold:
            new, why = limit + beta, f"{head} <= {threshold}: +beta {beta}"
        elif queue < alpha:
            new, why = limit + lg, f"{head} < alpha {alpha}: +{lg}"
        elif queue > beta:
            new, why = limit - lg, f"{head} > beta {beta}: -{lg}"
        else:
            return Decision(keep, f"hold at limit {int(limit)}: {head} in [{alpha}, {beta}]")
        new = float(bound_limit(new, obs))
        new = (1 - self.smoothing) * limit + self.smoothing * new
        self._limit = new
        return Decision(obs.clamp(int(new)), f"{why} -> limit {new:.2f}")
