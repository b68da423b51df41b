"""OpenStack futurist's DynamicThreadPoolExecutor grow/shrink band, as a policy.

Source: openstack/futurist ``futurist/_futures.py``
(``DynamicThreadPoolExecutor._maybe_spin_up``, ``_drop_thread`` and ``maintain``).
"""

from __future__ import annotations

from collections.abc import Callable

from adaptive_lab.policies.base import Decision, Observation, Policy, param


def _first_false(lo: int, hi: int, pred: Callable[[int], bool]) -> int:
    """Smallest n in [lo, hi] with ``pred(n)`` false (``pred`` true then false); hi if none."""
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


class UtilizationBandPolicy(Policy):
    """Keep the share of busy threads between ``shrink_threshold`` and ``grow_threshold``.

    Source: openstack/futurist ``_futures.py``, ``DynamicThreadPoolExecutor``. With
    ``n`` threads of which ``idle`` wait for work and ``queued`` tasks waiting,
    ``busy = (n - idle + queued) / n``. ``_maybe_spin_up`` adds a thread when ``n <
    min_workers``, or when ``busy >= grow_threshold`` and ``n < max_workers``; it stops
    one *idle* thread when ``busy <= shrink_threshold`` and ``n > min_workers``.
    futurist runs that step on every ``submit`` and, in a loop until nothing changes,
    in ``maintain()``, which its docs say to call periodically.

    Defaults (the source's): grow at 0.8, shrink at 0.4. One decision here is one
    ``maintain()`` call: ``max_steps = 0`` (default) steps until the band holds, as
    ``maintain()`` does (computed in closed form: adding an idle thread keeps ``n -
    idle`` fixed, so the ratio is ``(busy + queued) / n``); ``max_steps = 1`` is one
    ``_maybe_spin_up`` step (+-1 thread per decision). ``n`` is ``obs.workers``,
    ``idle = workers - busy``. A thread can only be stopped while one is idle, so
    the pool never shrinks below its busy count.
    """

    name = "utilization_band"
    grow_threshold: float = param(default=0.8, low=0.01, high=1.0, step=0.05,
                                  doc="add a thread when (busy + queued) / threads reaches this")
    shrink_threshold: float = param(
        default=0.4, low=0.0, high=0.99, step=0.05,
        doc="stop an idle thread when (busy + queued) / threads falls to this")
    max_steps: int = param(default=0, low=0, high=100_000, step=1,
                           doc="threads added/removed per decision (0 = until inside the band)")

    def _check(self, values: dict) -> None:
        if values["shrink_threshold"] >= values["grow_threshold"]:
            raise ValueError(
                f"UtilizationBandPolicy parameter 'shrink_threshold' "
                f"({values['shrink_threshold']}) must be less than 'grow_threshold' "
                f"({values['grow_threshold']})"
            )

    def decide(self, obs: Observation) -> Decision:
        n0, lo, hi = obs.workers, obs.min_workers, obs.max_workers
        lo1 = max(1, lo)  # futurist: at least one thread
        idle = max(0, n0 - max(0, obs.busy))
        running = n0 - idle  # stays fixed while idle threads are added or stopped
        demand = running + max(0, obs.queue_depth)
        g, s = self.grow_threshold, self.shrink_threshold
        n, why = n0, ""
        if n < lo1:  # nthreads < min_workers: add threads first
            n = lo1
            why = f"below min {lo1}: +{lo1 - n0}; "
        ratio, n_before = demand / n, n
        if ratio >= g and n < hi:
            n = _first_false(n, hi, lambda m: demand / m >= g)
            why += (f"busy ({running} running + {obs.queue_depth} queued) / {n_before} = "
                    f"{ratio:.2f} >= {g:g}: grow to {n}")
        elif ratio <= s and n > lo1 and idle > 0:
            floor = max(lo1, running)  # never below min, never stop a running thread
            # stop threads while demand / m <= s; the loop halts one below the smallest
            # m whose ratio is still <= s, i.e. at the largest m with demand / m > s
            first_low = _first_false(floor, n, lambda m: demand / m > s)
            n = max(floor, first_low - 1)
            why += (f"busy ({running} running + {obs.queue_depth} queued) / {n_before} = "
                    f"{ratio:.2f} <= {s:g}: shrink to {n}")
        elif s < ratio < g:
            why += f"busy {ratio:.2f} within band [{s:g}, {g:g}]: hold at {n}"
        elif ratio >= g:
            why += f"busy {ratio:.2f} >= {g:g} but at max {hi}: hold at {n}"
        else:
            why += f"busy {ratio:.2f} <= {s:g} but at min {lo1} or no idle thread: hold at {n}"
        if self.max_steps and abs(n - n0) > self.max_steps:
            n = n0 + self.max_steps if n > n0 else n0 - self.max_steps
            why += f" (max_steps {self.max_steps}: {n})"
        return Decision(obs.clamp(n), why)
