"""Netflix concurrency-limits' AIMD limit, ported as a policy.

Source: Netflix/concurrency-limits,
``concurrency-limits-core/src/main/java/com/netflix/concurrency/limits/limit/AIMDLimit.java``.
The helpers here (round-trip time, drop detection, limit bounds) are shared with
:mod:`adaptive_lab.policies.gradient`.
"""

from __future__ import annotations

import math

from adaptive_lab.policies.base import Decision, Observation, Policy, param


def rtt_of(obs: Observation, use_p50: bool) -> float:
    """The round-trip time Netflix's limits see: task run time, mean (or median), s."""
    return obs.latency_p50 if use_p50 else obs.latency_mean


class FailureCounter:
    """Turns the cumulative ``obs.failed`` counter into "did tasks fail since last time"."""

    def __init__(self) -> None:
        self._last: int | None = None

    def new_failures(self, obs: Observation) -> int:
        """Failures since the previous observation (0 on the first one)."""
        last, self._last = self._last, obs.failed
        return 0 if last is None else max(0, obs.failed - last)


def initial_limit(param: int, obs: Observation) -> int:
    """``initial_limit`` param, or the pool's current size when it is 0."""
    return param if param > 0 else obs.workers


def is_idle(obs: Observation) -> bool:
    """Nothing running and nothing queued: a pool, unlike a request limit, should then
    give its workers back (the limit drops to the pool's minimum)."""
    return obs.busy <= 0 and obs.queue_depth <= 0


def bound_limit(limit: float, obs: Observation) -> float:
    """Clamp a limit to the pool's bounds (our stand-in for minLimit / maxLimit).

    Compares int bounds with the limit exactly (no float rounding of huge bounds).
    """
    if limit > obs.max_workers:
        return obs.max_workers
    if limit < obs.min_workers:
        return obs.min_workers
    return limit


class AIMDPolicy(Policy):
    """Additive increase, multiplicative decrease on timeouts and failures.

    Source: Netflix/concurrency-limits ``limit/AIMDLimit.java`` (``_update``):
    on a drop or ``rtt > timeout`` the limit becomes ``int(limit * backoff_ratio)``;
    otherwise, if ``inflight * 2 >= limit``, it grows by 1; otherwise it holds (no
    upward drift while the application does not use the limit). The result is
    clamped to ``[minLimit, maxLimit]``.

    Defaults (the source's): backoff ratio 0.9 (the source allows [0.5, 1)), timeout
    5 s, initial limit 20, bounds 20..200. Here the bounds are the pool's
    ``[min_workers, max_workers]`` from the observation, and ``initial_limit = 0``
    (our default) starts from the pool's current size.

    Mapping: the limit is the target worker count; RTT is ``obs.latency_mean`` (or
    ``latency_p50``); inflight is ``obs.busy``; a drop is a task failure since the
    last decision (``obs.failed`` increased). One decision is one sample (Netflix's
    windowed mode); with no task finished in the window (RTT unknown) and no
    failure, the policy holds.
    """

    name = "aimd"
    backoff_ratio: float = param(default=0.9, low=0.5, high=0.99, step=0.01,
                                 doc="multiplicative decrease on a drop or timeout")
    timeout: float = param(default=5.0, low=1e-6, high=3600.0, step=0.1,
                           doc="task run time (s) above which a sample counts as a drop")
    initial_limit: int = param(default=0, low=0, high=100_000, step=1,
                               doc="starting limit (0 = the pool's current size)")
    use_p50: bool = param(default=False, doc="RTT = median task time instead of the mean")

    def reset(self) -> None:
        self._limit: int | None = None
        self._failures = FailureCounter()

    def decide(self, obs: Observation) -> Decision:
        failed = self._failures.new_failures(obs)
        if self._limit is None:
            self._limit = initial_limit(self.initial_limit, obs)
        limit = self._limit
        rtt = rtt_of(obs, self.use_p50)
        if failed > 0 or rtt > self.timeout:
            new = int(limit * self.backoff_ratio)
            why = (f"{failed} task(s) failed" if failed > 0
                   else f"rtt {rtt:.3f} s > timeout {self.timeout:g} s")
            why = f"drop ({why}): limit {limit} * {self.backoff_ratio:g} -> {new}"
        elif not math.isfinite(rtt) and is_idle(obs):
            new = obs.min_workers
            why = f"idle (no task finished, running or queued): limit {limit} -> {new}"
        elif not math.isfinite(rtt):
            new = limit
            why = f"hold at limit {limit}: rtt unknown (no task finished)"
        elif obs.busy * 2 >= limit:
            new = limit + 1
            why = f"inflight {obs.busy} * 2 >= limit {limit}: +1 -> {new}"
        else:
            new = limit
            why = f"hold at limit {limit}: app-limited (inflight {obs.busy} * 2 < {limit})"
        bounded = int(bound_limit(new, obs))
        if bounded != new:
            why += f" (bounded to [{obs.min_workers}, {obs.max_workers}])"
        self._limit = bounded
        return Decision(obs.clamp(bounded), why)
