"""Where tasks run: one module per backend behind one interface (base.Executor). Stages hand an executor
plain functions and plain arguments; which backend runs them, and when a run needs no cluster at all, is
decided here (choose_cluster, executor) and nowhere else.

Backends: inline (this process), local (a LocalCluster), scheduler (an existing Dask scheduler), slurm
(dask-jobqueue batch jobs), srun (a SLURMRunner inside one allocation)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ..config import ClusterRequest
from ..errors import ClusterError
from .base import Executor, NotTheRun, should_retry
from .dask_backend import DaskExecutor, Feed, blind_workers, check_shared_scratch
from .inline import InlineExecutor
from .local import local_cluster_options
from .srun import runner_role

__all__ = ["DaskExecutor", "Executor", "Feed", "InlineExecutor", "NotTheRun", "blind_workers", "check_shared_scratch",
           "choose_cluster",
           "executor", "local_cluster_options", "runner_role", "should_retry"]

log = logging.getLogger("shardmerge")

SMALL_INPUT_FILES = 200  # at ~3 ms per small file, about what a local cluster's start and stop cost
SMALL_INPUT_BYTES = 32 * 2**20


def choose_cluster(request: ClusterRequest, paths: Sequence[str]) -> ClusterRequest:
    """The cluster policy: the request as given, except that a local cluster of unspecified size for a small
    input (<= 200 files and <= 32 MiB) runs in this process: starting and stopping worker processes costs
    more (~2.3 s for 2) than reading a few files here."""
    if request.kind == "local" and request.workers is None and _small_input(paths):
        log.info("small input (%d files): running in this process; --workers N starts a cluster", len(paths))
        return replace(request, workers=0)
    return request


def _small_input(paths: Sequence[str]) -> bool:
    if len(paths) > SMALL_INPUT_FILES:
        return False
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):  # an unreadable file is the scan's to name
            total += os.stat(p).st_size
        if total > SMALL_INPUT_BYTES:
            return False
    return True


@contextmanager
def executor(request: ClusterRequest | None = None, runner: Any = None,
             log_dir: str | None = None) -> Iterator[Executor]:
    """Tasks run in this process (local, 0 workers), on an existing scheduler, on SLURM batch jobs, inside
    a SLURM allocation (`runner` from runner_role), or on a LocalCluster on 127.0.0.1 (the default)."""
    request = request or ClusterRequest()
    if request.kind == "local" and request.workers == 0:
        yield InlineExecutor()
        return
    if request.kind == "scheduler":
        from .scheduler import scheduler_executor as backend

        args: tuple = (request,)
    elif request.kind == "slurm-runner":
        from .srun import srun_executor as backend

        args = (request, runner)
    elif request.kind == "slurm":
        from .slurm import slurm_executor as backend

        args = (request, log_dir)
    elif request.kind == "local":
        from .local import local_executor as backend

        args = (request,)
    else:
        raise ClusterError(f"unknown cluster kind {request.kind!r}")
    with backend(*args) as ex:
        yield ex
