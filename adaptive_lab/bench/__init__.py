"""Benchmarks: the scanner benchmark, pool overhead, references and reports."""
