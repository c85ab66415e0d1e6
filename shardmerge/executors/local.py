"""A LocalCluster on this machine (the default): single-threaded worker processes on 127.0.0.1."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import ClusterRequest
from ..forkserver import WORKER_PRELOAD
from .dask_backend import DaskExecutor, bounds, own_cluster_client

log = logging.getLogger("shardmerge")


@contextmanager
def local_executor(request: ClusterRequest, **_context: Any) -> Iterator[DaskExecutor]:
    import dask
    from distributed import LocalCluster

    from ..mainguard import check_main_guarded

    check_main_guarded()  # before any worker process re-runs an unguarded script
    n = request.workers or os.cpu_count() or 1
    # The nanny's default MALLOC_TRIM_THRESHOLD_=65536 made zstd compression burn ~1.8x the CPU here.
    # Workers are forked from one forkserver that imported what tasks run, instead of each spawned
    # interpreter importing the CLI's module graph (~1.5 s of CPU per worker, 16x on 16 cores); a fork
    # keeps the server's environment, so each worker gets this process's, as a spawned one would.
    # Dask's statistical profiler (a thread sampling every event loop's stack 100 times a second, on
    # Python 3.12+) took ~3% of the CPU of 16 workers and a thread of this process beside the merge;
    # nobody reads its results (no dashboard). Nannies hand this config to their workers.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {},
                          "distributed.worker.multiprocessing-method": "forkserver",
                          "distributed.worker.profile.enabled": False}):
        _preload_forkserver()
        cluster = LocalCluster(n_workers=n, env=dict(os.environ), **local_cluster_options())
    with cluster, own_cluster_client(cluster) as client:
        log.info("started a local Dask cluster: %d worker processes on 127.0.0.1", n)
        yield DaskExecutor(client, local=True, info={"kind": "local"}, **bounds(request))


def _preload_forkserver() -> None:
    from distributed.utils import get_mp_context

    # no effect once the server runs (started early by `shardmerge ingest --workers N`, with these)
    get_mp_context().set_forkserver_preload(WORKER_PRELOAD)


def local_cluster_options(**overrides: Any) -> dict:
    """LocalCluster settings: single-threaded worker processes, everything on 127.0.0.1, no dashboard.
    The scheduler's small HTTP server (health, metrics) takes a free loopback port: its default, 8787,
    clashes with any other Dask on the machine. Worker logs stay quiet: a failed task's error comes back
    to the client, which names it once, without the worker's traceback ahead of it."""
    return {
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        "silence_logs": logging.CRITICAL,
        **overrides,
    }
