"""Scaling policies: pure objects mapping an Observation to a Decision."""

from .base import Decision, Observation, Param, Policy, UnknownParameterError, clamp_target
from .fixed import FixedPolicy
from .registry import (
    available_policies,
    make_policy,
    parse_assignments,
    policy_class,
    register_policy,
)
from .threshold import SEED_DEFAULTS, ThresholdPolicy, seed_cores

for _cls in (ThresholdPolicy, FixedPolicy):
    register_policy(_cls)

__all__ = [
    "SEED_DEFAULTS",
    "Decision",
    "FixedPolicy",
    "Observation",
    "Param",
    "Policy",
    "ThresholdPolicy",
    "UnknownParameterError",
    "available_policies",
    "clamp_target",
    "make_policy",
    "parse_assignments",
    "policy_class",
    "register_policy",
    "seed_cores",
]
