"""The scanner's per-scan counts: :class:`ScanSummary`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from adaptive_lab.scanner.walk import FileResult

__all__ = ["ScanSummary"]


@dataclass
class ScanSummary:
    """Counts for one scan; every name the walk saw is in exactly one of
    ``files`` (ok), ``skipped``, ``errors`` or ``not_scanned`` (cancelled).

    ``bytes`` counts the sizes of ok files (read, or answered from the cache);
    ``matches`` counts (file, signature) hits and ``matched_files`` the files with at
    least one; ``reasons`` counts skip and error reasons; ``files_per_s`` and
    ``mb_per_s`` use ok files / bytes over ``elapsed`` (wall seconds).

    With a rescan cache, ``cache_hits`` counts ok results taken from it (their
    ``cached`` is True; ``cache_hit_bytes`` their sizes: bytes not read),
    ``cache_misses`` the regular files it could not answer (read instead),
    ``cache_hit_rate`` is hits / (hits + misses) and ``cache`` holds the run's details
    (path, run number, entries written, racy entries, evictions, warnings).
    """

    root: str = ""
    digest: str | None = "sha256"
    profile: str = "local"
    executor: str = ""
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    errors: int = 0
    not_scanned: int = 0
    matches: int = 0
    matched_files: int = 0
    elapsed: float = 0.0
    cancelled: bool = False
    batches: int = 0
    max_in_flight: int = 0
    sec_per_unit: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    match_counts: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    cache_hit_bytes: int = 0
    cache: dict[str, Any] | None = None

    @property
    def files_seen(self) -> int:
        """Every name the walk reported: ok + skipped + errors + not scanned."""
        return self.files + self.skipped + self.errors + self.not_scanned

    @property
    def files_per_s(self) -> float:
        return self.files / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cache_hit_rate(self) -> float | None:
        """Hits / (hits + misses); None when no file was looked up in a cache."""
        looked_up = self.cache_hits + self.cache_misses
        return self.cache_hits / looked_up if looked_up else None

    def add(self, r: FileResult) -> None:
        """Count one result."""
        if r.status == "ok":
            self.files += 1
            self.bytes += r.size
            if r.cached:
                self.cache_hits += 1
                self.cache_hit_bytes += r.size
            if r.matches:
                self.matched_files += 1
                self.matches += len(r.matches)
                for name in r.matches:
                    self.match_counts[name] = self.match_counts.get(name, 0) + 1
            return
        if r.status == "skipped":
            self.skipped += 1
        else:
            self.errors += 1
        key = r.reason or "unknown"
        self.reasons[key] = self.reasons.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict including the derived rates."""
        d = asdict(self)
        d.update(files_seen=self.files_seen, files_per_s=self.files_per_s,
                 mb_per_s=self.mb_per_s, cache_hit_rate=self.cache_hit_rate)
        return d
