"""The run report: counts, per-phase timings, bytes and skipped files, written as JSON."""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunReport:
    """Everything a run tells its user, written as JSON. Fields from `workers` on are known only once the
    run gets that far: they appear in the JSON once set."""

    command: str = ""
    status: str = "running"
    output: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    odd_files: list[dict[str, Any]] = field(default_factory=list)  # accepted with oddities: path, notes
    plan: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what the user should know (e.g. the plan's wide rows)
    error: str = ""
    workers: int | None = None
    scheduler: str | None = None  # its address; "inline" without a cluster
    cluster: dict[str, Any] | None = None  # kind, and for batch jobs the job script and the times to workers
    scratch_kind: str | None = None  # "shared" or "node-local"
    merge: dict[str, Any] | None = None  # MergeResult.stats()
    gate_flux_rows: str | None = None  # how check 6 saw the flux rows
    checks: dict[str, str] | None = None  # check name → pass / fail / skipped, every check of validate.CHECKS
    checks_summary: str | None = None  # "18/18 checks passed": as `shardmerge validate` words it
    publish_method: str | None = None
    throughput: dict[str, float] | None = None
    driver_peak_rss_mib: float | None = None

    @contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(time.perf_counter() - t0, 4)

    def phase_since(self, name: str, t0: float) -> None:
        """A phase that began at `t0` (time.perf_counter) and ends now: one that no `with` block can
        enclose, such as a cluster's start (entering its context) or its close (leaving it)."""
        self.phases[name] = round(time.perf_counter() - t0, 4)

    # What each stage's result adds. The stages return typed results; only these methods turn them into the
    # report's counts (their JSON keys are what users and tests read, unchanged).

    def record_cluster(self, ex: Any, scratch_kind: str) -> None:
        self.workers, self.scheduler, self.cluster = ex.workers, ex.address, dict(ex.info)
        self.scratch_kind = scratch_kind

    def record_scan(self, scan: Any) -> None:
        """stages.scan.ScanResult"""
        self.counts["files_found"] = scan.files_found
        self.counts["files_bad"] = len(scan.bad)
        if scan.dropped:
            self.counts["spectra_dropped_no_data"] = scan.dropped
        self.skipped_files = [{"path": b.path, "reason": b.reason} for b in scan.bad]

    def record_oddities(self, notes: dict[str, list[str]]) -> None:
        """Per file, what was odd but accepted (stages.notes.input_notes)."""
        if notes:
            self.counts["files_odd"] = len(notes)
            self.odd_files = [{"path": p, "notes": list(n)} for p, n in sorted(notes.items())]

    def record_plan(self, summary: dict[str, Any], files: int, spectra: int, input_bytes: int) -> list[str]:
        """plan.describe's summary and counts; the plan's warnings not reported before (each plan says them)."""
        self.plan = summary
        self.counts["files_ingested"], self.counts["spectra"], self.bytes["input"] = files, spectra, input_bytes
        new = [w for w in summary["warnings"] if w not in self.warnings]
        self.warnings += new
        return new

    def record_shards(self, tally: Any, transport: Any) -> None:
        """stages.shards.ShardTally and the transport's own tallies (node-local fetches)."""
        if tally.skipped:
            self.skipped_files += tally.skipped
            self.counts["files_bad"] = self.counts.get("files_bad", 0) + len(tally.skipped)
            self.counts["replans_after_bad_data"] = tally.replans
        for key, value in (("shards_total", tally.total), ("shards_reused", tally.reused),
                           ("shards_kept_after_bad_data", tally.kept_after_bad),
                           ("shards_recomputed_lost", getattr(transport, "recomputed_lost", 0) or None),
                           ("shards_fetched", getattr(transport, "fetched", 0) or None)):
            if value is not None:
                self.counts[key] = value
        if getattr(transport, "fetched", 0):
            self.bytes["fetched"] = transport.fetched_bytes

    def record_gate(self, gate: Any) -> None:
        """stages.finish.GateResult"""
        self.gate_flux_rows, self.checks, self.checks_summary = gate.flux_rows, gate.checks, gate.summary

    def record_publish(self, method: str | None) -> None:
        if method is not None:
            self.publish_method = method
        self.status = "published"

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "status": self.status,
            "output": self.output,
            "seconds": self.phases,
            "total_seconds": round(sum(self.phases.values()), 4),
            "counts": self.counts,
            "bytes": self.bytes,
            "skipped_files": self.skipped_files,
            "odd_files": self.odd_files,
            # data the inputs hold that is not stored: one entry per HDU (path, hdu, extname, extver, what, why),
            # from the files' unread-extension oddities
            "unread": (unread := self._unread()),
            # per file, how many of its HDUs with data were left unread (files with none are not listed)
            "unread_per_file": _per_file(unread),
            "plan": self.plan,
            "warnings": self.warnings,
            "error": self.error,
            **{name: getattr(self, name) for name in _LATE_FIELDS if getattr(self, name) is not None},
        }

    def _unread(self) -> list[dict[str, Any]]:
        """Data no reader consumed, one entry per HDU, from the files' unread-extension oddities."""
        from .readers.oddities import unread_entries  # here: `import shardmerge` must not pull in numpy

        return [e for f in self.odd_files for e in unread_entries(f["path"], f.get("notes", []))]

    def write(self, path: str) -> None:
        """Written atomically: a reader never sees half a report. The temp file beside it has a name of its
        own, created exclusively (never through a link planted there, never over a file), then renamed
        over `path` (a link at `path` is replaced, not followed)."""
        folder, name = os.path.split(os.path.abspath(path))
        fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".partial")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # as open() would make it: mkstemp's 0600 would hide it from the group
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.as_dict(), f, indent=2)
                f.write("\n")
            os.replace(partial, path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(partial)
            raise


def _umask() -> int:
    """This process's umask, read without setting it (os.umask sets it for every thread at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


_LATE_FIELDS = ("workers", "scheduler", "cluster", "scratch_kind", "merge", "gate_flux_rows", "checks",
                "checks_summary", "publish_method", "throughput", "driver_peak_rss_mib")


def store_bytes(path: str) -> tuple[int, int]:
    """(bytes, files) under a folder."""
    total = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            total += os.path.getsize(os.path.join(root, n))
            files += 1
    return total, files


def _per_file(unread: list[dict[str, Any]]) -> dict[str, int]:
    """{path: HDUs left unread} of the `unread` entries, in path order."""
    out: dict[str, int] = {}
    for e in unread:
        out[e["path"]] = out.get(e["path"], 0) + 1
    return dict(sorted(out.items()))
