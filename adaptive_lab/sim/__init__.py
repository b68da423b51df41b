"""Offline: workload models, open-loop replay, closed-loop simulation and sweeps."""

from adaptive_lab.sim.closed_loop import SimulatedPool, simulate
from adaptive_lab.sim.model import Segment, WorkloadModel
from adaptive_lab.sim.open_loop import replay
from adaptive_lab.sim.parameter_sweep import SweepResult, sweep

__all__ = ["Segment", "SimulatedPool", "SweepResult", "WorkloadModel", "replay", "simulate",
           "sweep"]
