"""CLI subcommands, one module each (see :mod:`adaptive_lab.cli`)."""
