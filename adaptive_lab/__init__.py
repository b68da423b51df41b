"""adaptive_lab: adaptive worker scaling for Python thread pools.

A resizable executor, pure scaling policies, a control loop, recorded traces, replay
and simulation, a file scanner, benchmarks and notebooks.
"""

from .clock import FakeClock, SystemClock
from .controller import Controller
from .metrics import (
    PsutilMetrics,
    ScriptedMetrics,
    SystemSample,
    WorkerPoolMetrics,
    available_cores,
)
from .policies import (
    ANCHOR_POLICIES,
    SEED_DEFAULTS,
    AIMDPolicy,
    Decision,
    FixedPolicy,
    Gradient2Policy,
    HillClimbingPolicy,
    Observation,
    OccupancyPolicy,
    Param,
    Policy,
    TargetTrackingPolicy,
    ThresholdPolicy,
    ThroughputSeekingPolicy,
    UtilizationBandPolicy,
    VegasPolicy,
    available_policies,
    make_policy,
    parse_assignments,
    policy_class,
    register_policy,
)
from .pool import AdaptiveThreadPoolExecutor, BrokenThreadPool, PoolStats, default_bounds
from .sim import (
    Segment,
    SimulatedPool,
    SweepResult,
    WorkloadModel,
    record_scan,
    replay,
    simulate,
    sweep,
)
from .trace import Recorder, Trace, TraceFormatError

__version__ = "0.1.0"

__all__ = [
    "ANCHOR_POLICIES",
    "SEED_DEFAULTS",
    "AIMDPolicy",
    "AdaptiveThreadPoolExecutor",
    "BrokenThreadPool",
    "Controller",
    "Decision",
    "FakeClock",
    "FixedPolicy",
    "Gradient2Policy",
    "HillClimbingPolicy",
    "Observation",
    "OccupancyPolicy",
    "Param",
    "Policy",
    "PoolStats",
    "PsutilMetrics",
    "Recorder",
    "ScriptedMetrics",
    "Segment",
    "SimulatedPool",
    "SweepResult",
    "SystemClock",
    "SystemSample",
    "TargetTrackingPolicy",
    "ThresholdPolicy",
    "ThroughputSeekingPolicy",
    "Trace",
    "TraceFormatError",
    "UtilizationBandPolicy",
    "VegasPolicy",
    "WorkerPoolMetrics",
    "WorkloadModel",
    "__version__",
    "available_cores",
    "available_policies",
    "default_bounds",
    "make_policy",
    "parse_assignments",
    "policy_class",
    "record_scan",
    "register_policy",
    "replay",
    "simulate",
    "sweep",
]
