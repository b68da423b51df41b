"""Shared helpers for CLI subcommands: ``--policy``, ``--set`` and ``--list-params``.

All three come from the policies' parameter declarations (``param_specs()``), so a
new parameter is a new valid ``--set`` flag, with its range in ``--list-params``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from adaptive_lab.policies import (
    Policy,
    available_policies,
    make_policy,
    parse_assignments,
    policy_class,
)


def parameter_table(cls: type[Policy]) -> str:
    """One line per parameter of ``cls``: name=default, type, range, step, description."""
    rows = [(f"{p.name}={str(p.default).lower() if p.kind is bool else p.default}",
             p.kind.__name__,
             "true|false" if p.kind is bool else f"[{p.low:g}, {p.high:g}] step {p.step:g}",
             p.description)
            for p in cls.param_specs()]
    head = f"{cls.name} ({cls.__name__}) parameters, set with --set NAME=VALUE:"
    if not rows:
        return head + "\n  (none)"
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join([head] + [
        f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows])


class _ListParams(argparse.Action):
    """``--list-params [NAME]``: print a policy's parameters and exit (like ``--version``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None
                 ) -> None:
        name = values if isinstance(values, str) else getattr(namespace, "policy", None)
        try:
            cls = policy_class(str(name))
        except ValueError as exc:
            parser.error(str(exc))
        print(parameter_table(cls))  # to stdout, as argparse's --version does
        parser.exit(0)


def add_policy_arguments(parser: argparse.ArgumentParser, default: str = "threshold") -> None:
    """Add ``--policy NAME``, repeatable ``--set key=value`` and ``--list-params [NAME]``."""
    parser.add_argument(
        "--policy", default=default,
        help=f"scaling policy by name (default {default}; one of: "
        + ", ".join(available_policies()) + ")",
    )
    parser.add_argument(
        "--set", dest="set_params", action="append", default=[], metavar="KEY=VALUE",
        help="set a policy parameter (repeatable), e.g. --set "
        + _example(default) + "; --list-params shows them",
    )
    parser.add_argument(
        "--list-params", nargs="?", metavar="POLICY", action=_ListParams,
        help="print the parameters of POLICY (default: the --policy given before it) "
        "with their types, ranges and descriptions, and exit",
    )


def _example(name: str) -> str:
    specs = policy_class(name).param_specs()
    return f"{specs[0].name}={specs[0].default}" if specs else "NAME=VALUE"


def policy_from_args(args: argparse.Namespace) -> Policy:
    """Build the policy named by ``--policy`` with ``--set`` parameters."""
    cls = policy_class(args.policy)
    return make_policy(args.policy, **parse_assignments(args.set_params, cls))
