"""Dask distributed's adaptive scaling target, ported as a policy.

Sources: dask/distributed ``distributed/scheduler.py`` (``Scheduler.adaptive_target``,
``Scheduler.workers_to_close``), ``distributed/deploy/adaptive_core.py``
(``AdaptiveCore.safe_target``, ``AdaptiveCore.recommendations``) and
``distributed/deploy/adaptive.py`` (defaults).
"""

from __future__ import annotations

import math

from adaptive_lab.policies.base import Decision, Observation, Policy, param


class OccupancyPolicy(Policy):
    """Dask adaptive: enough workers to finish the known work in ``target_duration``.

    This is the Dask rule (not Little's law). Sources: ``Scheduler.adaptive_target``
    and ``AdaptiveCore.recommendations`` in dask/distributed. Every ``interval``
    seconds (Dask's adaptive tick, 1 s):

    1. work seconds = ``(busy + queued) * task duration``, the duration being
       ``obs.latency_mean`` (Dask: the task prefix's average duration) or, when no
       task has finished yet, ``unknown_duration`` (Dask's
       ``distributed.scheduler.unknown-task-duration``, 0.5 s);
    2. ``cpu = ceil(work seconds / target_duration)``, then ``min(cpu, busy +
       queued)`` ("avoid a few long tasks from asking for many cores"); at least 1
       when tasks wait and there are no workers;
    3. if ``cpu >= workers`` the target is ``cpu``; otherwise Dask asks
       ``workers_to_close()``, which offers every idle worker, so the target is the
       number of busy workers (``down_to_busy``, default true; false uses ``cpu``);
    4. clamp to ``[min_workers, max_workers]`` (``safe_target``);
    5. ``recommendations``: up at once; down only for workers chosen to close in
       ``wait_count`` consecutive ticks. Workers here are anonymous, so the i-th
       worker to close keeps the i-th count; a "same" or "up" tick clears them.

    Defaults (the source's): target duration 5 s, wait count 3, interval 1 s,
    unknown task duration 0.5 s. Dask's memory rule (double the workers when stored
    data passes 60 % of worker memory) is about data held by workers and is not
    ported: threads share one process's memory.
    """

    name = "occupancy"
    target_duration: float = param(
        default=5.0, low=0.01, high=3600.0, step=0.5,
        doc="seconds the known work should take with the target worker count")
    wait_count: int = param(default=3, low=1, high=1000, step=1,
                            doc="consecutive down recommendations before a worker is closed")
    interval: float = param(default=1.0, low=0.0, high=3600.0, step=0.5,
                            doc="seconds between adaptive ticks (0 = every decision)")
    unknown_duration: float = param(default=0.5, low=0.0, high=3600.0, step=0.1,
                                    doc="task duration (s) assumed while no task has finished")
    down_to_busy: bool = param(
        default=True,
        doc="when below the size, target the busy workers (Dask) instead of cpu")

    def reset(self) -> None:
        self._last_tick: float | None = None
        self._close_counts: list[tuple[int, int]] = []  # (count, workers) runs

    def _target(self, obs: Observation) -> tuple[int, str]:
        busy, queued, workers = max(0, obs.busy), max(0, obs.queue_depth), obs.workers
        duration = obs.latency_mean
        src = "mean task time"
        if not (math.isfinite(duration) and duration >= 0):
            duration, src = self.unknown_duration, "unknown-task-duration"
        work = (busy + queued) * duration
        cpu = math.ceil(work / self.target_duration)
        cpu = min(cpu, busy + queued)
        if queued and workers <= 0:
            cpu = max(1, cpu)
        why = (f"work ({busy} busy + {queued} queued) * {duration:.4g} s ({src}) = "
               f"{work:.4g} s / {self.target_duration:g} s -> cpu {cpu}")
        if cpu >= workers or not self.down_to_busy:
            return cpu, why
        return busy, why + f" < {workers} workers: close idle -> {busy}"

    def decide(self, obs: Observation) -> Decision:
        now, cur = obs.t, obs.workers
        # 0.9: a timer tick that comes a few ms early still counts as the next tick
        if self._last_tick is not None and now - self._last_tick < 0.9 * self.interval:
            return Decision(obs.clamp(cur), f"hold at {cur}: between adaptive ticks")
        self._last_tick = now
        raw, why = self._target(obs)
        target = obs.clamp(raw)
        if target != raw:
            why += f", safe_target {target}"
        if target == cur:
            self._close_counts.clear()
            return Decision(target, f"same: {why}")
        if target > cur:
            self._close_counts.clear()
            return Decision(target, f"up to {target}: {why}")
        k = cur - target  # workers chosen to close this tick
        runs, left = [], k  # close counts as (count, workers) runs, counts non-increasing
        for count, n in self._close_counts:
            if left <= 0:
                break  # workers no longer chosen lose their counts
            take = min(n, left)
            runs.append((count + 1, take))
            left -= take
        if left > 0:
            runs.append((1, left))
        firm = sum(n for count, n in runs if count >= self.wait_count)
        self._close_counts = [(c, n) for c, n in runs if c < self.wait_count]
        if firm == 0:
            return Decision(
                obs.clamp(cur),
                f"hold at {cur}: down to {target} recommended {runs[0][0]} of "
                f"{self.wait_count} times; {why}",
            )
        new = cur - firm
        return Decision(obs.clamp(new), f"down to {new} ({firm} closed after "
                                        f"{self.wait_count} ticks): {why}")
