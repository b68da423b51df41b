"""adaptive_lab: adaptive worker scaling for Python thread pools.

A resizable executor, pure scaling policies, a control loop, recorded traces, replay
and simulation, a file scanner, benchmarks and notebooks.
"""

from . import viz, widgets
from .bench import BenchSettings, run_benchmark
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
from .record import record_scan
from .scanner import FileResult, Scanner, ScanSummary, scan
from .signatures import (
    Signature,
    SignatureSet,
    builtin_signatures,
    eicar_bytes,
    load_signatures,
    parse_signatures,
)
from .sim import (
    Segment,
    SimulatedPool,
    SweepResult,
    WorkloadModel,
    replay,
    simulate,
    sweep,
)
from .trace import Recorder, Trace, TraceFormatError
from .widgets import LiveMonitor, ReplayExplorer
from .workloads import (
    PROFILES,
    CorpusInfo,
    Profile,
    compare_scan_speed,
    make_corpus,
    native_scan_command,
    plain_loop_scan,
    profile_by_name,
    run_native_scan,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Lazy access to the Dask integration (an optional extra; importing it is slow)."""
    if name in ("PolicyAdaptive", "scan_on_dask"):
        from . import dask as _dask

        return getattr(_dask, name)
    raise AttributeError(f"module 'adaptive_lab' has no attribute {name!r}")

__all__ = [
    "ANCHOR_POLICIES",
    "PROFILES",
    "SEED_DEFAULTS",
    "AIMDPolicy",
    "AdaptiveThreadPoolExecutor",
    "BenchSettings",
    "BrokenThreadPool",
    "Controller",
    "CorpusInfo",
    "Decision",
    "FakeClock",
    "FileResult",
    "FixedPolicy",
    "Gradient2Policy",
    "HillClimbingPolicy",
    "LiveMonitor",
    "Observation",
    "OccupancyPolicy",
    "Param",
    "Policy",
    "PoolStats",
    "Profile",
    "PsutilMetrics",
    "Recorder",
    "ReplayExplorer",
    "ScanSummary",
    "Scanner",
    "ScriptedMetrics",
    "Segment",
    "Signature",
    "SignatureSet",
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
    "builtin_signatures",
    "compare_scan_speed",
    "default_bounds",
    "eicar_bytes",
    "load_signatures",
    "make_corpus",
    "make_policy",
    "native_scan_command",
    "parse_assignments",
    "parse_signatures",
    "plain_loop_scan",
    "policy_class",
    "profile_by_name",
    "record_scan",
    "register_policy",
    "replay",
    "run_benchmark",
    "run_native_scan",
    "scan",
    "simulate",
    "sweep",
    "viz",
    "widgets",
]
