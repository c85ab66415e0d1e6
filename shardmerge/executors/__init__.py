"""Where tasks run: backends behind one interface (base.Executor), listed in one table (registry.BACKENDS).
Stages hand an executor plain functions and plain arguments; which backend runs them, and when a run needs no
cluster at all, is decided here (choose_cluster, process_role, executor) and nowhere else.

Backends: inline (this process), local (a LocalCluster), scheduler (an existing Dask scheduler), client (the
caller's), every dask-jobqueue batch scheduler (jobqueue.py, one small module each), and an in-allocation
runner (srun.py)."""

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
from ..smallinput import ONE_SHARD_FILE_BYTES, one_small_file
from .base import Executor, NotTheRun, ServedTheCluster, should_retry
from .dask_backend import DaskExecutor, Feed, blind_workers, check_shared_scratch
from .inline import InlineExecutor
from .jobqueue import job_log_dir
from .local import local_cluster_options
from .registry import backend

__all__ = ["ONE_SHARD_FILE_BYTES", "DaskExecutor", "Executor", "Feed", "InlineExecutor", "NotTheRun",
           "ServedTheCluster", "blind_workers", "check_shared_scratch", "choose_cluster", "executor",
           "job_log_dir", "local_cluster_options", "one_small_file", "process_role", "runner_role",
           "should_retry"]

log = logging.getLogger("shardmerge")

SMALL_INPUT_FILES = 200  # at ~3 ms per small file, about what a local cluster's start and stop cost
SMALL_INPUT_BYTES = 32 * 2**20


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
def process_role(request: ClusterRequest) -> Iterator[Any]:
    """What this process is in the run, entered before anything else (the report, scratch, the lock). For
    most backends nothing: it yields None and this process runs the ingest. A backend whose row names a
    `role` (an in-allocation runner: every rank runs the same command) makes this the place where the
    scheduler and worker processes serve the cluster and leave by ServedTheCluster (NotTheRun), never
    getting past it; the one process that goes on gets the role's object, to hand to `executor`."""
    try:
        role = backend(request.kind).load_role()
    except KeyError:
        role = None  # an unknown kind: `executor` names it
    if role is None:
        yield None
        return
    with role(request) as got:
        yield got


runner_role = process_role  # the former name, kept for callers of it


@contextmanager
def executor(request: ClusterRequest | None = None, runner: Any = None,
             log_dir: str | None = None) -> Iterator[Executor]:
    """Tasks run in this process (local, 0 workers), or on the backend of `request.kind`'s row in
    registry.BACKENDS: the caller's own Client (never closed here), an existing scheduler, batch jobs of a
    dask-jobqueue scheduler (their logs under `log_dir`), inside an allocation (`runner`, from
    process_role), or a LocalCluster on 127.0.0.1 (the default)."""
    request = request or ClusterRequest()
    if request.kind == "local" and request.workers == 0:
        yield InlineExecutor()
        return
    try:
        row = backend(request.kind)
    except KeyError as exc:
        raise ClusterError(f"unknown cluster kind {request.kind!r}") from exc
    if row.jobqueue:
        from .jobqueue import jobqueue_executor

        context = jobqueue_executor(row.load(), request, log_dir)
    else:
        context = row.load()(request, role=runner, log_dir=log_dir)
    with context as ex:
        yield ex
