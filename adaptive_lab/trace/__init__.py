"""Record: the versioned JSON Lines trace of a run, and the recorder that writes it."""

from adaptive_lab.trace.format import Trace, TraceFormatError, make_header
from adaptive_lab.trace.recorder import Recorder

__all__ = ["Recorder", "Trace", "TraceFormatError", "make_header"]
