"""The default policy's state and moves (:mod:`.adaptive` has the decisions).

:class:`State` names what the policy is measuring the current size for;
:class:`ThroughputSeekingMoves` holds the policy's state (``reset``) and the moves several
states share: settle at a home size, grow (under the CPU cap), jump by Little's law,
probe below, descend one step. docs/default-policy.md explains each with the
measurements behind it.
"""

from __future__ import annotations

import enum
import math

from adaptive_lab.policies._throughput import (
    BDP_GAIN,
    GIL_SERIAL_BUSY,
    GIL_SERIAL_USER,
    _busy_in_tasks,
    _Point,
    _Segment,
    bandwidth_delay,
    cpu_cap,
)
from adaptive_lab.policies._throughput_params import ThroughputSeekingParameters
from adaptive_lab.policies.base import Decision, Observation


class State(enum.Enum):
    """What the policy is measuring the current size for."""

    START = "start"  # the first size (or after idling): jump by Little's law next
    CLIMB = "climb"  # a step up: does throughput still scale?
    CRUISE = "cruise"  # the home size: hold, watch for a regime change, probe on time
    PROBE_UP = "probe-up"  # home x probe_step
    PROBE_DOWN = "probe-down"  # home / probe_step (or the bandwidth-delay floor)
    DESCEND = "descend"  # a step down: is throughput still held?




class ThroughputSeekingMoves(ThroughputSeekingParameters):
    """State and shared moves of the default policy (abstract: no ``decide``)."""

    def reset(self) -> None:
        self.state = State.START
        self._measuring: _Segment | None = None  # the size being measured
        self._restart_measure = True
        self._last_target: int | None = None
        self._last_submitted: int | None = None
        self._resized_at = -math.inf
        self._climb_from: _Point | None = None  # the last size that still scaled
        self._home = 0
        self._home_rate = self._home_latency = math.nan  # EWMA at home
        self._up_rate = math.nan  # the last up probe's throughput
        self._kept_rate = self._kept_latency = math.nan  # the last size a descent kept
        self._best_nearby = math.nan  # the throughput a descent must keep
        self._probe_period = self.probe_min
        self._next_probe = math.inf
        self._idle_since: float | None = None
        self._remeasuring = False  # a climb's implausible drop, measured once more
        self._drop_seen = False  # a home drop waiting for confirmation
        self._straddled = False  # the climb's reference straddled a regime change
        self._min_latency = math.nan  # the lowest mean latency in this regime ...
        self._min_latency_at = 0  # ... and the size it was measured at

    # -- moves -------------------------------------------------------------------
    def _up(self, n: int, f: float, obs: Observation) -> int:
        return obs.clamp(max(n + 1, math.ceil(n * f - 1e-9)))

    def _down(self, n: int, f: float, obs: Observation) -> int:
        return obs.clamp(min(n - 1, math.floor(n / f + 1e-9)))

    def _go(self, obs: Observation, target: int, reason: str) -> Decision:
        target = obs.clamp(target)
        if target != obs.workers:
            self._restart_measure = True
            self._resized_at = obs.t
        self._last_target = target
        return Decision(target, reason)

    def _settle(self, obs: Observation, home: int, why: str, fruitful: bool = True) -> Decision:
        self.state = State.CRUISE
        if obs.clamp(home) != self._home:  # a new home: measure it afresh; else keep the
            self._home_rate = self._home_latency = math.nan  # reference (see a change)
        self._home = obs.clamp(home)
        self._probe_period = self.probe_min if fruitful else min(self.probe_max,
                                                                  self._probe_period * 2)
        self._next_probe = obs.t + self._probe_period
        return self._go(obs, self._home, f"settle at {self._home}: {why}")

    def _cap(self, p: _Point, obs: Observation) -> float:
        return cpu_cap(p, obs.cores, self.cpu_limit)

    def _bdp_floor(self, p: _Point) -> int:
        """``BDP_GAIN x X x R_min``: the fewest workers a descent may reach, and where
        a probe below a CPU-bound size goes straight to; 0 when unknown."""
        b = bandwidth_delay(p, self._min_latency, self._min_latency_at)
        return math.ceil(b * BDP_GAIN - 1e-9) if b > 0 else 0

    def _new_regime(self, p: _Point) -> None:
        """The old tasks' latency no longer bounds anything."""
        self._min_latency, self._min_latency_at = (p.latency, p.n) if p.latency > 0 else (
            math.nan, 0)

    def _little_size(self, p: _Point) -> float:
        """Workers that carry ``rate_guess`` tasks/s at ``p``'s latency (0 if the
        workers wait between tasks: GIL-bound, latency cannot show the knee)."""
        return self.rate_guess * p.latency if _busy_in_tasks(p) else 0.0

    def _grow(self, obs: Observation, p: _Point, target: float, what: str, why: str
              ) -> Decision:
        """Grow from ``p.n`` towards ``target``, not past the CPU cap. With less than a
        probe step of room, settle at ``p.n`` (probing below if over-threaded)."""
        cap = self._cap(p, obs)
        if cap < p.n * max(self.probe_step, 1.0 + 1.0 / p.n):
            return self._settle_then_probe(obs, p, p.rate, f"{why}; CPU-bound: {p.cpu:.2f} "
                                                           f"cores busy at {p.n} leave room "
                                                           f"for {cap:.1f} workers")
        if target > cap:
            target, what = math.floor(cap + 1e-9), f"{what}, CPU cap {cap:.1f}"
        self.state, self._climb_from = State.CLIMB, p
        target = obs.clamp(math.ceil(target))
        return self._go(obs, target, f"{why}: {what} {p.n}->{target}")

    def _jump(self, obs: Observation, p: _Point, why: str) -> Decision:
        little = self._little_size(p)
        target = max(self._up(p.n, self.growth, obs), min(little, p.n * self.max_jump))
        return self._grow(obs, p, target, "jump", f"{why} (Little: {self.rate_guess:.0f}/s"
                                                  f" x {p.latency * 1e3:.2f} ms = "
                                                  f"{little:.0f})")

    def _settle_then_probe(self, obs: Observation, home: _Point, up_rate: float, why: str
                           ) -> Decision:
        """Settle at ``home.n``; with more threads than cores (or threads that only take
        turns running Python) keep its measurement as the home reference and probe
        below at once, with ``up_rate`` as the up probe (a loss means stay)."""
        serial = (self.cpu_limit <= 0 and home.n >= 2 and home.cpu < GIL_SERIAL_BUSY
                  and home.user_cpu >= GIL_SERIAL_USER)  # NaN (unknown) fails
        settled = self._settle(obs, home.n, why)
        if not (home.n > obs.cores or serial):
            return settled  # one thread per core or fewer: stay
        self._home_rate, self._home_latency = home.rate, home.latency
        return self._probe_down(obs, up_rate, f"settle at {home.n}: {why}; ",
                                to=self._bdp_floor(home))

    def _probe_down(self, obs: Observation, up_rate: float, why: str = "", to: int = 0
                    ) -> Decision:
        """Measure ``home / probe_step``, or straight ``to`` (the bandwidth-delay floor)
        when lower: a jump far past the knee is undone in one window."""
        self._up_rate = up_rate
        down = self._down(self._home, self.probe_step, obs)
        if 1 <= to < down:
            down, why = obs.clamp(to), f"{why}to the bandwidth-delay floor: "
        if down < self._home:
            self.state = State.PROBE_DOWN
            return self._go(obs, down, f"{why}probe down {self._home}->{down} "
                                       f"(home {self._home_rate:.0f}/s)")
        return self._settle(obs, self._home, f"{why}no room to probe", fruitful=False)

    def _descent_step(self, obs: Observation, p: _Point) -> int:
        """``p.n / growth``, not below the bandwidth-delay floor nor below one thread
        per core when above it (halving 3 threads to 1 on cold files lost 25 %)."""
        cores = int(obs.cores) if p.n > obs.cores >= 1 else 0  # NaN: no floor
        return max(self._down(p.n, self.growth, obs), obs.clamp(self._bdp_floor(p)),
                   obs.clamp(cores) if cores else 0)

    def _regime_jump(self, p: _Point, why: str, obs: Observation) -> Decision:
        self._home_rate = self._home_latency = math.nan  # the old reference is void
        self._straddled = True
        self._new_regime(p)
        return self._jump(obs, p, why)

    # -- deciding ------------------------------------------------------------------
