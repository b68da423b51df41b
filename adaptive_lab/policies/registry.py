"""Policies by name, for the CLI (``--policy NAME --set key=value``) and notebooks."""

from __future__ import annotations

from typing import Any

from adaptive_lab.policies.base import Policy

_REGISTRY: dict[str, type[Policy]] = {}


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Register a policy class under ``cls.name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise TypeError(f"{cls!r} is not a Policy subclass")
    _REGISTRY[cls.name] = cls
    return cls


def available_policies() -> list[str]:
    """Names of the registered policies, sorted."""
    return sorted(_REGISTRY)


def policy_class(name: str) -> type[Policy]:
    """The policy class registered as ``name``; ValueError lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_policies())
        raise ValueError(f"unknown policy {name!r}; known policies: {known}") from None


def make_policy(name: str, **params: Any) -> Policy:
    """Build the policy registered as ``name`` with validated parameters."""
    return policy_class(name)(**params)


def resolve_policy(policy: Policy | str | None) -> Policy | None:
    """A policy object from what a pool or limiter was given: a policy, a registered
    name, or None (no policy: a fixed size)."""
    if isinstance(policy, str):
        return make_policy(policy)
    if policy is not None and not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, a registered name or None, got {policy!r}")
    return policy


def parse_assignments(items: list[str] | None,
                      policy: type[Policy] | None = None) -> dict[str, Any]:
    """Parse CLI ``key=value`` strings (``--set``).

    With ``policy``, each key must be one of its parameters and each value is
    converted by that parameter's declaration (ValueError naming it otherwise);
    without, values stay strings (the policy converts them when built).
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        key = key.strip()
        out[key] = (value.strip() if policy is None
                    else policy.param_spec(key).validate(value.strip(), policy.__name__))
    return out
