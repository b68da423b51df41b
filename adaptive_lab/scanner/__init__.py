"""The file scanner: walk, read, hash and match signatures on any executor."""

from adaptive_lab.scanner.core import FileResult, Scanner, ScanSummary, scan

__all__ = ["FileResult", "ScanSummary", "Scanner", "scan"]
