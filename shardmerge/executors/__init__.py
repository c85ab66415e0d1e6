"""Where tasks run: one module per backend behind one interface (base.Executor). Stages hand an executor
plain functions and plain arguments; which backend runs them, and when a run needs no cluster at all, is
decided here (choose_cluster, executor) and nowhere else.

Backends: inline (this process), local (a LocalCluster), scheduler (an existing Dask scheduler), slurm
(dask-jobqueue batch jobs), srun (a SLURMRunner inside one allocation)."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ..config import TARGET_SHARD_BYTES, ClusterRequest
from ..errors import ClusterError
from .base import Executor, NotTheRun, should_retry
from .dask_backend import DaskExecutor, Feed, blind_workers, check_shared_scratch
from .inline import InlineExecutor
from .local import local_cluster_options
from .srun import runner_role

__all__ = ["ONE_SHARD_FILE_BYTES", "DaskExecutor", "Executor", "Feed", "InlineExecutor", "NotTheRun",
           "blind_workers", "check_shared_scratch", "choose_cluster", "executor", "local_cluster_options",
           "one_small_file", "runner_role", "should_retry"]

log = logging.getLogger("shardmerge")

SMALL_INPUT_FILES = 200  # at ~3 ms per small file, about what a local cluster's start and stop cost
SMALL_INPUT_BYTES = 32 * 2**20
ONE_SHARD_FILE_BYTES = TARGET_SHARD_BYTES // 4


def choose_cluster(request: ClusterRequest, paths: Sequence[str]) -> ClusterRequest:
    """The cluster policy: the request as given, except that a local cluster runs in this process
    - when its size is not given and the input is small (<= 200 files and <= 32 MiB): starting and
      stopping worker processes costs more (~1.5 s for 2) than reading a few files here;
    - whatever its size, for one small file: one scan task and one shard, which workers cannot split."""
    if request.kind == "local" and request.workers is None and _small_input(paths):
        log.info("small input (%d files): running in this process; --workers N starts a cluster", len(paths))
        return replace(request, workers=0)
    if request.kind == "local" and request.workers and one_small_file(paths):
        log.info("one small file: one scan task and one shard, which workers cannot split: running in this "
                 "process")
        return replace(request, workers=0)
    return request


def one_small_file(paths: Sequence[str]) -> bool:
    """One regular file of at most ONE_SHARD_FILE_BYTES: a store of up to ~4x its bytes (flux, uncertainty,
    mask, wavelength) is one shard."""
    if len(paths) != 1:
        return False
    try:
        st = os.stat(paths[0])
    except OSError:
        return False  # the scan names it
    return stat.S_ISREG(st.st_mode) and st.st_size <= ONE_SHARD_FILE_BYTES


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
    """Tasks run in this process (local, 0 workers), on the caller's own Client (never closed here), on an
    existing scheduler, on SLURM batch jobs, inside a SLURM allocation (`runner` from runner_role), or on a
    LocalCluster on 127.0.0.1 (the default)."""
    request = request or ClusterRequest()
    if request.kind == "local" and request.workers == 0:
        yield InlineExecutor()
        return
    if request.kind == "client":
        from .client import client_executor as backend

        args: tuple = (request,)
    elif request.kind == "scheduler":
        from .scheduler import scheduler_executor as backend

        args = (request,)
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
