"""Scaling policies: pure objects mapping an Observation to a Decision."""

from adaptive_lab.policies.adaptive import ThroughputSeekingPolicy
from adaptive_lab.policies.aimd import AIMDPolicy
from adaptive_lab.policies.base import (
    Decision,
    Observation,
    Policy,
    UnknownParameterError,
    clamp_target,
)
from adaptive_lab.policies.fixed import FixedPolicy
from adaptive_lab.policies.gradient import Gradient2Policy, VegasPolicy
from adaptive_lab.policies.hill_climbing import HillClimbingPolicy
from adaptive_lab.policies.occupancy import OccupancyPolicy
from adaptive_lab.policies.params import Param, param
from adaptive_lab.policies.registry import (
    available_policies,
    make_policy,
    parse_assignments,
    policy_class,
    register_policy,
)
from adaptive_lab.policies.target_tracking import TargetTrackingPolicy
from adaptive_lab.policies.threshold import THRESHOLD_DEFAULTS, ThresholdPolicy
from adaptive_lab.policies.utilization_band import UtilizationBandPolicy

#: Ports of known controllers (.NET, Netflix, Kubernetes, Dask, OpenStack), in the
#: order the docs list them.
PORTED_POLICIES = (
    HillClimbingPolicy,
    AIMDPolicy,
    Gradient2Policy,
    VegasPolicy,
    TargetTrackingPolicy,
    OccupancyPolicy,
    UtilizationBandPolicy,
)

for _cls in (ThresholdPolicy, FixedPolicy, ThroughputSeekingPolicy, *PORTED_POLICIES):
    register_policy(_cls)

__all__ = [
    "PORTED_POLICIES",
    "THRESHOLD_DEFAULTS",
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
    "param",
    "parse_assignments",
    "policy_class",
    "register_policy",
]
