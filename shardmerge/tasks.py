"""The functions the driver hands to workers, by reference: each imports its stage when it first runs, so
the driver of a cluster run never imports the readers and astropy (~0.45 s before its first task).
Workers forked from the forkserver have those stages imported already (forkserver.WORKER_PRELOAD).

Each takes its item (a batch of paths, one shard) and, by keyword, the map's one job description
(jobs.ScanJob, jobs.ShardJob): `ex.map(partial(write_shard, job=job), shards, ...)`."""

from __future__ import annotations

from collections.abc import Sequence

from .filetable import ScanBatch
from .jobs import ScanJob, ShardJob
from .plan import ShardSpec


def scan_batch(paths: Sequence[str], *, job: ScanJob) -> ScanBatch:
    from .scan import scan_files

    return scan_files(paths, job)


def write_shard(shard: ShardSpec, *, job: ShardJob) -> dict:
    from .shard import write_shard_job

    return write_shard_job(shard, job)
