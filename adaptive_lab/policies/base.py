"""Observation, Decision and the Policy base class.

A policy is a small, pure object: ``decide(observation) -> Decision``. Any state it
keeps (a history, an EWMA, a cooldown) is driven by the observations' timestamps
``t`` only, never by the wall clock, so the same policy code gives the same answers
live, in replay and in simulation.

Every policy declares its tunable parameters once, as typed class attributes with
:func:`~adaptive_lab.policies.params.param` (range, step, one-line description).
From that declaration come: construction that validates and raises
:class:`ValueError` naming the parameter; ``param_specs()`` (the :class:`Param`
metadata CLIs and sliders read); ``params()`` (serialised values); ``with_params(**kw)``
(a fresh copy) and ``set_params(**kw)`` (retune a running policy, thread-safe; what the
live monitor's sliders use).
"""

from __future__ import annotations

import math
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from types import MappingProxyType, SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

from adaptive_lab.policies.params import Param, ParamAttribute, _Declaration, build_param, param

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
elif TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # Python 3.10 at run time: the decorator only informs type checkers

    def dataclass_transform(**_: Any) -> Any:
        return lambda cls: cls

__all__ = ["NAN", "Decision", "Observation", "Param", "Policy", "UnknownParameterError",
           "clamp_target", "param"]

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
    task_cpu_cores
        CPU used by the pool's worker threads over the window, in cores (their CPU
        seconds / ``dt``; NaN when unknown). Unlike ``process_cpu_percent`` it leaves
        out the rest of the process (the submitting thread, the controller).
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
    task_cpu_cores: float = NAN

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


class UnknownParameterError(ValueError, TypeError):
    """A parameter name the policy does not have (a ValueError and a TypeError)."""


@dataclass_transform(kw_only_default=True, eq_default=False, field_specifiers=(param,))
class Policy(ABC):
    """Base class of scaling policies.

    Subclasses set ``name`` (registry key), declare their parameters as class
    attributes (``smoothing: float = param(default=0.0, low=0.0, high=0.99, step=0.01,
    doc="...")``) and implement :meth:`decide`. Parameter values read as attributes
    (``self.smoothing``); assigning one is ``set_params``. Override :meth:`_check` for
    cross-parameter rules and :meth:`reset` to clear state.
    """

    name: ClassVar[str] = "policy"
    _specs: ClassVar[MappingProxyType[str, Param]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "PARAMS" in vars(cls):  # the old positional tuple: fail loudly, not silently
            raise TypeError(f"{cls.__name__}: declare parameters as typed class attributes "
                            "with param(), not a PARAMS tuple")
        annotations = vars(cls).get("__annotations__", {})
        declared = [build_param(attr, value, annotations.get(attr), cls.__name__)
                    for attr, value in vars(cls).items() if isinstance(value, _Declaration)]
        specs = dict(cls._specs)  # inherited declarations first, in order
        for spec in declared:
            if hasattr(Policy, spec.name):
                raise TypeError(f"{cls.__name__} parameter '{spec.name}' would hide "
                                f"Policy.{spec.name}")
            specs[spec.name] = spec
            setattr(cls, spec.name, ParamAttribute(spec))  # the class, once, not instances
        cls._specs = MappingProxyType(specs)

    def __init__(self, **params: Any) -> None:
        self._lock = threading.RLock()
        defaults = {p.name: p.default for p in self._specs.values()}
        self._param_values = SimpleNamespace(**self._validated(defaults, params))
        self.reset()

    # -- parameters -------------------------------------------------------------
    @classmethod
    def param_specs(cls) -> tuple[Param, ...]:
        """The parameters this policy accepts, with ranges and descriptions."""
        return tuple(cls._specs.values())

    @classmethod
    def param_spec(cls, name: str) -> Param:
        """The :class:`Param` called ``name``."""
        try:
            return cls._specs[name]
        except KeyError:
            known = ", ".join(cls._specs) or "none"
            raise UnknownParameterError(
                f"{cls.__name__} has no parameter '{name}' (known: {known})") from None

    def _validated(self, base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for k, v in changes.items():
            out[k] = type(self).param_spec(k).validate(v, type(self).__name__)
        self._check(out)
        return out

    def _check(self, values: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Cross-parameter validation; raise ValueError naming the parameter."""

    def params(self) -> dict[str, Any]:
        """Current parameter values (a copy, JSON-serialisable), in declaration order."""
        return dict(vars(self._param_values))

    def with_params(self, **changes: Any) -> Policy:
        """A new policy of the same class with some parameters changed and fresh state."""
        return type(self)(**{**self.params(), **changes})

    def set_params(self, **changes: Any) -> None:
        """Retune this policy in place, keeping its state (thread-safe).

        Used to tune a running pool; all changes are validated before any is applied,
        and the values are swapped as one snapshot, so a decision sees either the old
        values or the new ones, never a mix.
        """
        with self._lock:
            self._param_values = SimpleNamespace(**self._validated(self.params(), changes))

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
