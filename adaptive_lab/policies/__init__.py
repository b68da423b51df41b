"""Scaling policies: pure objects mapping an Observation to a Decision."""

from adaptive_lab.policies.adaptive import ThroughputSeekingPolicy
from adaptive_lab.policies.aimd import AIMDPolicy
from adaptive_lab.policies.base import (
    Decision,
    Observation,
    Param,
    Policy,
    UnknownParameterError,
    clamp_target,
)
from adaptive_lab.policies.fixed import FixedPolicy
from adaptive_lab.policies.gradient import Gradient2Policy, VegasPolicy
from adaptive_lab.policies.hill_climbing import HillClimbingPolicy
from adaptive_lab.policies.occupancy import OccupancyPolicy
from adaptive_lab.policies.registry import (
    available_policies,
    make_policy,
    parse_assignments,
    policy_class,
    register_policy,
)
from adaptive_lab.policies.target_tracking import TargetTrackingPolicy
from adaptive_lab.policies.threshold import SEED_DEFAULTS, ThresholdPolicy, seed_cores
from adaptive_lab.policies.utilization_band import UtilizationBandPolicy

#: The ports of the field's controllers (issue 4), in the order the docs list them.
ANCHOR_POLICIES = (
    HillClimbingPolicy,
    AIMDPolicy,
    Gradient2Policy,
    VegasPolicy,
    TargetTrackingPolicy,
    OccupancyPolicy,
    UtilizationBandPolicy,
)

for _cls in (ThresholdPolicy, FixedPolicy, ThroughputSeekingPolicy, *ANCHOR_POLICIES):
    register_policy(_cls)

__all__ = [
    "ANCHOR_POLICIES",
    "SEED_DEFAULTS",
    "AIMDPolicy",
    "Decision",
    "FixedPolicy",
    "Gradient2Policy",
    "HillClimbingPolicy",
    "Observation",
    "OccupancyPolicy",
    "Param",
    "Policy",
    "TargetTrackingPolicy",
    "ThresholdPolicy",
    "ThroughputSeekingPolicy",
    "UnknownParameterError",
    "UtilizationBandPolicy",
    "VegasPolicy",
    "available_policies",
    "clamp_target",
    "make_policy",
    "parse_assignments",
    "policy_class",
    "register_policy",
    "seed_cores",
]
