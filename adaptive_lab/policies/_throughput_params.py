"""The default policy's parameters, declared once (typed, with range, step and doc):
validation, ``params()``, CLI flags and sliders come from these declarations.
:class:`~adaptive_lab.policies.adaptive.ThroughputSeekingPolicy` inherits them; the
docs (docs/default-policy.md, "Parameters") say what each is for."""

from __future__ import annotations

from typing import Any

from adaptive_lab.policies.base import Policy, param


class ThroughputSeekingParameters(Policy):
    """The parameters of the default policy (abstract: no ``decide``)."""

    growth: float = param(default=2.0, low=1.1, high=8.0, step=0.1,
        doc="size multiplier per step while throughput keeps scaling (climb/descent)")
    min_gain: float = param(default=0.1, low=0.0, high=1.0, step=0.05,
        doc="keep climbing while throughput elasticity (dX/X)/(dn/n) is at least this")
    noise: float = param(default=0.05, low=0.0, high=0.5, step=0.01,
        doc="relative throughput difference treated as measurement noise")
    probe_step: float = param(default=1.25, low=1.05, high=2.0, step=0.05,
        doc="size multiplier of the periodic up/down probes around the home size")
    probe_min: float = param(default=2.0, low=0.1, high=60.0, step=0.1,
        doc="seconds between probes after a move (doubles while probes find nothing)")
    probe_max: float = param(default=8.0, low=0.1, high=600.0, step=0.5,
        doc="longest time between probes, in seconds (bounds step-change detection)")
    window: float = param(default=0.3, low=0.0, high=10.0, step=0.05,
        doc="seconds of measurement per size (the first, for the start jump, may be shorter)")
    settle: float = param(default=0.1, low=0.0, high=5.0, step=0.05,
        doc="seconds ignored after a resize while threads start or retire")
    min_tasks: int = param(default=8, low=1, high=100_000, step=1,
        doc="completed tasks needed before a measurement counts")
    shrink_tolerance: float = param(default=0.03, low=0.0, high=0.5, step=0.01,
        doc="shrink when fewer workers keep this close to the best nearby throughput")
    shrink_elasticity: float = param(default=0.5, low=0.0, high=1.0, step=0.05,
        doc="shrink only if latency fell at least (1 - this) x as fast as the workers")
    change: float = param(default=0.25, low=0.05, high=0.95, step=0.05,
        doc="relative throughput drop at the home size that signals a new regime")
    rate_guess: float = param(default=20_000.0, low=1.0, high=1e7, step=100.0,
        doc=("assumed peak tasks/s for the first Little's-law jump (biased high: overshooting "
             "the knee costs less than a climb step)"))
    max_jump: float = param(default=256.0, low=1.0, high=4096.0, step=1.0,
        doc="largest factor a single Little's-law jump may multiply the size by")
    cpu_limit: float = param(default=0.0, low=0.0, high=1024.0, step=0.5,
        doc=("cores the work can keep busy (0: all the cores; 1 for pure Python under the "
             "GIL); no step grows the pool past the size whose measured CPU use fills them"))
    idle_util: float = param(default=0.5, low=0.0, high=1.0, step=0.05,
        doc="utilisation X*R/n below which a pool with an empty queue is oversized")
    idle_wait: float = param(default=1.0, low=0.0, high=60.0, step=0.1,
        doc="seconds of idleness before shrinking (debounce)")
    headroom: float = param(default=1.5, low=1.0, high=4.0, step=0.1,
        doc="workers kept per busy worker when shrinking an idle pool")

    def _check(self, values: dict[str, Any]) -> None:
        if values["probe_max"] < values["probe_min"]:
            raise ValueError(
                f"ThroughputSeekingPolicy parameter 'probe_max' ({values['probe_max']}) "
                f"must not be below 'probe_min' ({values['probe_min']})"
            )
