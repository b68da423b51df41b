"""A policy that always asks for the same size: the baseline of every comparison."""

from __future__ import annotations

from adaptive_lab.policies.base import Decision, Observation, Policy, param


class FixedPolicy(Policy):
    """Always ``n`` workers (clamped to the observation's bounds).

    ``FixedPolicy(8)`` or ``FixedPolicy(n=8)``.
    """

    name = "fixed"
    n: int = param(default=8, low=1, high=4096, step=1, doc="the fixed number of workers")

    def __init__(self, n: int | None = None, **params: object) -> None:
        if n is not None:
            params["n"] = n
        super().__init__(**params)

    def decide(self, obs: Observation) -> Decision:
        return Decision(obs.clamp(self.n), f"fixed at {self.n}")
