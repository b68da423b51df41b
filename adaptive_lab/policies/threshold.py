"""The seed's threshold rules (``../shared/seed``), kept exact.

Rules, first match wins, relative to the current size ``workers``:

1. memory > ``memory_pressure`` (85 %)                     -> -2
2. cpu > ``scale_down_cpu`` (80 %) and queue < ``scale_down_queue`` (2) -> -2
3. cpu < ``scale_up_cpu`` (40 %) and queue > ``scale_up_queue`` (20)   -> +4
4. queue > ``moderate_queue`` (5)                          -> +2
5. otherwise hold.

The result is clamped to ``[min_workers, max_workers]`` of the observation. The
seed's optional smoothing is an EWMA of CPU % and queue depth with weight
``smoothing`` on the previous value (0, the default, is the seed exactly).
"""

from __future__ import annotations

import math
import os

from adaptive_lab.policies.base import Decision, Observation, Param, Policy


def seed_cores() -> int:
    """CPU cores available to this process (affinity-aware, as the seed intended)."""
    if hasattr(os, "process_cpu_count"):
        n = os.process_cpu_count()  # Python 3.13+: affinity-aware
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - non-Linux fallbacks
        n = os.cpu_count()
    return max(1, n or 1)


#: The seed's defaults, by name: bounds, adjustment interval and metrics log period.
SEED_DEFAULTS = {
    "min_workers": max(4, seed_cores()),
    "max_workers": min(100, seed_cores() * 12),
    "interval": 5.0,
    "metrics_log_interval": 30.0,
}


class ThresholdPolicy(Policy):
    """The seed's CPU %, memory % and queue-depth threshold rules.

    Source: ``shared/seed/adaptive-worker-scaling-report.md`` ("Scaling Algorithm").
    Defaults: scale up at CPU < 40 % and queue > 20 (+4), scale down at CPU > 80 % and
    queue < 2 (-2), memory pressure at 85 % (-2), moderate queue > 5 (+2).
    """

    name = "threshold"
    PARAMS = (
        Param("scale_up_cpu", 40.0, 0.0, 100.0, 1.0,
              "scale up by up_step when CPU % is below this and the queue is long"),
        Param("scale_up_queue", 20, 0, 10_000, 1,
              "queue depth above which low CPU means scale up by up_step", int),
        Param("scale_down_cpu", 80.0, 0.0, 100.0, 1.0,
              "scale down by down_step when CPU % is above this and the queue is short"),
        Param("scale_down_queue", 2, 0, 10_000, 1,
              "queue depth below which high CPU means scale down", int),
        Param("memory_pressure", 85.0, 0.0, 100.0, 1.0,
              "memory % above which the pool always scales down by down_step"),
        Param("moderate_queue", 5, 0, 10_000, 1,
              "queue depth above which the pool grows by moderate_step", int),
        Param("up_step", 4, 0, 1_000, 1, "workers added on low CPU and a long queue", int),
        Param("moderate_step", 2, 0, 1_000, 1, "workers added on a moderate queue", int),
        Param("down_step", 2, 0, 1_000, 1, "workers removed on CPU or memory pressure", int),
        Param("smoothing", 0.0, 0.0, 0.99, 0.01,
              "EWMA weight of the previous CPU %/queue value (0 = no smoothing, the seed)"),
    )

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
