"""Shared helpers for CLI subcommands."""

from __future__ import annotations

import argparse

from adaptive_lab.policies import Policy, available_policies, make_policy, parse_assignments


def add_policy_arguments(parser: argparse.ArgumentParser, default: str = "threshold") -> None:
    """Add ``--policy NAME`` and repeatable ``--set key=value``."""
    parser.add_argument(
        "--policy", default=default,
        help=f"scaling policy by name (default {default}; one of: "
        + ", ".join(available_policies()) + ")",
    )
    parser.add_argument(
        "--set", dest="set_params", action="append", default=[], metavar="KEY=VALUE",
        help="set a policy parameter (repeatable), e.g. --set scale_up_queue=10",
    )


def policy_from_args(args: argparse.Namespace) -> Policy:
    """Build the policy named by ``--policy`` with ``--set`` parameters."""
    return make_policy(args.policy, **parse_assignments(args.set_params))
