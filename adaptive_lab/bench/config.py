"""What the benchmark runs: workload profiles, executor configurations, settings.

``adaptive-lab bench`` runs the same scan of the same corpus under many executor
configurations, per workload profile, and reports throughput and cost side by side:

* ``baseline-N``: a real ``ThreadPoolExecutor(N)`` (the original design report's
  planned ``--baseline-workers``);
* ``tpe-default``: a real ``ThreadPoolExecutor()`` (``min(32, cores + 4)`` workers);
* ``fixed-N``: :class:`~adaptive_lab.AdaptiveThreadPoolExecutor` with
  ``max_workers=N`` and no policy, for every N of the sweep; the best is the *oracle*
  (same mechanism as the policies, so the ratio isolates the policy);
* ``report-threshold``: :class:`~adaptive_lab.ThresholdPolicy` with the report's
  bounds (``THRESHOLD_DEFAULTS``) and 5 s interval;
* ``policy:NAME``: every registered policy with its defaults and the package's
  default bounds (:func:`~adaptive_lab.default_bounds`).

Repetitions are interleaved: each round runs every configuration once, in an order
shuffled with a seeded RNG. Each run may be cut at ``time_cap`` seconds (the scan is
cancelled; files/s is then over the files done). Results are a versioned JSON
document (``SCHEMA``/``VERSION``, see ``docs/benchmark.md``), built by
:mod:`adaptive_lab.bench.runner`, judged by :mod:`adaptive_lab.bench.report` and
rendered by :mod:`adaptive_lab.bench.render`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "adaptive-lab/bench"
VERSION = 1
DEFAULT_FIXED_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384)
QUICK_FIXED_SIZES = (4, 64, 256)

@dataclass(frozen=True)
class BenchProfile:
    """A workload of the benchmark: a scanner profile, its parameters, cache state.

    ``step_at``/``latency_after_ms`` describe a latency step (profile ``step``);
    ``files`` overrides the file budget of a run (``None``: the corpus size).
    """

    name: str
    scanner_profile: str
    params: dict[str, Any] = field(default_factory=dict)
    cold: bool = False
    description: str = ""

    @property
    def cache(self) -> str:
        return "cold" if self.cold else "warm"


BENCH_PROFILES: dict[str, BenchProfile] = {
    p.name: p for p in (
        BenchProfile("local", "local", {}, False,
                     "warm page cache, read + sha256 of every file"),
        BenchProfile("cold", "local", {}, True,
                     "page cache dropped before each run (root only), read + sha256"),
        BenchProfile("latency-1ms", "latency", {"latency_ms": 1.0}, False,
                     "emulated network storage: sleep 1 ms per file, then read + hash"),
        BenchProfile("latency-5ms", "latency", {"latency_ms": 5.0}, False,
                     "emulated network storage: sleep 5 ms per file, then read + hash"),
        BenchProfile("latency-20ms", "latency", {"latency_ms": 20.0}, False,
                     "emulated network storage: sleep 20 ms per file, then read + hash"),
        BenchProfile("cpu", "cpu", {}, False,
                     "pure-Python inspection per file that holds the GIL"),
        BenchProfile("mixed", "mixed", {}, False,
                     "a mix of latency and CPU-bound files"),
        BenchProfile("step", "step", {"latency_ms": 1.0, "latency_after_ms": 20.0,
                                      "step_at": 3.0}, False,
                     "latency steps from 1 ms to 20 ms per file step_at s into the run "
                     "(on a tree of hard links to the corpus, so no pool runs out of files)"),
    )
}


def resolve_profiles(spec: str) -> list[BenchProfile]:
    """Profiles named by ``spec``: ``all``, one name, or a comma-separated list."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("profile: expected a profile name or 'all'")
    if spec.strip() == "all":
        return list(BENCH_PROFILES.values())
    out = []
    for name in (s.strip() for s in spec.split(",")):
        if name not in BENCH_PROFILES:
            raise ValueError(f"profile: unknown profile {name!r}; known: "
                             + ", ".join(BENCH_PROFILES) + ", all")
        out.append(BENCH_PROFILES[name])
    return out


@dataclass(frozen=True)
class BenchConfig:
    """One executor configuration; ``kind`` is baseline, tpe_default, fixed, report
    (the threshold policy as the original report configured it), policy or reference."""

    name: str
    kind: str
    workers: int | None = None
    policy: str | None = None

    @property
    def uses_our_pool(self) -> bool:
        return self.kind in ("fixed", "report", "policy")


def build_configs(baseline_workers: int, fixed_sizes: Sequence[int],
                  policies: Sequence[str]) -> list[BenchConfig]:
    """The configurations of one profile, in a stable order."""
    if baseline_workers < 1:
        raise ValueError(f"baseline_workers must be >= 1, got {baseline_workers}")
    if any(n < 1 for n in fixed_sizes):
        raise ValueError(f"fixed_sizes must all be >= 1, got {list(fixed_sizes)}")
    configs = [BenchConfig(f"baseline-{baseline_workers}", "baseline", baseline_workers),
               BenchConfig("tpe-default", "tpe_default", min(32, (os.cpu_count() or 1) + 4))]
    configs += [BenchConfig(f"fixed-{n}", "fixed", n) for n in sorted(set(fixed_sizes))]
    configs.append(BenchConfig("report-threshold", "report", policy="threshold"))
    configs += [BenchConfig(f"policy:{p}", "policy", policy=p) for p in policies]
    return configs


def resolve_policies(spec: str) -> list[str]:
    """Registered policy names for ``spec`` (``all``: every one except ``fixed``,
    which the fixed sweep already covers; ``none``: no registered policy)."""
    from adaptive_lab.policies import available_policies, policy_class

    if spec.strip() == "none":
        return []
    if spec.strip() == "all":
        return [p for p in available_policies() if p != "fixed"]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        policy_class(n)  # ValueError listing the known names
    return names


# -- executors ---------------------------------------------------------------------
@dataclass
class BenchSettings:
    """Everything a benchmark run needs (see ``adaptive-lab bench --help``)."""

    profiles: list[BenchProfile]
    policies: list[str]
    baseline_workers: int = 4
    files_count: int = 10_000
    repeat: int = 3
    fixed_sizes: tuple[int, ...] = DEFAULT_FIXED_SIZES
    output: Path = Path("benchmark_results.json")
    corpus: Path | None = None
    time_cap: float = 2.0
    step_time_cap: float = 6.0
    step_at: float = 1.0
    seed: int = 0
    quick: bool = False
    references: bool = True
    digest: str = "sha256"

    def __post_init__(self) -> None:
        for name in ("baseline_workers", "files_count", "repeat"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("time_cap", "step_time_cap", "step_at"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        if self.step_at >= self.step_time_cap:
            raise ValueError(f"step_at ({self.step_at}) must be below step_time_cap "
                             f"({self.step_time_cap})")

    @property
    def step_fixed_cap(self) -> float:
        """Time cap of fixed pools in the step profile: they need no time to adapt."""
        return min(self.step_time_cap, self.step_at + 2.0,
                   self.step_at + (self.step_time_cap - self.step_at) / 2)

    @property
    def steady_from(self) -> float:
        """Start of the window where a fixed pool's post-step throughput is measured."""
        return self.step_at + min(1.0, (self.step_fixed_cap - self.step_at) / 2)


