"""Control: one loop that sizes anything with ``resize(n)`` and ``stats()``.

The clock and metrics-source protocols live here beside their test doubles, so a
controller runs the same on a real clock, a fake one or a simulated pool.
"""

from adaptive_lab.control.clock import Clock, FakeClock, SystemClock
from adaptive_lab.control.controller import Controller, Resizable
from adaptive_lab.control.metrics import MetricsSource, PsutilMetrics, ScriptedMetrics, SystemSample

__all__ = ["Clock", "Controller", "FakeClock", "MetricsSource", "PsutilMetrics", "Resizable",
           "ScriptedMetrics", "SystemClock", "SystemSample"]
