"""The package's default policy: find the throughput knee, fast, and stay near it.

:class:`ThroughputSeekingPolicy` measures the pool's throughput ``X(n)`` and task
latency ``R`` and searches the size where throughput stops growing, in multiplicative
steps (the knee ranges from 2 to 500 workers). It is a state machine (:class:`State`,
one method per state): START measures the first size and jumps by Little's law, CLIMB
multiplies while throughput scales, CRUISE holds the home size and probes around it
(PROBE_UP, PROBE_DOWN), DESCEND sheds threads that do not pay. Every rule, its sources
(BBR, Little's law, .NET hill climbing, Dask adaptive) and the measurements behind it
are in docs/default-policy.md.

The state is driven only by the observations (``t``, ``dt``, counts), never by the
wall clock, so replays are deterministic. Unknown (NaN) rates mean hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

from adaptive_lab.policies._throughput import (
    LINEAR,
    LITTLE_MIN_UTIL,
    _busy_in_tasks,
    _combined,
    _little_elasticity,
    _Point,
    _Segment,
)
from adaptive_lab.policies._throughput_moves import State, ThroughputSeekingMoves
from adaptive_lab.policies.base import Decision, Observation

__all__ = ["State", "ThroughputSeekingPolicy"]


class ThroughputSeekingPolicy(ThroughputSeekingMoves):
    """Seek the size of maximal throughput: Little's-law jump, multiplicative climb,
    periodic +/- probes, descent when fewer threads do as well, idle shrink."""

    name = "adaptive"
    preferred_interval = 0.05

    def decide(self, obs: Observation) -> Decision:
        n = obs.workers
        fed = obs.submitted - (self._last_submitted or 0)
        self._last_submitted = obs.submitted
        if not (math.isfinite(obs.t) and math.isfinite(obs.dt) and obs.dt > 0
                and math.isfinite(obs.throughput)):
            return Decision(obs.clamp(n), "hold: no throughput measured yet")
        if self._last_target is not None and n != self._last_target:  # resized by hand
            self.state, self._home, self._home_rate = State.CRUISE, n, math.nan
            self._next_probe = obs.t + self._probe_period
            self._restart_measure = True
        if self._restart_measure or self._measuring is None or self._measuring.n != n:
            self._measuring = _Segment(n)
            self._restart_measure = False
        if obs.t - obs.dt + 1e-9 >= self._resized_at + self.settle or obs.dt > 2 * self.settle:
            self._measuring.add(obs, fed)  # else: the transient right after a resize
        x, r = obs.throughput, obs.latency_mean
        busy = max(float(obs.busy), x * r if math.isfinite(r) else 0.0)
        if obs.queue_depth <= 0 and busy < self.idle_util * n:
            return self._under_used(obs, busy)
        self._idle_since = None
        return self._measured(obs)

    def _under_used(self, obs: Observation, busy: float) -> Decision:
        """Queue empty, few busy: an overshooting step settles at the busy workers at
        once; otherwise shrink after ``idle_wait`` (Dask's debounce)."""
        n = obs.workers
        if self._idle_since is None:
            self._idle_since = obs.t
        self._restart_measure = True  # under-used windows say nothing about X(n)
        prev = self._climb_from
        if (self.state is State.CLIMB and prev is not None and n > prev.n
                and obs.t + 1e-9 >= self._resized_at + self.settle + self.window):
            p = self._measuring.point() if self._measuring else _Point(n, math.nan, math.nan)
            floor = self._bdp_floor(_Point(n, obs.throughput, obs.latency_mean, p.cpu))
            need = obs.clamp(max(prev.n, min(math.ceil(busy * self.headroom), floor or n)))
            return self._settle(obs, need, f"overshoot: {busy:.1f} of {n} busy with the "
                                           f"queue empty (x{self.headroom:g}, "
                                           f"bandwidth-delay {floor})")
        idle_for = obs.t - self._idle_since
        need = obs.clamp(max(1, math.ceil(busy * self.headroom)))
        if idle_for + 1e-9 >= self.idle_wait and need < n:
            self.state = State.START
            return self._go(obs, need, f"-{n - need}: idle {idle_for:.1f}s, queue 0, "
                                       f"busy {busy:.1f} of {n} (x{self.headroom:g})")
        return self._go(obs, n, f"hold: under-used ({busy:.1f} busy of {n}, queue 0)")

    def _ready(self, need: float, tasks: float = 0.0) -> bool:
        seg = self._measuring
        assert seg is not None
        if seg.dur + 1e-9 < need:
            return False
        return seg.tasks + 1e-9 >= (tasks or self.min_tasks) or (
            seg.tasks >= 1 and seg.dur >= 10 * max(need, 0.1))

    def _sure_jump(self, obs: Observation) -> bool:
        """A big Little's-law jump is certain (slow tasks, room in the CPU; for a climb
        a linear step and a deep queue): take it on the first window. At the start a
        task per worker will do (50 ms tasks on 2 workers need 0.2 s for 8)."""
        if self.state is State.START:
            ready = self._ready(0.0, min(self.min_tasks, obs.workers))
        else:
            ready = self.state is State.CLIMB and self._ready(0.0)
        if not ready:
            return False
        assert self._measuring is not None
        p, big = self._measuring.point(), obs.workers * self.growth ** 2
        if self.state is State.CLIMB and self._little_climb(obs, p) < big:
            return False
        return self._little_size(p) >= big and self._cap(p, obs) >= big

    def _measured(self, obs: Observation) -> Decision:
        n, seg = obs.workers, self._measuring
        assert seg is not None
        if not (self._sure_jump(obs) or self._ready(self.window)):
            return self._go(obs, n, f"hold: measuring {n} ({seg.tasks:.0f} tasks in "
                                    f"{seg.dur:.2f}s, {self.state.value})")
        p = seg.point()
        self._measuring = _Segment(n)
        if p.latency > 0 and not p.latency >= self._min_latency:  # (NaN: take it)
            self._min_latency, self._min_latency_at = p.latency, p.n
        return self._HANDLERS[self.state](self, obs, p)

    # -- one method per state --------------------------------------------------------
    def _start(self, obs: Observation, p: _Point) -> Decision:
        return self._jump(obs, p, f"start at {p.rate:.0f}/s")

    def _little_climb(self, obs: Observation, p: _Point) -> float:
        """With a deep queue and a linear last step, the Little's-law size (bounded by
        the work there is, queue + workers); else 0."""
        prev = self._climb_from
        if prev is None or obs.queue_depth < p.n:
            return 0.0
        eff_r = _little_elasticity(prev.n, prev.rate, prev.latency, p.n, p.rate, p.latency)
        if not eff_r >= LINEAR:
            return 0.0
        return min(self._little_size(p), p.n * self.max_jump, obs.queue_depth + p.n)

    def _climb(self, obs: Observation, p: _Point) -> Decision:
        prev = self._climb_from
        if prev is None or p.n <= prev.n or prev.rate <= 0:
            return self._settle(obs, p.n, "climb has no lower reference")
        k, gain = p.n / prev.n, p.rate / prev.rate
        eff_x = (gain - 1.0) / (k - 1.0)
        eff_r = _little_elasticity(prev.n, prev.rate, prev.latency, p.n, p.rate, p.latency)
        nums = (f"{prev.n}->{p.n}: {prev.rate:.0f}->{p.rate:.0f}/s, elasticity "
                f"{eff_x:.2f}, Little {eff_r:.2f}")
        if _combined(eff_x, eff_r) >= self.min_gain:
            if p.n >= obs.max_workers:
                return self._settle(obs, p.n, f"still scaling at max_workers ({nums})")
            if obs.queue_depth <= 0 and obs.busy < p.n:  # a bounded producer's window
                return self._settle(obs, p.n, f"nothing waits, {obs.busy} of {p.n} busy "
                                              f"({nums})")
            self._remeasuring = self._straddled = False
            step = self._up(p.n, self.growth, obs)
            little = self._little_climb(obs, p)
            what = f"climb x{self.growth:g}" if little <= step else (
                f"Little climb ({self.rate_guess:.0f}/s x {p.latency * 1e3:.2f} ms, "
                f"queue {obs.queue_depth})")
            return self._grow(obs, p, max(step, little), what, f"{nums} >= {self.min_gain:g}")
        if gain < 1.0 - self.change and not self._remeasuring:
            self._remeasuring = True  # an implausible drop: measure this size once more
            return self._go(obs, p.n, f"re-measure {p.n}: implausible drop ({nums})")
        confirmed_drop = self._remeasuring and gain < 1.0 - self.change
        self._remeasuring = self._drop_seen = False
        if confirmed_drop and _busy_in_tasks(p) and math.isfinite(prev.latency) and (
                p.latency >= 2 * k * prev.latency):
            # latency rose far more than the workers (a GIL queue grows with them): the
            # tasks got slower, the workload changed during the climb
            return self._regime_jump(p, f"regime change during the climb ({nums}, latency "
                                        f"{prev.latency * 1e3:.2f}->"
                                        f"{p.latency * 1e3:.2f} ms)", obs)
        if self._straddled:  # the reference mixed old and new tasks: keep the jump
            self._straddled = False
            return self._settle(obs, p.n, f"keep the jump ({nums}; reference window "
                                          f"straddled the change)")
        if gain >= 1.0 + self.noise:
            return self._settle(obs, p.n, f"best measured, knee between {prev.n} and "
                                          f"{p.n} ({nums})")
        if gain >= 1.0:  # within noise: fewer threads do as well
            return self._settle(obs, prev.n, f"flat ({nums})")
        return self._settle_then_probe(obs, prev, p.rate, f"past the knee ({nums})")

    def _cruise(self, obs: Observation, p: _Point) -> Decision:
        n, ref, ref_r = p.n, self._home_rate, self._home_latency
        if not (math.isfinite(ref) and ref > 0):
            self._home_rate, self._home_latency = p.rate, p.latency
            return self._hold_or_probe(obs, p)
        dropped = p.rate < ref * (1.0 - self.change) and (
            not math.isfinite(p.latency) or not math.isfinite(ref_r)
            or p.latency > ref_r * (1.0 + self.change))
        sure = _busy_in_tasks(p) and p.latency >= 3 * ref_r  # tasks got slower
        if dropped and not sure and not self._drop_seen:
            self._drop_seen = True  # one bad window may be a stall: confirm first
            return self._go(obs, n, f"hold at {n}: {ref:.0f}->{p.rate:.0f}/s, confirming "
                                    f"a regime change")
        self._drop_seen = False
        if sure:  # latency x3 with busy workers: Little's law (x2 may be a GIL queue)
            return self._regime_jump(p, f"regime change: {ref:.0f}->{p.rate:.0f}/s, "
                                        f"latency {ref_r * 1e3:.2f}->"
                                        f"{p.latency * 1e3:.2f} ms", obs)
        if dropped:  # direction unknown (20 ms -> 1 ms behind a GIL queue): probe down
            self._home_rate, self._home_latency = p.rate, p.latency
            self._new_regime(p)
            down = self._down(n, self.growth, obs)
            why = f"regime change ({p.rate:.0f}/s, latency {p.latency * 1e3:.2f} ms)"
            if down < n:
                self.state, self._up_rate = State.PROBE_DOWN, math.nan
                return self._go(obs, down, f"{why}: probe down {n}->{down}")
            return self._probe(obs, p, f"{why}: ")
        if p.rate > ref * (1.0 + self.change):
            self._next_probe = obs.t  # faster tasks: re-probe now
            self._home_rate, self._home_latency = p.rate, p.latency
        else:
            self._home_rate = 0.5 * ref + 0.5 * p.rate
            if math.isfinite(p.latency):
                self._home_latency = p.latency if not math.isfinite(ref_r) else (
                    0.5 * ref_r + 0.5 * p.latency)
        return self._hold_or_probe(obs, p)

    def _hold_or_probe(self, obs: Observation, p: _Point) -> Decision:
        if obs.t + 1e-9 < self._next_probe:
            return self._go(obs, p.n, f"hold at {p.n}: {p.rate:.0f}/s, next probe in "
                                      f"{self._next_probe - obs.t:.1f}s")
        return self._probe(obs, p, "")

    def _probe(self, obs: Observation, p: _Point, why: str) -> Decision:
        up = self._up(p.n, self.probe_step, obs)
        if up > p.n:
            self.state = State.PROBE_UP
            return self._go(obs, up, f"{why}probe up {p.n}->{up} "
                                     f"(home {self._home_rate:.0f}/s)")
        return self._probe_down(obs, math.nan)

    def _probe_up(self, obs: Observation, p: _Point) -> Decision:
        k = p.n / self._home
        need = max(self.min_gain, self.noise / (k - 1.0))
        ref = self._home_rate
        eff = _combined((p.rate / ref - 1.0) / (k - 1.0) if ref > 0 else math.nan,
                        _little_elasticity(self._home, ref, self._home_latency, p.n,
                                           p.rate, p.latency))
        if eff >= need:
            return self._grow(obs, p, self._up(p.n, self.growth, obs), "climb",
                              f"probe up won: {self._home}->{p.n} gives {ref:.0f}->"
                              f"{p.rate:.0f}/s, elasticity {eff:.2f} >= {need:.2f}")
        return self._probe_down(obs, p.rate)

    def _probe_down_done(self, obs: Observation, p: _Point) -> Decision:
        ref, ref_r, up = self._home_rate, self._home_latency, self._up_rate
        low = ref * (1.0 - self.change)
        if p.rate < low and math.isfinite(ref_r) and p.busy / p.n >= LITTLE_MIN_UTIL and (
                (up < low and p.latency >= 2 * ref_r) or p.latency >= 3 * ref_r):
            # far below home and tasks slower: the workload changed during the probes
            return self._regime_jump(p, f"regime change during probes: home {ref:.0f}/s, "
                                        f"up {up:.0f}/s, down {p.rate:.0f}/s, latency "
                                        f"{ref_r * 1e3:.2f}->{p.latency * 1e3:.2f} ms", obs)
        best = max(ref, up) if math.isfinite(up) else ref
        floor = best * (1.0 - self.shrink_tolerance)
        eta = _little_elasticity(p.n, p.rate, p.latency, self._home, ref, ref_r)
        if p.rate >= floor and not eta > self.shrink_elasticity:
            self._best_nearby, self._home = max(best, p.rate), p.n
            self.state, self._probe_period = State.DESCEND, self.probe_min
            self._kept_latency, self._kept_rate = p.latency, p.rate
            nxt = self._descent_step(obs, p)
            if nxt * self.probe_step > p.n:  # less than a probe step of room: stay
                return self._settle(obs, p.n, f"probe down held throughput; at the minimum "
                                              f"({p.rate:.0f}/s x "
                                              f"{self._min_latency * 1e3:.2f} ms)")
            return self._go(obs, nxt, f"probe down held {p.rate:.0f}/s >= {floor:.0f}/s; "
                                      f"descend {p.n}->{nxt}")
        if not math.isfinite(up) and ref > 0 and self._up(self._home, self.growth, obs) > (
                self._home):  # a regime-change probe: lost in proportion -> climb
            k = self._home / p.n
            eff = _combined((ref / p.rate - 1.0) / (k - 1.0) if p.rate > 0 else math.nan,
                            _little_elasticity(p.n, p.rate, p.latency, self._home, ref, ref_r))
            if eff >= 0.5:
                self.state, self._climb_from = State.CLIMB, _Point(self._home, ref, ref_r)
                nxt = self._up(self._home, self.growth, obs)
                return self._go(obs, nxt, f"probe down lost {p.rate:.0f} vs {ref:.0f}/s "
                                          f"(elasticity {eff:.2f}): below the knee, climb "
                                          f"{self._home}->{nxt}")
        return self._settle(obs, self._home, f"probes found nothing (up {up:.0f}, home "
                                             f"{ref:.0f}, down {p.rate:.0f}/s, latency "
                                             f"elasticity {eta:.2f})", fruitful=False)

    def _descend(self, obs: Observation, p: _Point) -> Decision:
        floor = self._best_nearby * (1.0 - self.shrink_tolerance)
        eta = _little_elasticity(p.n, p.rate, p.latency, self._home, self._kept_rate,
                                 self._kept_latency)
        if p.rate >= floor and not eta > self.shrink_elasticity:
            self._home, self._kept_latency, self._kept_rate = p.n, p.latency, p.rate
            self._best_nearby = max(self._best_nearby, p.rate)  # keep the best seen
            nxt = self._descent_step(obs, p)
            if nxt * self.probe_step <= p.n:
                return self._go(obs, nxt, f"descend {p.n}->{nxt}: {p.rate:.0f}/s >= "
                                          f"{floor:.0f}/s")
            return self._settle(obs, p.n, f"descended to the minimum ({p.rate:.0f}/s x "
                                          f"{self._min_latency * 1e3:.2f} ms)")
        return self._settle(obs, self._home, f"descent lost throughput at {p.n} "
                                             f"({p.rate:.0f} vs {floor:.0f}/s, latency "
                                             f"elasticity {eta:.2f})")

    _HANDLERS: ClassVar[dict[State, Callable[..., Decision]]] = {
        State.START: _start, State.CLIMB: _climb, State.CRUISE: _cruise,
                 State.PROBE_UP: _probe_up, State.PROBE_DOWN: _probe_down_done,
                 State.DESCEND: _descend}
