"""How a policy declares its parameters: once, as typed class attributes.

::

    class AIMDPolicy(Policy):
        backoff_ratio: float = param(default=0.9, low=0.5, high=0.99, step=0.01,
                                     doc="multiplicative decrease on a drop or timeout")
        use_p50: bool = param(default=False, doc="RTT = median task time, not the mean")

:func:`param` records the default, the inclusive range, the step and a one-line
description; the annotation (``int``, ``float`` or ``bool``) is the type. When the
class is created, :class:`~adaptive_lab.policies.base.Policy` turns each declaration
into a :class:`Param` (what validation, ``params()``, CLI ``--set`` flags, sliders and
trace headers read) and an attribute that reads the current value (assigning to it
is a validated ``set_params``).
Type checkers see the fields (``param`` is a field specifier, like
``dataclasses.field``) and the keyword arguments of the policy's constructor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, TypeVar

_T = TypeVar("_T")

#: Annotations a parameter may have, by their (possibly postponed) spelling.
KINDS: dict[str, type] = {"int": int, "float": float, "bool": bool}


@dataclass(frozen=True)
class Param:
    """A tunable policy parameter: default, inclusive range, step and description.

    ``kind`` is ``int``, ``float`` or ``bool``. Built from a :func:`param`
    declaration; a CLI flag or an ipywidgets slider is generated from it.
    ``extra`` holds presentation hints (``slider_high``).
    """

    name: str
    default: Any
    low: float
    high: float
    step: float
    description: str
    kind: type = float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def validate(self, value: Any, owner: str = "policy") -> Any:
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


@dataclass(frozen=True)
class _Declaration:
    """What :func:`param` returns: a parameter not yet bound to a name and a type."""

    default: Any
    low: float | None
    high: float | None
    step: float | None
    doc: str
    slider_high: float | None


def param(*, default: _T, low: float | None = None, high: float | None = None,
          step: float | None = None, doc: str, slider_high: float | None = None) -> _T:
    """Declare a policy parameter (use as a class attribute's default value).

    Parameters
    ----------
    default
        The default value; its annotation (``int``, ``float``, ``bool``) is the type.
    low, high
        Inclusive range. Required for numbers; a bool's is 0..1.
    step
        Slider/CLI granularity. Required for numbers; a bool's is 1.
    doc
        One line saying what the parameter does (tooltips, ``--list-params``, errors).
    slider_high
        Optional top of the slider when the valid range is much wider than useful.
    """
    decl: Any = _Declaration(default, low, high, step, doc, slider_high)
    return decl  # typed as the default's type, as dataclasses.field is


def _kind(annotation: Any, where: str) -> type:
    kind = KINDS.get(annotation) if isinstance(annotation, str) else annotation
    if kind not in (int, float, bool):
        raise TypeError(f"{where} must be annotated int, float or bool, got {annotation!r}")
    return kind


def build_param(name: str, decl: _Declaration, annotation: Any, owner: str) -> Param:
    """The :class:`Param` of ``owner``'s declaration ``name: annotation = param(...)``.

    Raises TypeError for a malformed declaration (at class creation, not at run time).
    """
    where = f"{owner} parameter '{name}'"
    if name.startswith("_"):
        raise TypeError(f"{where}: parameter names must not start with '_'")
    kind = _kind(annotation, where)
    low: float
    high: float
    step: float
    if kind is bool:
        low, high, step = 0, 1, 1
    elif decl.low is None or decl.high is None or decl.step is None:
        raise TypeError(f"{where} needs low=, high= and step=")
    else:
        low, high, step = decl.low, decl.high, decl.step
    if not decl.doc:
        raise TypeError(f"{where} needs doc= (a one-line description)")
    extra = {} if decl.slider_high is None else {"slider_high": decl.slider_high}
    spec = Param(name=name, default=decl.default, low=low, high=high, step=step,
                 description=decl.doc, kind=kind, extra=extra)
    try:
        default = spec.validate(decl.default, owner)
    except ValueError as exc:
        raise TypeError(f"{where}: bad default: {exc}") from None
    # 5 for a float is fine (stored as 5.0); 0.5 or 1.0 for an int, or 0 for a bool, is not
    if type(default) is not type(decl.default) and not (kind is float
                                                         and type(decl.default) is int):
        raise TypeError(f"{where}: default {decl.default!r} is not a {kind.__name__}")
    return replace(spec, default=default)


class ParamAttribute(property):
    """The class attribute of a declared parameter.

    Reading it on an instance gives the current value (a C-level attribute lookup in
    the policy's current, immutable snapshot of values, so a running policy's
    decisions stay fast); assigning to it goes through ``set_params`` (validated,
    thread-safe). ``spec`` is the :class:`Param`.
    """

    def __init__(self, spec: Param) -> None:
        name = spec.name

        def _set(policy: Any, value: Any) -> None:
            policy.set_params(**{name: value})

        super().__init__(attrgetter(f"_param_values.{name}"), _set, None, spec.description)
        self.spec = spec
