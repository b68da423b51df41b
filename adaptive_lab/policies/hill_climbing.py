"""The .NET thread pool's hill-climbing controller, ported as a policy.

Source: dotnet/runtime,
``src/libraries/System.Private.CoreLib/src/System/Threading/PortableThreadPool.HillClimbing.cs``
(``HillClimbing.Update`` and ``GetWaveComponent``), with the defaults of
``CreateHillClimber`` and ``CpuUtilizationHigh = 95`` from ``PortableThreadPool``.
"""

from __future__ import annotations

import cmath
import math
import random
from collections import deque

from adaptive_lab.policies.base import Decision, Observation, Policy, param


def _wave_component(samples: list[float], total: int, count: int, period: float) -> complex:
    """Goertzel filter: the component of the last ``count`` samples at ``period``.

    ``samples`` is the circular history, ``total`` the number of samples ever added.
    Same arithmetic as ``HillClimbing.GetWaveComponent``.
    """
    size = len(samples)
    w = 2.0 * math.pi / period
    cos = math.cos(w)
    coeff = 2.0 * cos
    q1 = q2 = 0.0
    for i in range(count):
        q0 = coeff * q1 - q2 + samples[(total - count + i) % size]
        q2, q1 = q1, q0
    return complex(q1 - q2 * cos, q2 * math.sin(w)) / count


class HillClimbingPolicy(Policy):
    """.NET thread pool hill climbing: a square-wave probe read by a Goertzel filter.

    Source: dotnet/runtime ``PortableThreadPool.HillClimbing.cs``. Every sample the
    controller records (throughput, thread count); once it has at least two wave
    periods of history it measures, with a Goertzel filter at ``wave_period``, how
    much of the thread-count square wave shows up in throughput (``ratio``), versus
    the noise in the two neighbouring frequency bands (EWMA ``error_smoothing``).
    ``ratio = (throughput wave - bias * thread wave) / thread wave`` (both relative to
    their means), ``move = clamp(ratio.real, -1, 1) * clamp(confidence, 0, 1)``, raised to
    ``gain_exponent`` (sign kept), times ``max_change_per_second * sample seconds``,
    capped at ``max_change_per_sample`` upward; a positive move is refused when CPU >
    ``cpu_high``. The target is ``control setting + wave magnitude * phase``, the
    phase flipping every ``wave_period / 2`` samples.

    Defaults (the source's): wave period 4, max wave magnitude 20, magnitude
    multiplier 1.0, history 8 periods (32 samples), bias toward fewer threads 0.15,
    target signal-to-noise 3.0, max change 4 threads per second and 20 per sample,
    sample interval random in 10-200 ms, error smoothing 0.01, gain exponent 2.0,
    max sample error 15 %, CPU guard 95 %.

    Mapping to adaptive_lab: each decision contributes ``obs.throughput * obs.dt``
    completions over ``obs.dt`` seconds at ``obs.workers`` threads (the size in
    effect during the window). Observations are accumulated until the policy's own
    random sample interval (drawn from ``random.Random(seed)``) has elapsed, so a
    fast controller (50 ms) gets .NET's cadence and a slow one (5 s) makes every
    decision one sample (with a larger gain, as in the source). ``min_workers`` /
    ``max_workers`` of the observation are the pool's min/max threads. If the pool
    size differs from the last target (resized by hand, or clamped), the control
    setting follows it (``ForceChange``). The CPU guard reads
    ``obs.process_cpu_percent`` when ``process_cpu`` is true (what .NET measures on
    Unix, via ``getrusage``), else ``obs.cpu_percent`` (Windows); unknown CPU means
    no guard. Unknown throughput or window length: hold. No completion yet: hold
    and keep extending the window (.NET calls ``Update`` from a work-item completion
    once the sample interval has passed, so idle time lengthens the sample).

    Idle threads: ``HillClimbing.cs`` never shrinks an idle pool (no completions,
    no sample). The .NET pool does it elsewhere: a worker that waits 20 s for work
    exits and lowers the goal (``PortableThreadPool.WorkerThread.cs``,
    ``ShouldExitWorker``, ``ThreadPoolThreadTimeoutMs = 20 000``), telling hill
    climbing via ``ForceChange``. ``idle_timeout`` (default 20 s, 0 = off) ports
    that: threads idle (``workers - busy`` with an empty queue) throughout the last
    ``idle_timeout`` seconds leave.
    """

    name = "hill_climbing"
    wave_period: int = param(default=4, low=2, high=64, step=1,
                             doc="samples per square-wave period (Goertzel bin)")
    max_wave_magnitude: int = param(default=20, low=1, high=1000, step=1,
                                    doc="largest wave amplitude in threads")
    wave_magnitude_multiplier: float = param(
        default=1.0, low=0.0, high=10.0, step=0.1,
        doc="scales the wave amplitude computed from the noise level")
    wave_history_size: int = param(default=8, low=1, high=64, step=1,
                                   doc="wave periods of history analysed")
    bias: float = param(default=0.15, low=0.0, high=1.0, step=0.01,
                        doc="target throughput ratio: bias toward fewer threads")
    target_snr: float = param(default=3.0, low=0.1, high=100.0, step=0.1,
                              doc="signal-to-noise ratio for full confidence")
    max_change_per_second: float = param(default=4.0, low=0.0, high=1000.0, step=0.5,
                                         doc="gain: threads per second of sample at full move")
    max_change_per_sample: float = param(default=20.0, low=0.0, high=10_000.0, step=1.0,
                                         doc="cap on one upward move, in threads")
    sample_interval_low: float = param(default=0.010, low=0.0, high=60.0, step=0.005,
                                       doc="shortest random sample interval, seconds")
    sample_interval_high: float = param(default=0.200, low=0.0, high=60.0, step=0.005,
                                        doc="longest random sample interval, seconds")
    error_smoothing: float = param(default=0.01, low=0.0, high=1.0, step=0.01,
                                   doc="EWMA weight of the newest throughput-noise estimate")
    gain_exponent: float = param(default=2.0, low=0.1, high=10.0, step=0.1,
                                 doc="non-linear gain: small moves shrink, large ones grow")
    max_sample_error: float = param(
        default=0.15, low=0.0, high=10.0, step=0.01,
        doc="accumulate a sample until (threads-1)/completions is below this")
    cpu_high: float = param(default=95.0, low=0.0, high=100.0, step=1.0,
                            doc="refuse to add threads above this CPU %")
    process_cpu: bool = param(
        default=True,
        doc="guard on this process's CPU % (.NET on Unix) instead of system CPU %")
    idle_timeout: float = param(
        default=20.0, low=0.0, high=3600.0, step=1.0,
        doc="idle threads exit after this many seconds (0 = never), as .NET workers do")
    seed: int = param(default=0, low=0, high=2**31 - 1, step=1,
                      doc="seed of the random sample interval")

    def _check(self, values: dict) -> None:
        if values["sample_interval_low"] > values["sample_interval_high"]:
            raise ValueError(
                f"HillClimbingPolicy parameter 'sample_interval_low' "
                f"({values['sample_interval_low']}) must not exceed 'sample_interval_high' "
                f"({values['sample_interval_high']})"
            )

    def reset(self) -> None:
        self._rng = random.Random(self.seed)
        size = self.wave_period * self.wave_history_size
        self._samples = [0.0] * size
        self._thread_counts = [0.0] * size
        self._total_samples = 0
        self._control = 0.0
        self._last_thread_count = 0
        self._avg_noise = 0.0
        self._acc_seconds = 0.0  # .NET's _accumulatedSampleDurationSeconds
        self._acc_completions = 0.0
        self._window_seconds = 0.0  # our cadence: observations since the last sample
        self._window_completions = 0.0
        self._current_sample_s = self._draw_interval()
        self._next_sample_s = self._current_sample_s
        self._idle: deque[tuple[float, int]] = deque()  # (t, idle threads)

    def _draw_interval(self) -> float:
        """``Random.Next(low, high + 1)`` ms, in seconds (uniform; ms grain when it fits)."""
        lo, hi = self.sample_interval_low, self.sample_interval_high
        lo_ms, hi_ms = lo * 1000.0, hi * 1000.0
        if lo_ms == int(lo_ms) and hi_ms == int(hi_ms):
            return self._rng.randint(int(lo_ms), int(hi_ms)) / 1000.0
        return self._rng.uniform(lo, hi)

    # -- the source's Update ----------------------------------------------------
    def _update(self, obs: Observation, seconds: float, completions: float) -> Decision:
        n = obs.workers
        lo, hi = obs.min_workers, obs.max_workers
        notes = []
        if n != self._last_thread_count:  # ForceChange(currentThreadCount, Initializing)
            self._control += n - self._last_thread_count
            self._change_thread_count(n)
            notes.append(f"control follows size {n}")
        seconds += self._acc_seconds
        completions += self._acc_completions
        if self._total_samples > 0:
            if completions > 0:
                error = (n - 1.0) / completions
            else:  # C# double division: x/0 = +-inf, 0/0 = NaN (never >= limit)
                error = math.inf if n > 1 else -math.inf
            if error >= self.max_sample_error:
                self._acc_seconds, self._acc_completions = seconds, completions
                self._next_sample_s = 0.010
                return Decision(
                    obs.clamp(n),
                    f"hold at {n}: sample too noisy ({completions:.0f} completions for {n} "
                    f"threads, error {error:.2f} >= {self.max_sample_error:g}); "
                    f"accumulating {seconds:.3f} s",
                )
        self._acc_seconds = self._acc_completions = 0.0
        throughput = completions / seconds
        size = len(self._samples)
        idx = self._total_samples % size
        self._samples[idx] = throughput
        self._thread_counts[idx] = float(n)
        self._total_samples += 1
        total, period = self._total_samples, self.wave_period

        ratio, confidence, state = 0j, 0.0, "warmup"
        count = min(total - 1, size) // period * period
        if count > period:
            avg_tp = sum(self._samples[(total - count + i) % size] for i in range(count)) / count
            avg_n = sum(self._thread_counts[(total - count + i) % size] for i in range(count))
            avg_n /= count
            if avg_tp > 0 and avg_n > 0:
                adj1 = count / (count / period + 1)
                adj2 = count / (count / period - 1)
                tp_wave = _wave_component(self._samples, total, count, period) / avg_tp
                err = abs(_wave_component(self._samples, total, count, adj1) / avg_tp)
                if adj2 <= count:
                    err = max(err, abs(_wave_component(self._samples, total, count, adj2) / avg_tp))
                n_wave = _wave_component(self._thread_counts, total, count, period) / avg_n
                if not math.isfinite(err):
                    pass  # overflowed samples: keep the old noise estimate
                elif self._avg_noise == 0:
                    self._avg_noise = err
                else:
                    a = self.error_smoothing
                    self._avg_noise = a * err + (1.0 - a) * self._avg_noise
                if abs(n_wave) > 0:
                    ratio = (tp_wave - self.bias * n_wave) / n_wave
                    state = "climbing"
                else:
                    state = "stabilizing"
                noise = max(self._avg_noise, err)
                confidence = abs(n_wave) / noise / self.target_snr if noise > 0 else 1.0
                if not (cmath.isfinite(ratio) and math.isfinite(confidence)):
                    ratio, confidence, state = 0j, 0.0, "overflow (no move)"

        move = min(1.0, max(-1.0, ratio.real)) * min(1.0, max(0.0, confidence))
        gain = self.max_change_per_second * seconds
        move = math.copysign(abs(move) ** self.gain_exponent, move) * gain
        move = min(move, self.max_change_per_sample)
        if math.isnan(move):  # 0 * inf gain on an absurd window: no move
            move = 0.0
        cpu = obs.process_cpu_percent if self.process_cpu else obs.cpu_percent
        if move > 0.0 and cpu > self.cpu_high:  # NaN CPU: comparison False, no guard
            notes.append(f"cpu {cpu:.0f}% > {self.cpu_high:g}%: refused +{move:.3f}")
            move = 0.0
        elif not math.isfinite(cpu):
            notes.append("cpu unknown: no CPU guard")
        self._control += move
        mag_f = 0.5 + (self._control * self._avg_noise * self.target_snr
                       * self.wave_magnitude_multiplier * 2.0)
        mag = int(mag_f) if mag_f < self.max_wave_magnitude else self.max_wave_magnitude
        mag = max(1, mag)
        self._control = max(float(lo), min(float(hi - mag), self._control))
        phase = (total // (period // 2)) % 2
        new = int(self._control + mag * phase)
        new = max(lo, min(hi, new))

        if new != n:
            self._change_thread_count(new)
        if ratio.real < 0.0 and new == lo:
            self._next_sample_s = self._current_sample_s * (10.0 * min(-ratio.real, 1.0))
        else:
            self._next_sample_s = self._current_sample_s
        reason = (
            f"{state}: {throughput:.1f} tasks/s at {n} threads over {seconds:.3f} s; "
            f"ratio {ratio.real:+.3f}, confidence {confidence:.2f}, move {move:+.3f} -> "
            f"control {self._control:.2f} + wave {mag}x{phase} = {new}"
        )
        if notes:
            reason += " (" + "; ".join(notes) + ")"
        return Decision(obs.clamp(new), reason)

    def _change_thread_count(self, n: int) -> None:
        self._last_thread_count = n
        self._current_sample_s = self._draw_interval()

    def _timed_out(self, obs: Observation) -> int:
        """Threads idle through the whole last ``idle_timeout`` seconds (they exit)."""
        if self.idle_timeout <= 0 or not math.isfinite(obs.t):
            return 0
        idle = max(0, obs.workers - max(0, obs.busy)) if obs.queue_depth <= 0 else 0
        hist, cutoff = self._idle, obs.t - self.idle_timeout
        hist.append((obs.t, idle))
        while len(hist) >= 2 and hist[1][0] <= cutoff:
            hist.popleft()
        if hist[0][0] > cutoff:
            return 0  # not idle for long enough yet
        gone = min(i for _, i in hist)
        if gone > 0:
            hist.clear()
            hist.append((obs.t, idle - gone))
        return gone

    # -- policy entry point -------------------------------------------------------
    def decide(self, obs: Observation) -> Decision:
        gone = self._timed_out(obs)
        if gone:  # WorkerThread.ShouldExitWorker: goal = max(min, min(existing, goal))
            goal = max(obs.min_workers, obs.workers - gone)
            if goal != self._last_thread_count:  # ForceChange(goal, ThreadTimedOut)
                self._control += goal - self._last_thread_count
                self._change_thread_count(goal)
            return Decision(
                obs.clamp(goal),
                f"thread timed out: {gone} thread(s) idle for {self.idle_timeout:g} s exit "
                f"-> {goal} (control {self._control:.2f})",
            )
        tp, dt = obs.throughput, obs.dt
        if not (math.isfinite(tp) and math.isfinite(dt)) or dt <= 0 or tp < 0:
            return Decision(
                obs.clamp(obs.workers),
                f"hold at {obs.workers}: throughput/window unknown (throughput {tp}, dt {dt})",
            )
        self._window_seconds += dt
        self._window_completions += tp * dt
        if self._window_completions <= 0:  # .NET samples on a work-item completion only
            return Decision(
                obs.clamp(obs.workers),
                f"hold at {obs.workers}: no task completed in {self._window_seconds:.3f} s "
                f"(no hill-climbing sample)",
            )
        if self._window_seconds + 1e-12 < self._next_sample_s:
            return Decision(
                obs.clamp(obs.workers),
                f"hold at {obs.workers}: collecting sample "
                f"({self._window_seconds:.3f} of {self._next_sample_s:.3f} s)",
            )
        seconds, completions = self._window_seconds, self._window_completions
        self._window_seconds = self._window_completions = 0.0
        if not (math.isfinite(seconds) and math.isfinite(completions)):
            return Decision(obs.clamp(obs.workers), f"hold at {obs.workers}: sample overflowed")
        return self._update(obs, seconds, completions)
