"""Observation, Decision, Param and the Policy base class.

A policy is a small, pure object: ``decide(observation) -> Decision``. Any state it
keeps (a history, an EWMA, a cooldown) is driven by the observations' timestamps
``t`` only, never by the wall clock, so the same policy code gives the same answers
live, in replay and in simulation.

Every policy declares its tunable parameters as :class:`Param` objects (range, step,
one-line description). Construction validates them and raises :class:`ValueError`
naming the parameter; ``params()`` serialises them; ``with_params(**kw)`` returns a
fresh copy; ``set_params(**kw)`` retunes a running policy (thread-safe), which is what
the live monitor's sliders use.
"""

from __future__ import annotations

import math
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

NAN = float("nan")


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one decision time.

    Parameters
    ----------
    t
        Seconds since the start of the run (monotonic; simulated in replays).
    workers
        The pool's current size (the target the pool is resizing towards).
    busy
        Workers running a task right now (in-flight).
    queue_depth
        Tasks submitted but not yet started.
    cpu_percent, memory_percent
        System-wide CPU and memory utilisation, 0-100 (NaN when unknown).
    process_cpu_percent
        This process's CPU time over the last window as a percentage of all cores.
    cores
        How many cores ``process_cpu_percent`` is relative to (NaN when unknown), so
        ``process_cpu_percent * cores / 100`` is the number of cores the process kept busy.
    process_user_cpu_percent
        The user-mode part of ``process_cpu_percent`` (NaN when unknown): Python code,
        not the kernel's I/O work.
    available_mb
        Available system memory in MiB.
    alive
        Worker threads alive (may lag ``workers`` while growing lazily or retiring).
    completed, submitted, failed
        Cumulative task counters.
    throughput
        Tasks completed per second over the last window (NaN when unknown).
    latency_mean, latency_p50, latency_p95
        Task run time in seconds over the last window (NaN when no task finished).
    dt
        Length of the window the rates above cover, in seconds.
    min_workers, max_workers
        The bounds the controller will clamp to; policies may use them to plan.
    """

    t: float
    workers: int
    busy: int = 0
    queue_depth: int = 0
    cpu_percent: float = NAN
    memory_percent: float = NAN
    process_cpu_percent: float = NAN
    available_mb: float = NAN
    alive: int = -1
    completed: int = 0
    submitted: int = 0
    failed: int = 0
    throughput: float = NAN
    latency_mean: float = NAN
    latency_p50: float = NAN
    latency_p95: float = NAN
    dt: float = NAN
    min_workers: int = 1
    max_workers: int = sys.maxsize
    cores: float = NAN
    process_user_cpu_percent: float = NAN

    def __post_init__(self) -> None:
        if self.alive < 0:
            object.__setattr__(self, "alive", self.workers)

    def clamp(self, target: float) -> int:
        """Round ``target`` to an int within ``[min_workers, max_workers]``."""
        return clamp_target(target, self.min_workers, self.max_workers)

    def replace(self, **changes: Any) -> Observation:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (NaN kept as float NaN)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def clamp_target(target: float, low: int, high: int) -> int:
    """Clamp and round a (possibly fractional or non-finite) target to an int in bounds."""
    if not math.isfinite(target):
        return high if target > 0 else low
    return int(max(low, min(high, round(target))))


@dataclass(frozen=True)
class Decision:
    """A policy's answer: the worker count it wants and why, in words."""

    target: int
    reason: str

    def __post_init__(self) -> None:
        if isinstance(self.target, bool) or not isinstance(self.target, int):
            raise TypeError(f"Decision.target must be an int, got {self.target!r}")


@dataclass(frozen=True)
class Param:
    """A tunable policy parameter: default, inclusive range, step and description.

    ``kind`` is ``int``, ``float`` or ``bool``. A CLI flag or an ipywidgets slider is
    generated from this metadata, so it is written once.
    """

    name: str
    default: float
    low: float
    high: float
    step: float
    description: str
    kind: type = float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def validate(self, value: Any, owner: str = "policy") -> float:
        """Return ``value`` coerced to ``kind``; raise ValueError naming the parameter."""
        where = f"{owner} parameter '{self.name}'"
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return value.lower() in ("true", "1")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError(f"{where} must be a bool, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{where} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value!r}")
        if self.kind is int:
            if float(value) != int(value):
                raise ValueError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not (self.low <= value <= self.high):
            raise ValueError(
                f"{where} must be in [{self.low}, {self.high}] ({self.description}), "
                f"got {value!r}"
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description, for CLIs, sliders and trace headers."""
        return {
            "name": self.name,
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "step": self.step,
            "description": self.description,
            "kind": self.kind.__name__,
        }


class UnknownParameterError(ValueError, TypeError):
    """A parameter name the policy does not have (a ValueError and a TypeError)."""


class Policy(ABC):
    """Base class of scaling policies.

    Subclasses set ``name`` (registry key) and ``PARAMS`` and implement
    :meth:`decide`. Parameter values are available as attributes
    (``self.scale_up_cpu``). Override :meth:`_check` for cross-parameter rules and
    :meth:`reset` to clear state.
    """

    name: ClassVar[str] = "policy"
    PARAMS: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, **params: Any) -> None:
        self._lock = threading.RLock()
        values = self._validated({p.name: p.default for p in self.PARAMS}, params)
        self._params: dict[str, Any] = values
        for k, v in values.items():
            setattr(self, k, v)
        self.reset()

    # -- parameters -------------------------------------------------------------
    @classmethod
    def param_specs(cls) -> tuple[Param, ...]:
        """The parameters this policy accepts, with ranges and descriptions."""
        return cls.PARAMS

    @classmethod
    def param_spec(cls, name: str) -> Param:
        """The :class:`Param` called ``name``."""
        for p in cls.PARAMS:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in cls.PARAMS) or "none"
        raise UnknownParameterError(f"{cls.__name__} has no parameter '{name}' (known: {known})")

    def _validated(self, base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for k, v in changes.items():
            out[k] = type(self).param_spec(k).validate(v, type(self).__name__)
        self._check(out)
        return out

    def _check(self, values: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Cross-parameter validation; raise ValueError naming the parameter."""

    def params(self) -> dict[str, Any]:
        """Current parameter values (a copy, JSON-serialisable)."""
        with self._lock:
            return dict(self._params)

    def with_params(self, **changes: Any) -> Policy:
        """A new policy of the same class with some parameters changed and fresh state."""
        return type(self)(**{**self.params(), **changes})

    def set_params(self, **changes: Any) -> None:
        """Retune this policy in place, keeping its state (thread-safe).

        Used to tune a running pool; all changes are validated before any is applied.
        """
        with self._lock:
            values = self._validated(self._params, changes)
            self._params = values
            for k, v in values.items():
                setattr(self, k, v)

    def describe(self) -> dict[str, Any]:
        """Name, class and parameters, as stored in a trace header."""
        return {"name": self.name, "class": type(self).__name__, "params": self.params()}

    # -- deciding ---------------------------------------------------------------
    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget any state (history, EWMA, cooldown); called on construction."""

    @abstractmethod
    def decide(self, obs: Observation) -> Decision:
        """Return the worker count this policy wants, with a reason."""

    def __call__(self, obs: Observation) -> Decision:
        with self._lock:
            return self.decide(obs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
