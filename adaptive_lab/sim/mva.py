"""Mean-value analysis (MVA) of the workload model's closed queueing network.

A delay station (``wait_s`` plus Seidmann's ``cpu_s * (slots - 1) / slots``) and one
FCFS queue (``cpu_s / slots``): the throughput curve the model bends by (see
:mod:`adaptive_lab.sim.model`, assumption 3). Pure numpy, no project imports.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mva_grid", "mva_throughput"]


def mva_throughput(kmax: int, wait_s: float, cpu_s: float, slots: float) -> np.ndarray:
    """Throughput (tasks/s) at 0..``kmax`` concurrent tasks, by exact MVA.

    A delay station ``wait_s + cpu_s * (slots - 1) / slots`` and one FCFS queue of
    demand ``cpu_s / slots`` (Seidmann's approximation of ``slots`` servers).
    """
    d = cpu_s / slots
    z = wait_s + cpu_s - d
    out = [0.0] * (kmax + 1)
    q = 0.0
    for n in range(1, kmax + 1):  # plain floats: faster than numpy for one curve
        r = d * (1.0 + q)
        x = n / (z + r)
        q = x * r
        out[n] = x
    return np.array(out)


def mva_grid(kmax: int, wait_s: np.ndarray, cpu_s: np.ndarray, slots: np.ndarray
             ) -> np.ndarray:
    """MVA throughput tables for many parameter sets at once: shape ``(kmax + 1, n)``."""
    wait_s, cpu_s, slots = np.broadcast_arrays(
        np.asarray(wait_s, float), np.asarray(cpu_s, float), np.asarray(slots, float))
    d = cpu_s / slots
    z = wait_s + cpu_s - d
    out = np.zeros((kmax + 1, len(d)))
    q = np.zeros(len(d))
    for n in range(1, kmax + 1):
        r = d * (1.0 + q)
        x = n / (z + r)
        q = x * r
        out[n] = x
    return out
