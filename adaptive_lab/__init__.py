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
    SEED_DEFAULTS,
    Decision,
    FixedPolicy,
    Observation,
    Param,
    Policy,
    ThresholdPolicy,
    available_policies,
    make_policy,
    register_policy,
)
from .pool import AdaptiveThreadPoolExecutor, BrokenThreadPool, PoolStats, default_bounds
from .trace import Recorder, Trace, TraceFormatError

__version__ = "0.1.0"

__all__ = [
    "SEED_DEFAULTS",
    "AdaptiveThreadPoolExecutor",
    "BrokenThreadPool",
    "Controller",
    "Decision",
    "FakeClock",
    "FixedPolicy",
    "Observation",
    "Param",
    "Policy",
    "PoolStats",
    "PsutilMetrics",
    "Recorder",
    "ScriptedMetrics",
    "SystemClock",
    "SystemSample",
    "ThresholdPolicy",
    "Trace",
    "TraceFormatError",
    "WorkerPoolMetrics",
    "__version__",
    "available_cores",
    "available_policies",
    "default_bounds",
    "make_policy",
    "register_policy",
]
