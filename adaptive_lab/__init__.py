"""adaptive_lab: adaptive worker scaling for Python executors.

A resizable executor, pure scaling policies, a control loop, recorded traces, replay
and simulation, a file scanner, benchmarks and notebooks.
"""

from adaptive_lab._host import available_cores
from adaptive_lab.bench.config import BenchSettings
from adaptive_lab.bench.references import (
    compare_scan_speed,
    native_scan_command,
    plain_loop_scan,
    run_native_scan,
)
from adaptive_lab.bench.runner import run_benchmark
from adaptive_lab.control.clock import Clock, FakeClock, SystemClock
from adaptive_lab.control.controller import Controller, Resizable
from adaptive_lab.control.metrics import (
    MetricsSource,
    PsutilMetrics,
    ScriptedMetrics,
    SystemSample,
    WorkerPoolMetrics,
)
from adaptive_lab.executors.adaptive import AdaptiveThreadPoolExecutor, default_bounds
from adaptive_lab.executors.stats import PoolStats
from adaptive_lab.executors.thread import BrokenThreadPool, ResizableThreadPoolExecutor
from adaptive_lab.policies import (
    PORTED_POLICIES,
    THRESHOLD_DEFAULTS,
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
    param,
    parse_assignments,
    policy_class,
    register_policy,
)
from adaptive_lab.scanner.core import FileResult, Scanner, ScanSummary, scan
from adaptive_lab.scanner.corpus import CorpusInfo, make_corpus
from adaptive_lab.scanner.profiles import PROFILES, Profile, profile_by_name
from adaptive_lab.scanner.record import record_scan
from adaptive_lab.scanner.signatures import (
    Signature,
    SignatureSet,
    builtin_signatures,
    eicar_bytes,
    load_signatures,
    parse_signatures,
)
from adaptive_lab.sim import (
    Segment,
    SimulatedPool,
    SweepResult,
    WorkloadModel,
    replay,
    simulate,
    sweep,
)
from adaptive_lab.trace.format import Trace, TraceFormatError
from adaptive_lab.trace.recorder import Recorder
from adaptive_lab.ui.explorer import ReplayExplorer
from adaptive_lab.ui.monitor import LiveMonitor

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Lazy access to the Dask integration (an optional extra; importing it is slow)."""
    if name in ("PolicyAdaptive", "scan_on_dask"):
        from adaptive_lab.integrations import dask as _dask

        return getattr(_dask, name)
    raise AttributeError(f"module 'adaptive_lab' has no attribute {name!r}")

__all__ = [
    "PORTED_POLICIES",
    "PROFILES",
    "THRESHOLD_DEFAULTS",
    "AIMDPolicy",
    "AdaptiveThreadPoolExecutor",
    "BenchSettings",
    "BrokenThreadPool",
    "Clock",
    "Controller",
    "CorpusInfo",
    "Decision",
    "FakeClock",
    "FileResult",
    "FixedPolicy",
    "Gradient2Policy",
    "HillClimbingPolicy",
    "LiveMonitor",
    "MetricsSource",
    "Observation",
    "OccupancyPolicy",
    "Param",
    "Policy",
    "PoolStats",
    "Profile",
    "PsutilMetrics",
    "Recorder",
    "ReplayExplorer",
    "Resizable",
    "ResizableThreadPoolExecutor",
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
    "param",
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
]
