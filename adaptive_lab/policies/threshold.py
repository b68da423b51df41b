"""The threshold rules of the original design report, kept exact.

Rules, first match wins, relative to the current size ``workers``:

1. memory > ``memory_pressure`` (85 %)                     -> -2
2. cpu > ``scale_down_cpu`` (80 %) and queue < ``scale_down_queue`` (2) -> -2
3. cpu < ``scale_up_cpu`` (40 %) and queue > ``scale_up_queue`` (20)   -> +4
4. queue > ``moderate_queue`` (5)                          -> +2
5. otherwise hold.

The result is clamped to ``[min_workers, max_workers]`` of the observation. The
report's optional smoothing is an EWMA of CPU % and queue depth with weight
``smoothing`` on the previous value (0, the default, is the report's rules exactly).
"""

from __future__ import annotations

import math

from adaptive_lab._host import available_cores
from adaptive_lab.policies.base import Decision, Observation, Policy, param

#: The report's defaults for a pool run by the threshold policy, by name: bounds
#: ``max(4, cores)`` .. ``min(100, 12 * cores)`` (cores: affinity- and cgroup-aware),
#: adjustment interval and metrics log period, in seconds.
THRESHOLD_DEFAULTS = {
    "min_workers": max(4, available_cores()),
    "max_workers": min(100, available_cores() * 12),
    "interval": 5.0,
    "metrics_log_interval": 30.0,
}


class ThresholdPolicy(Policy):
    """CPU %, memory % and queue-depth threshold rules (the original design report's).

    Source: the original adaptive worker scaling design report ("Scaling Algorithm").
    Defaults: scale up at CPU < 40 % and queue > 20 (+4), scale down at CPU > 80 % and
    queue < 2 (-2), memory pressure at 85 % (-2), moderate queue > 5 (+2).
    """

    name = "threshold"
    scale_up_cpu: float = param(
        default=40.0, low=0.0, high=100.0, step=1.0,
        doc="scale up by up_step when CPU % is below this and the queue is long")
    scale_up_queue: int = param(default=20, low=0, high=10_000, step=1,
                                doc="queue depth above which low CPU means scale up by up_step")
    scale_down_cpu: float = param(
        default=80.0, low=0.0, high=100.0, step=1.0,
        doc="scale down by down_step when CPU % is above this and the queue is short")
    scale_down_queue: int = param(default=2, low=0, high=10_000, step=1,
                                  doc="queue depth below which high CPU means scale down")
    memory_pressure: float = param(
        default=85.0, low=0.0, high=100.0, step=1.0,
        doc="memory % above which the pool always scales down by down_step")
    moderate_queue: int = param(default=5, low=0, high=10_000, step=1,
                                doc="queue depth above which the pool grows by moderate_step")
    up_step: int = param(default=4, low=0, high=1_000, step=1,
                         doc="workers added on low CPU and a long queue")
    moderate_step: int = param(default=2, low=0, high=1_000, step=1,
                               doc="workers added on a moderate queue")
    down_step: int = param(default=2, low=0, high=1_000, step=1,
                           doc="workers removed on CPU or memory pressure")
    smoothing: float = param(
        default=0.0, low=0.0, high=0.99, step=0.01,
        doc="EWMA weight of the previous CPU %/queue value (0 = no smoothing, the report's rules)")

    def _check(self, values: dict) -> None:
        if values["scale_up_cpu"] > values["scale_down_cpu"]:
            raise ValueError(
                f"ThresholdPolicy parameter 'scale_up_cpu' ({values['scale_up_cpu']}) must not "
                f"exceed 'scale_down_cpu' ({values['scale_down_cpu']})"
            )

    def reset(self) -> None:
        self._cpu: float | None = None
        self._queue: float | None = None

    def _smooth(self, cpu: float, queue: float) -> tuple[float, float]:
        a = self.smoothing
        if a <= 0.0:
            return cpu, queue
        if self._cpu is None or not math.isfinite(self._cpu):
            self._cpu = cpu
        elif math.isfinite(cpu):
            self._cpu = a * self._cpu + (1 - a) * cpu
        self._queue = queue if self._queue is None else a * self._queue + (1 - a) * queue
        return self._cpu, self._queue

    def decide(self, obs: Observation) -> Decision:
        cpu, queue = self._smooth(obs.cpu_percent, float(obs.queue_depth))
        mem = obs.memory_percent
        cur = obs.workers
        # NaN compares False everywhere: unknown metrics never trigger a rule.
        if mem > self.memory_pressure:
            delta, why = -self.down_step, f"memory {mem:.0f}% > {self.memory_pressure:g}%"
        elif cpu > self.scale_down_cpu and queue < self.scale_down_queue:
            delta, why = -self.down_step, (
                f"cpu {cpu:.0f}% > {self.scale_down_cpu:g}% and queue {queue:g} < "
                f"{self.scale_down_queue}"
            )
        elif cpu < self.scale_up_cpu and queue > self.scale_up_queue:
            delta, why = self.up_step, (
                f"cpu {cpu:.0f}% < {self.scale_up_cpu:g}% and queue {queue:g} > "
                f"{self.scale_up_queue}"
            )
        elif queue > self.moderate_queue:
            delta, why = self.moderate_step, f"queue {queue:g} > {self.moderate_queue}"
        else:
            return Decision(obs.clamp(cur), "hold: no threshold crossed")
        target = obs.clamp(cur + delta)
        if target != cur + delta:
            why += f" (clamped to [{obs.min_workers}, {obs.max_workers}])"
        sign = "+" if delta >= 0 else ""
        return Decision(target, f"{sign}{delta}: {why}")
