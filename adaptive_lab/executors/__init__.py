"""Executors: resizable worker pools (mechanism) and their adaptive front doors."""
