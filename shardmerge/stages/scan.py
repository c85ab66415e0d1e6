"""Stage 1 on the driver: scan every input on the executor, folded into a FileTable as the batches arrive."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from ..discover import batches
from ..errors import BadFilesError, InputError
from ..filescan import BadFile
from ..filetable import FileTable, FileTableBuilder, PathList, ScanBatch
from ..jobs import ScanJob
from ..plan import needs_exact_grids
from ..progress import Progress
from ..tasks import scan_batch

log = logging.getLogger("shardmerge")

SCAN_BATCH_FILES = 64  # fewest files per scan task: one small file parses in ~1 ms, a task costs more
SCAN_BATCH_MAX_FILES = 4096  # most: ~4 s of work, cheap to redo when a worker is lost


@dataclass(frozen=True)
class ScanResult:
    """What the scan found: the readable files (in path order), the refused ones and why, and how many
    spectra the readers left out as carrying no data."""

    table: FileTable
    files_found: int
    bad: tuple[BadFile, ...]
    dropped: int

    def check(self, on_bad_file: str) -> FileTable:
        """The files to plan: a refused file fails the run unless --on-bad-file skip (then it is logged)."""
        if self.dropped:
            log.warning("left out %d spectra that their readers found to carry no data at all, from %d file(s)",
                        self.dropped, sum(1 for d in self.table.dropped if d))
        if self.bad:
            if on_bad_file != "skip":
                raise BadFilesError([(b.path, b.reason) for b in self.bad])
            for b in self.bad:
                log.warning("skipped %s: %s", b.path, b.reason)
        if not len(self.table):
            raise InputError(f"none of the {self.files_found} input file(s) could be read")
        return self.table


def scan_inputs(paths: Sequence[str], job: ScanJob, ex, progress_to: str = "log") -> ScanResult:
    """The scan results, folded into a FileTable in path order as the batches arrive: the driver never
    holds one object per file. When every input's grid is one by its headers alone (equal hints: a single
    SDSS spec file, say), the files are scanned again reading their grids, which decide whether the
    store's wavelength is one shared grid."""
    scans, bad = _scan(paths, job, ex, Progress("scan", len(paths), "files", progress_to))
    if needs_exact_grids(scans):
        good = scans.path_list()
        log.info("every input has the same wavelength grid by its headers: reading the grids to be sure")
        exact = ScanJob(choice=job.choice, rules=job.rules, strict=job.strict, exact_grids=True)
        scans, _ = _scan(good, exact, ex, Progress("scan", len(good), "files", progress_to))
    return ScanResult(scans, len(paths), tuple(bad), sum(scans.dropped))


def _scan(paths: Sequence[str], job: ScanJob, ex, progress: Progress) -> tuple[FileTable, list[BadFile]]:
    """Each task's ScanBatch folded as it arrives, in path order: a few column appends, not a step a file.
    The table shares the paths' packed columns (a PathList; any other sequence of sorted paths is packed)."""
    if not isinstance(paths, PathList):
        packed = PathList()
        for path in paths:
            packed.append(path)
        paths = packed
    table = FileTableBuilder(paths)
    bad: list[BadFile] = []

    def collect(batch: ScanBatch) -> None:
        table.fold(batch)
        bad.extend(b for _, b in batch.bad)

    ex.map(partial(scan_batch, job=job), batches(paths, scan_batch_files(len(paths), ex.workers)), name="scan",
           on_result=lambda batch: progress.advance(len(batch)), fold=collect)
    return table.finish(), bad


def scan_batch_files(n_files: int, workers: int) -> int:
    """Files per scan task: at least SCAN_BATCH_FILES (a task costs more than one small file's ~1 ms
    parse), at most SCAN_BATCH_MAX_FILES (a lost task costs little to redo), and otherwise ~8 tasks per
    worker, so a survey of 10^7 files is a few thousand tasks, not 156k."""
    per_task = -(-n_files // (8 * max(1, workers)))
    return max(SCAN_BATCH_FILES, min(SCAN_BATCH_MAX_FILES, per_task))
