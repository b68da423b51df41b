"""The package's default policy: find the throughput knee, fast, and stay near it.

A thread pool's throughput ``X(n)`` rises about linearly with the worker count ``n``
(``X ~ n / latency``) until something saturates (the GIL, the cores, the disk), then
stays flat or falls by 5-30 % (shared/MEASURED.md). CPU % cannot see that knee in a
GIL-bound process; throughput and task latency can (Little's law: busy = X * R).
:class:`ThroughputSeekingPolicy` searches ``X(n)`` directly, with multiplicative steps:

* **jump** (start, or a regime change): go straight to the Little's-law estimate
  ``rate_guess * R`` (workers needed to carry ``rate_guess`` tasks/s at latency
  ``R``), capped at ``max_jump`` x the current size, and at least ``growth`` x;
* **CPU cap**: no jump or climb goes past the size at which the measured CPU cost per
  task would fill ``cpu_limit`` cores (default: all of them), i.e. ``n * cpu_limit /
  cores busy`` (only once a quarter of them is busy, else the process's fixed overhead
  dominates the reading); with less than a probe step of room the pool stays put. On
  warm local hashing (best size about the core count) this keeps the start size
  instead of a climb whose measurement alone costs a short scan 10-30 %; elsewhere it
  keeps a jump from overshooting the knee (``R / c``, Goetz's ``cores x (1 + W/C)``).
  Pure-Python work cannot use more than one core (the GIL): ``cpu_limit=1`` says so.
  With the CPU full and more threads than cores it probes below at once, straight
  down to the bandwidth-delay floor when that is known (see descent); so it does with
  a thread per core that only take turns running Python (about one core busy, mostly
  in user mode: pure Python, where 1 thread beats 2; not cold reads, whose CPU is the
  kernel's);
* **climb**: multiply the size by ``growth`` while throughput keeps scaling, i.e. its
  elasticity ``(X1/X0 - 1) / (n1/n0 - 1)`` stays >= ``min_gain`` (TCP slow start;
  BBR's "full pipe" test). When it stops, settle on the better of the last two sizes
  (the larger one if it still gained more than ``noise``: a midpoint is an unmeasured
  guess that lost 20 % on the mixed profile, and the probes shed surplus threads);
* **cruise and probe**: hold the home size; every ``probe_min``..``probe_max`` s
  (the period doubles while probes find nothing; a throughput drop without a
  latency rise probes at once) measure ``home * probe_step`` and
  ``home / probe_step`` for ``window`` s each (BBR's ProbeBW gains 1.25/0.75).
  A better upper probe resumes the climb; a lower probe within ``shrink_tolerance``
  of the best nearby throughput starts a **descent** (divide by ``growth`` while
  throughput holds), so surplus threads are shed (bias to fewer threads, as .NET's
  hill climbing), but never below ``2 x X x R_min``: ``X * R_min`` workers carry the
  throughput at the lowest latency measured at under half the size (BBR's
  bandwidth-delay product; only for tasks that mostly wait), and BBR keeps twice that
  in flight (``BDP_GAIN``);
* **regime change**: a home measurement whose throughput falls by more than
  ``change`` while latency rises (e.g. 1 ms -> 20 ms I/O), seen twice (once if latency
  tripled), triggers a new jump if latency tripled (else a probe down: a GIL queue
  can double latency when tasks get faster);
* **overshoot**: a jump or climb step whose pool, once settled, is under-used with an
  empty queue (``X * R / n`` below ``idle_util``) went past what feeds it (the
  scanner's walk and the GIL carry about 5 k tasks/s here, so 20 ms tasks keep about
  100 of 447 workers busy): settle at ``headroom`` x the busy workers at once;
* **idle**: with an empty queue and Little's-law utilisation ``X * R / n`` below
  ``idle_util`` for ``idle_wait`` s, shrink to ``headroom`` x the busy workers (Dask's
  adaptive target with its ``wait_count`` debounce, in seconds).

Sources: Cardwell et al., "BBR: Congestion-Based Congestion Control", ACM Queue 14(5),
2016 (startup gain 2, full-pipe test, ProbeBW gain cycle); Little's law; .NET
``PortableThreadPool.HillClimbing.cs`` (bias toward fewer threads); dask
``distributed/deploy/adaptive_core.py`` (scale down after consecutive
recommendations). Defaults: growth 2, min_gain 0.1, probe_step 1.25, probe every
2-8 s, 0.3 s per measurement after 0.1 s settling, shrink_tolerance 0.03, noise 0.05,
change 0.25, rate_guess 20,000 tasks/s, max_jump 256, cpu_limit all cores, idle_util 0.5 for 1 s,
headroom 1.5, decisions every 0.05 s (the first jump comes after 0.05 s of
measurement when the tasks are short enough to count ``min_tasks`` by then).

The state is driven only by the observations (``t``, ``dt``, counts), never by the
wall clock, so replays are deterministic. Unknown (NaN) rates mean hold.
"""

from __future__ import annotations

import math

from adaptive_lab.policies._throughput import (
    BDP_GAIN,
    CPU_CAP_MIN_BUSY,
    GIL_BUSY,
    GIL_SERIAL_BUSY,
    GIL_SERIAL_USER,
    LITTLE_MIN_UTIL,
    _as_cores,
    _busy_in_tasks,
    _combined,
    _little_elasticity,
    _Point,
    _Segment,
)
from adaptive_lab.policies.base import Decision, Observation, Param, Policy


class ThroughputSeekingPolicy(Policy):
    """Seek the size of maximal throughput: Little's-law jump, multiplicative climb,
    periodic +/- probes, descent when fewer threads do as well, idle shrink.

    See the module docstring for the algorithm, its sources and its defaults.
    """

    name = "adaptive"
    preferred_interval = 0.05
    PARAMS = (
        Param("growth", 2.0, 1.1, 8.0, 0.1,
              "size multiplier per step while throughput keeps scaling (climb/descent)"),
        Param("min_gain", 0.1, 0.0, 1.0, 0.05,
              "keep climbing while throughput elasticity (dX/X)/(dn/n) is at least this"),
        Param("noise", 0.05, 0.0, 0.5, 0.01,
              "relative throughput difference treated as measurement noise"),
        Param("probe_step", 1.25, 1.05, 2.0, 0.05,
              "size multiplier of the periodic up/down probes around the home size"),
        Param("probe_min", 2.0, 0.1, 60.0, 0.1,
              "seconds between probes after a move (doubles while probes find nothing)"),
        Param("probe_max", 8.0, 0.1, 600.0, 0.5,
              "longest time between probes, in seconds (bounds step-change detection)"),
        Param("window", 0.3, 0.0, 10.0, 0.05,
              "seconds of measurement per size (the first, for the start jump, may be shorter)"),
        Param("settle", 0.1, 0.0, 5.0, 0.05,
              "seconds ignored after a resize while threads start or retire"),
        Param("min_tasks", 8, 1, 100_000, 1,
              "completed tasks needed before a measurement counts", int),
        Param("shrink_tolerance", 0.03, 0.0, 0.5, 0.01,
              "shrink when fewer workers keep this close to the best nearby throughput"),
        Param("shrink_elasticity", 0.5, 0.0, 1.0, 0.05,
              "shrink only if latency fell at least (1 - this) x as fast as the workers"),
        Param("change", 0.25, 0.05, 0.95, 0.05,
              "relative throughput drop at the home size that signals a new regime"),
        Param("rate_guess", 20_000.0, 1.0, 1e7, 100.0,
              "assumed peak tasks/s for the first Little's-law jump (biased high: "
              "overshooting the knee costs less than a climb step)"),
        Param("max_jump", 256.0, 1.0, 4096.0, 1.0,
              "largest factor a single Little's-law jump may multiply the size by"),
        Param("cpu_limit", 0.0, 0.0, 1024.0, 0.5,
              "cores the work can keep busy (0: all the cores; 1 for pure Python under "
              "the GIL); no step grows the pool past the size whose measured CPU use "
              "fills them"),
        Param("idle_util", 0.5, 0.0, 1.0, 0.05,
              "utilisation X*R/n below which a pool with an empty queue is oversized"),
        Param("idle_wait", 1.0, 0.0, 60.0, 0.1,
              "seconds of idleness before shrinking (debounce)"),
        Param("headroom", 1.5, 1.0, 4.0, 0.1,
              "workers kept per busy worker when shrinking an idle pool"),
    )

    def _check(self, values: dict) -> None:
        if values["probe_max"] < values["probe_min"]:
            raise ValueError(
                f"ThroughputSeekingPolicy parameter 'probe_max' ({values['probe_max']}) "
                f"must not be below 'probe_min' ({values['probe_min']})"
            )

    def reset(self) -> None:
        self._mode = "start"  # start | climb | home | up | down | descend
        self._seg: _Segment | None = None
        self._new_segment = True
        self._expected: int | None = None
        self._prev: _Point | None = None  # climb: last size that scaled
        self._home = 0
        self._xh = math.nan  # EWMA throughput at home
        self._rh = math.nan  # EWMA latency at home
        self._xup = math.nan
        self._rprev = self._xprev = math.nan  # the last size a descent accepted
        self._xref = math.nan  # best nearby throughput a descent must keep
        self._period = self.probe_min
        self._next_probe = math.inf
        self._idle_since: float | None = None
        self._changed_at = -math.inf
        self._confirming = False
        self._strikes = 0
        self._transitional = False  # the climb's reference straddled a regime change
        self._rmin = math.nan  # lowest mean task latency seen in this regime ...
        self._rmin_n = 0  # ... and the size it was measured at

    # -- helpers ----------------------------------------------------------------
    def _up(self, n: int, f: float, obs: Observation) -> int:
        return obs.clamp(max(n + 1, math.ceil(n * f - 1e-9)))

    def _down(self, n: int, f: float, obs: Observation) -> int:
        return obs.clamp(min(n - 1, math.floor(n / f + 1e-9)))

    def _go(self, obs: Observation, target: int, reason: str) -> Decision:
        target = obs.clamp(target)
        if target != obs.workers:
            self._new_segment = True
            self._changed_at = obs.t
        self._expected = target
        return Decision(target, reason)

    def _settle(self, obs: Observation, home: int, why: str, fruitful: bool = True) -> Decision:
        self._mode = "home"
        if obs.clamp(home) != self._home:  # a new home: measure it afresh; else keep
            self._xh = self._rh = math.nan  # the reference so a change during the
        self._home = obs.clamp(home)         # probes is still noticed
        self._period = self.probe_min if fruitful else min(self.probe_max, self._period * 2)
        self._next_probe = obs.t + self._period
        return self._go(obs, self._home, f"settle at {self._home}: {why}")

    def _cpu_cap(self, p: _Point, obs: Observation) -> float:
        """The largest size the CPU leaves room for: ``p.n`` workers kept ``p.u`` cores
        busy, so ``p.n * limit / p.u`` workers fill ``limit`` cores (inf when unknown).
        It is Little's law with the measured CPU cost per task ``c`` in place of
        ``rate_guess`` (``n / u = R / c``: Goetz's wait-to-compute ratio)."""
        limit = self.cpu_limit if self.cpu_limit > 0 else obs.cores
        if not (limit > 0 and p.u >= CPU_CAP_MIN_BUSY * limit):  # NaN fails too
            return math.inf
        if self.cpu_limit <= 0 and p.u >= GIL_BUSY and p.n >= obs.cores:
            return float(p.n)  # the GIL is saturated: more threads only queue for it
        return p.n * limit / p.u

    def _capped_up(self, obs: Observation, p: _Point, target: float, what: str, why: str
                   ) -> Decision:
        """Grow from ``p.n`` towards ``target``, but not past the CPU cap. When the cap
        leaves less than a probe step of room, settle at ``p.n``, and with more threads
        than cores probe below it at once."""
        cap = self._cpu_cap(p, obs)
        if cap < p.n * max(self.probe_step, 1.0 + 1.0 / p.n):  # not one more worker
            # more threads than cores and the CPU full: fewer threads may do as well
            # (1 ms storage: 27 threads where 8 do better)
            return self._settle_then_probe(obs, p, p.x, f"{why}; CPU-bound: {p.u:.2f} "
                                                        f"cores busy at {p.n} leave room "
                                                        f"for {cap:.1f} workers")
        if target > cap:
            target, what = math.floor(cap + 1e-9), f"{what}, CPU cap {cap:.1f}"
        self._mode, self._prev = "climb", p
        target = obs.clamp(math.ceil(target))
        return self._go(obs, target, f"{why}: {what} {p.n}->{target}")

    def _regime(self, p: _Point) -> None:
        """A new regime: the old tasks' latency no longer bounds anything."""
        self._rmin, self._rmin_n = (p.r, p.n) if p.r > 0 else (math.nan, 0)

    def _bdp(self, p: _Point) -> float:
        """Workers needed to carry ``p.x`` at the lowest latency seen, ``X * R_min``
        (Little's law; BBR's bandwidth-delay product), or NaN when unknown. Only for
        tasks whose latency is mostly waiting (CPU per task under a quarter of it),
        since a GIL queue inflates the latency of CPU-heavy tasks; and only when that
        latency was measured at under half the size (less contention), else it is just
        ``X R = n`` and says nothing."""
        r = self._rmin
        if not (r > 0 and p.x > 0 and 2 * self._rmin_n <= p.n):
            return math.nan
        c = p.u / p.x if p.u > 0 else math.nan
        if c >= 0.25 * r:
            return math.nan
        return p.x * r

    def _bdp_floor(self, p: _Point) -> int:
        """The fewest workers a descent may reach, ``BDP_GAIN x X x R_min``, and where
        a probe below a CPU-bound size goes straight to; 0 when unknown."""
        b = self._bdp(p)
        return math.ceil(b * BDP_GAIN - 1e-9) if b > 0 else 0

    def _descent_step(self, obs: Observation, p: _Point) -> int:
        """The next size of a descent from ``p``: ``p.n / growth``, but not below the
        bandwidth-delay floor, nor below one thread per core when above it (halving 3
        threads to 1 on cold files lost 25 %; the periodic probes may still try fewer).
        """
        cores = int(obs.cores) if p.n > obs.cores >= 1 else 0  # unknown (NaN): no floor
        return max(self._down(p.n, self.growth, obs), obs.clamp(self._bdp_floor(p)),
                   obs.clamp(cores) if cores else 0)

    def _settle_then_probe(self, obs: Observation, home: _Point, xup: float, why: str
                           ) -> Decision:
        """Settle at ``home.n``. With more threads than cores (or threads that only
        take turns running Python, see ``GIL_SERIAL_BUSY``), keep ``home``'s
        measurement as the home reference and probe below at once (straight down to
        the bandwidth-delay floor when known), with ``xup`` (the larger size's
        throughput) as the up probe, so a loss means "stay", never "climb". Otherwise,
        at one thread per core or fewer, just stay (1 thread lost 25 % to 2 on cold
        files)."""
        serial = (self.cpu_limit <= 0 and home.n >= 2 and home.u < GIL_SERIAL_BUSY
                  and home.uu >= GIL_SERIAL_USER)  # NaN (unknown) fails
        settled = self._settle(obs, home.n, why)
        if not (home.n > obs.cores or serial):
            return settled
        self._xh, self._rh = home.x, home.r
        return self._probe_down(obs, xup, f"settle at {home.n}: {why}; ",
                                to=self._bdp_floor(home))

    def _jump(self, obs: Observation, p: _Point, why: str) -> Decision:
        cap = self.rate_guess  # not the best seen: capacity falls with the thread count
        # GIL-bound (workers wait between tasks): latency cannot show the knee, x growth
        little = cap * p.r if _busy_in_tasks(p) else 0.0
        target = max(self._up(p.n, self.growth, obs), min(little, p.n * self.max_jump))
        return self._capped_up(obs, p, target, "jump", f"{why} (Little: {cap:.0f}/s x "
                                                       f"{p.r * 1e3:.2f} ms = {little:.0f})")

    # -- deciding ---------------------------------------------------------------
    def decide(self, obs: Observation) -> Decision:
        n = obs.workers
        if not (math.isfinite(obs.t) and math.isfinite(obs.dt) and obs.dt > 0
                and math.isfinite(obs.throughput)):
            return Decision(obs.clamp(n), "hold: no throughput measured yet")
        if self._expected is not None and n != self._expected:  # resized by someone else
            self._mode, self._home, self._xh = "home", n, math.nan
            self._next_probe = obs.t + self._period
            self._new_segment = True
        if self._new_segment or self._seg is None or self._seg.n != n:
            self._seg = _Segment(n)
            self._new_segment = False
        if obs.t - obs.dt + 1e-9 >= self._changed_at + self.settle or obs.dt > 2 * self.settle:
            self._seg.add(obs)  # else: the transient right after a resize

        x, r = obs.throughput, obs.latency_mean
        busy = max(float(obs.busy), x * r if math.isfinite(r) else 0.0)
        if obs.queue_depth <= 0 and busy < self.idle_util * n:
            if self._idle_since is None:
                self._idle_since = obs.t
            self._new_segment = True  # under-used windows say nothing about X(n)
            prev = self._prev
            if (self._mode == "climb" and prev is not None and n > prev.n
                    and obs.t + 1e-9 >= self._changed_at + self.settle + self.window):
                # a jump or climb step overshot what the work can use: whatever feeds
                # the pool (the scanner's walk, the GIL) carries only `busy` workers
                # (or the bandwidth-delay product, if lower: the busy ones are slowed
                # by the idle ones' share of the GIL)
                floor = self._bdp_floor(_Point(n, x, r, _as_cores(obs.process_cpu_percent,
                                                                    obs)))
                need = obs.clamp(max(prev.n, min(math.ceil(busy * self.headroom),
                                                 floor or n)))
                return self._settle(obs, need, f"overshoot: {busy:.1f} of {n} busy with "
                                               f"the queue empty (x{self.headroom:g}, "
                                               f"bandwidth-delay {floor})")
            idle_for = obs.t - self._idle_since
            need = obs.clamp(max(1, math.ceil(busy * self.headroom)))
            if idle_for + 1e-9 >= self.idle_wait and need < n:
                self._mode = "start"
                return self._go(obs, need, f"-{n - need}: idle {idle_for:.1f}s, queue 0, "
                                           f"busy {busy:.1f} of {n} (x{self.headroom:g})")
            return self._go(obs, n, f"hold: under-used ({busy:.1f} busy of {n}, queue 0)")
        self._idle_since = None
        return self._search(obs)

    def _ready(self, need: float) -> bool:
        seg = self._seg
        assert seg is not None
        if seg.dur + 1e-9 < need:
            return False
        return seg.tasks + 1e-9 >= self.min_tasks or (seg.tasks >= 1 and seg.dur >= 10 * max(
            need, 0.1))

    def _search(self, obs: Observation) -> Decision:
        n, mode = obs.workers, self._mode
        need = self.window
        if mode == "start" and self._ready(0.0):
            pt = self._seg.point()
            big = n * self.growth ** 2
            if _busy_in_tasks(pt) and pt.r * self.rate_guess >= big and (
                    self._cpu_cap(pt, obs) >= big):
                need = 0.0  # slow tasks: a big jump is certain, take it at once
        if not self._ready(need):
            seg = self._seg
            return self._go(obs, n, f"hold: measuring {n} ({seg.tasks:.0f} tasks in "
                                    f"{seg.dur:.2f}s, mode {mode})")
        p = self._seg.point()
        self._seg = _Segment(n)
        if p.r > 0 and not p.r >= self._rmin:  # (NaN rmin: take p.r)
            self._rmin, self._rmin_n = p.r, p.n
        if mode == "start":
            return self._jump(obs, p, f"start at {p.x:.0f}/s")
        if mode == "climb":
            return self._climb(obs, p)
        if mode == "home":
            return self._cruise(obs, p)
        if mode == "up":
            return self._after_up(obs, p)
        if mode == "down":
            return self._after_down(obs, p)
        return self._descend(obs, p)

    def _climb(self, obs: Observation, p: _Point) -> Decision:
        prev = self._prev
        if prev is None or p.n <= prev.n or prev.x <= 0:
            return self._settle(obs, p.n, "climb has no lower reference")
        k, gain = p.n / prev.n, p.x / prev.x
        eff_x = (gain - 1.0) / (k - 1.0)
        eff_r = _little_elasticity(prev.n, prev.x, prev.r, p.n, p.x, p.r)
        eff = _combined(eff_x, eff_r)
        nums = (f"{prev.n}->{p.n}: {prev.x:.0f}->{p.x:.0f}/s, elasticity {eff_x:.2f}, "
                f"Little {eff_r:.2f}")
        if eff >= self.min_gain:
            if p.n >= obs.max_workers:
                return self._settle(obs, p.n, f"still scaling at max_workers ({nums})")
            self._confirming, self._transitional = False, False
            return self._capped_up(obs, p, self._up(p.n, self.growth, obs),
                                   f"climb x{self.growth:g}", f"{nums} >= {self.min_gain:g}")
        if gain < 1.0 - self.change and not self._confirming:
            self._confirming = True  # an implausible drop: measure this size once more
            return self._go(obs, p.n, f"re-measure {p.n}: implausible drop ({nums})")
        confirmed_drop = self._confirming and gain < 1.0 - self.change
        self._confirming = False
        self._strikes = 0
        if confirmed_drop and _busy_in_tasks(p) and math.isfinite(prev.r) and (
                p.r >= 2 * k * prev.r):
            # past a knee throughput falls 5-30 %, not this much, and latency rose far
            # more than the workers did (a GIL queue grows with them): the tasks got
            # slower, the workload changed during the climb (1 ms -> 20 ms I/O)
            self._transitional = True
            self._regime(p)
            return self._jump(obs, p, f"regime change during the climb ({nums}, latency "
                                      f"{prev.r * 1e3:.2f}->{p.r * 1e3:.2f} ms)")
        if self._transitional:
            # the reference straddled the change (old and new tasks): keep the size
            # Little's law chose; the probes correct it
            self._transitional = False
            return self._settle(obs, p.n, f"keep the jump ({nums}; reference window "
                                          f"straddled the change)")
        if gain >= 1.0 + self.noise:
            return self._settle(obs, p.n, f"best measured, knee between {prev.n} and "
                                          f"{p.n} ({nums})")
        if gain >= 1.0:  # within noise: fewer threads do as well
            return self._settle(obs, prev.n, f"flat ({nums})")
        # more threads lost: settle on the smaller size, keeping its measurement as the
        # home reference (a step change right after is noticed in one window), and
        # probe below at once with the larger size as the up probe: a jump may have
        # landed past the knee too (1 ms storage: 27 threads where 8 do better)
        return self._settle_then_probe(obs, prev, p.x, f"past the knee ({nums})")

    def _cruise(self, obs: Observation, p: _Point) -> Decision:
        n = p.n
        if math.isfinite(self._xh) and self._xh > 0:
            slower = not math.isfinite(p.r) or not math.isfinite(self._rh) or (
                p.r > self._rh * (1.0 + self.change))
            busy_in_tasks = math.isfinite(p.r) and p.x * p.r / n >= LITTLE_MIN_UTIL
            # latency x3 with busy workers is no stall: tasks got slower; act at once
            sure = busy_in_tasks and p.r >= 3 * self._rh
            if p.x < self._xh * (1.0 - self.change) and slower and not sure and (
                    self._strikes < 1):
                self._strikes += 1  # one bad window may be a stall: confirm first
                return self._go(obs, n, f"hold at {n}: {self._xh:.0f}->{p.x:.0f}/s, "
                                        f"confirming a regime change")
            if (p.x < self._xh * (1.0 - self.change) and slower) or sure:
                # (sure alone: latency x3 with busy workers although throughput held,
                # i.e. the home reference came from a window straddling the change)
                self._strikes = 0
                if sure:
                    # tasks themselves got slower (1 ms -> 20 ms I/O): Little's law. Only
                    # at x3: a GIL queue doubles the latency of too many threads when
                    # tasks get *faster* (5 ms -> 0.1 ms at 64 threads), so x2 probes
                    why = (f"regime change: {self._xh:.0f}->{p.x:.0f}/s, latency "
                           f"{self._rh * 1e3:.2f}->{p.r * 1e3:.2f} ms")
                    self._xh = self._rh = math.nan  # the old regime's reference is void
                    self._transitional = True
                    self._regime(p)
                    return self._jump(obs, p, why)
                # Otherwise (e.g. 20 ms -> 1 ms with far too many threads, where the GIL
                # queue hides the shorter waits, or other tenants taking the CPU) only
                # probing tells which way to go: down by `growth` first.
                self._xh, self._rh = p.x, p.r
                self._regime(p)
                down = self._down(n, self.growth, obs)
                why = (f"regime change ({p.x:.0f}/s, latency {p.r * 1e3:.2f} ms, "
                       f"{p.x * p.r / n if math.isfinite(p.r) else math.nan:.2f} busy)")
                if down < n:
                    self._mode, self._xup = "down", math.nan
                    return self._go(obs, down, f"{why}: probe down {n}->{down}")
                self._next_probe = obs.t
                return self._probe(obs, p, f"{why}: ")
            self._strikes = 0
            if p.x > self._xh * (1.0 + self.change):
                self._next_probe = obs.t  # faster tasks: re-probe now
                self._xh, self._rh = p.x, p.r
            else:
                self._xh = 0.5 * self._xh + 0.5 * p.x
                if math.isfinite(p.r):
                    self._rh = p.r if not math.isfinite(self._rh) else (
                        0.5 * self._rh + 0.5 * p.r)
        else:
            self._xh, self._rh = p.x, p.r
        if obs.t + 1e-9 < self._next_probe:
            return self._go(obs, n, f"hold at {n}: {p.x:.0f}/s, next probe in "
                                    f"{self._next_probe - obs.t:.1f}s")
        return self._probe(obs, p, "")

    def _probe(self, obs: Observation, p: _Point, why: str) -> Decision:
        n = p.n
        up = self._up(n, self.probe_step, obs)
        if up > n:
            self._mode = "up"
            return self._go(obs, up, f"{why}probe up {n}->{up} (home {self._xh:.0f}/s)")
        return self._probe_down(obs, math.nan)

    def _probe_down(self, obs: Observation, xup: float, why: str = "", to: int = 0
                    ) -> Decision:
        """Measure below home: ``home / probe_step``, or straight down to ``to`` (the
        bandwidth-delay floor, when known) if that is lower: a jump that landed far
        past the knee (409 threads where 128 do as well) is undone in one window."""
        self._xup = xup
        down = self._down(self._home, self.probe_step, obs)
        if 1 <= to < down:
            down, why = obs.clamp(to), f"{why}to the bandwidth-delay floor: "
        if down < self._home:
            self._mode = "down"
            return self._go(obs, down, f"{why}probe down {self._home}->{down} "
                                       f"(home {self._xh:.0f}/s)")
        return self._settle(obs, self._home, f"{why}no room to probe", fruitful=False)

    def _after_up(self, obs: Observation, p: _Point) -> Decision:
        k = p.n / self._home
        need = max(self.min_gain, self.noise / (k - 1.0))
        eff = _combined((p.x / self._xh - 1.0) / (k - 1.0) if self._xh > 0 else math.nan,
                        _little_elasticity(self._home, self._xh, self._rh, p.n, p.x, p.r))
        if eff >= need:
            return self._capped_up(obs, p, self._up(p.n, self.growth, obs), "climb",
                                   f"probe up won: {self._home}->{p.n} gives "
                                   f"{self._xh:.0f}->{p.x:.0f}/s, elasticity {eff:.2f} >= "
                                   f"{need:.2f}")
        return self._probe_down(obs, p.x)

    def _after_down(self, obs: Observation, p: _Point) -> Decision:
        low = self._xh * (1.0 - self.change)
        if p.x < low and math.isfinite(self._rh) and p.x * p.r / p.n >= LITTLE_MIN_UTIL and (
                (self._xup < low and p.r >= 2 * self._rh) or p.r >= 3 * self._rh):
            # the probe (or both) far below home and tasks slower: the workload changed
            # during the probes (e.g. 1 ms -> 20 ms I/O); a probe down past the knee
            # loses little and leaves latency flat or lower
            why = (f"regime change during probes: home {self._xh:.0f}/s, up "
                   f"{self._xup:.0f}/s, down {p.x:.0f}/s, latency {self._rh * 1e3:.2f}->"
                   f"{p.r * 1e3:.2f} ms")
            self._xh = self._rh = math.nan
            self._transitional = True
            self._regime(p)
            return self._jump(obs, p, why)
        ref = max(self._xh, self._xup) if math.isfinite(self._xup) else self._xh
        floor = ref * (1.0 - self.shrink_tolerance)
        eta = _little_elasticity(p.n, p.x, p.r, self._home, self._xh, self._rh)
        if p.x >= floor and not eta > self.shrink_elasticity:
            self._xref, self._home, self._mode = max(ref, p.x), p.n, "descend"
            self._rprev, self._xprev = p.r, p.x
            self._period = self.probe_min
            nxt = self._descent_step(obs, p)
            if nxt * self.probe_step > p.n:  # less than a probe step of room: stay
                return self._settle(obs, p.n, f"probe down held throughput; at the minimum "
                                              f"({p.x:.0f}/s x {self._rmin * 1e3:.2f} ms)")
            return self._go(obs, nxt, f"probe down held {p.x:.0f}/s >= {floor:.0f}/s; "
                                      f"descend {p.n}->{nxt}")
        if not math.isfinite(self._xup) and self._xh > 0 and self._up(
                self._home, self.growth, obs) > self._home:
            # no up probe was made (a regime-change probe): a down probe that lost
            # throughput in proportion says we are below the knee, so climb instead
            k = self._home / p.n
            eff = _combined((self._xh / p.x - 1.0) / (k - 1.0) if p.x > 0 else math.nan,
                            _little_elasticity(p.n, p.x, p.r, self._home, self._xh, self._rh))
            if eff >= 0.5:
                self._mode, self._prev = "climb", _Point(self._home, self._xh, self._rh)
                up = self._up(self._home, self.growth, obs)
                return self._go(obs, up, f"probe down lost {p.x:.0f} vs {self._xh:.0f}/s "
                                         f"(elasticity {eff:.2f}): below the knee, climb "
                                         f"{self._home}->{up}")
        return self._settle(obs, self._home, f"probes found nothing (up {self._xup:.0f}, "
                                             f"home {self._xh:.0f}, down {p.x:.0f}/s, "
                                             f"latency elasticity {eta:.2f})",
                            fruitful=False)

    def _descend(self, obs: Observation, p: _Point) -> Decision:
        floor = self._xref * (1.0 - self.shrink_tolerance)
        eta = _little_elasticity(p.n, p.x, p.r, self._home, self._xprev, self._rprev)
        if p.x >= floor and not eta > self.shrink_elasticity:
            self._home, self._rprev, self._xprev = p.n, p.r, p.x
            self._xref = max(self._xref, p.x)  # later steps must keep the best seen
            nxt = self._descent_step(obs, p)
            if nxt * self.probe_step <= p.n:  # (less room than a probe step: stay)
                return self._go(obs, nxt, f"descend {p.n}->{nxt}: {p.x:.0f}/s >= "
                                          f"{floor:.0f}/s")
            return self._settle(obs, p.n, f"descended to the minimum ({p.x:.0f}/s x "
                                          f"{self._rmin * 1e3:.2f} ms)")
        return self._settle(obs, self._home, f"descent lost throughput at {p.n} "
                                             f"({p.x:.0f} vs {floor:.0f}/s, latency "
                                             f"elasticity {eta:.2f})")
