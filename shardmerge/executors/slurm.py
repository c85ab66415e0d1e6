"""SLURM batch jobs through dask-jobqueue's SLURMCluster (`--cluster slurm --jobs N`): SLURM's time formats
and keywords; the rest is the job-queue backend's (jobqueue.py). `slurm_options` is the job script's input,
testable as text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import ClusterRequest
from .dask_backend import DaskExecutor
from .jobqueue import DEFAULT_JOB_LOGS, JobQueueScheduler, job_log_dir, job_options, jobqueue_cluster, lifetime_of

__all__ = ["DEFAULT_JOB_LOGS", "SCHEDULER", "job_log_dir", "slurm_cluster", "slurm_executor", "slurm_options",
           "walltime_seconds", "worker_lifetime"]


class SLURM(JobQueueScheduler):
    name = "slurm"
    label = "SLURM"
    cluster_class = "SLURMCluster"
    job_id = "$SLURM_JOB_ID"
    status_command = "squeue"

    def walltime(self, text: str) -> tuple[str, int]:
        return text, walltime_seconds(text)  # SLURM reads its own formats: passed on as given


SCHEDULER = SLURM()


def slurm_options(request: ClusterRequest, log_dir: str | None) -> dict:
    """SLURMCluster keyword arguments: `jobqueue.slurm.*` with the request's overrides on top."""
    return job_options(SCHEDULER, request, log_dir)


@contextmanager
def slurm_cluster(request: ClusterRequest, log_dir: str | None) -> Iterator[tuple[Any, dict]]:
    with jobqueue_cluster(SCHEDULER, request, log_dir) as got:
        yield got


@contextmanager
def slurm_executor(request: ClusterRequest, log_dir: str | None) -> Iterator[DaskExecutor]:
    from .jobqueue import jobqueue_executor

    with jobqueue_executor(SCHEDULER, request, log_dir) as ex:
        yield ex


def walltime_seconds(walltime: str) -> int:
    """SLURM's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    days, _, rest = walltime.strip().rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        h, m, sec = (parts + [0, 0])[:3]
        return int(days) * 86400 + h * 3600 + m * 60 + sec
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    h, m, sec = parts
    return h * 3600 + m * 60 + sec


def worker_lifetime(walltime: str) -> tuple[int, int]:
    """Workers retire (handing their work over) before SLURM kills the job (see jobqueue.lifetime_of)."""
    return lifetime_of(walltime_seconds(walltime))
