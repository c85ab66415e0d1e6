"""A LocalCluster on this machine (the default): single-threaded worker processes on 127.0.0.1."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import ClusterRequest
from .dask_backend import DaskExecutor, bounds

log = logging.getLogger("shardmerge")


@contextmanager
def local_executor(request: ClusterRequest) -> Iterator[DaskExecutor]:
    import dask
    from distributed import Client, LocalCluster

    n = request.workers or os.cpu_count() or 1
    # The nanny's default MALLOC_TRIM_THRESHOLD_=65536 made zstd compression burn ~1.8x the CPU here.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}), \
            LocalCluster(n_workers=n, **local_cluster_options()) as cluster, Client(cluster) as client:
        log.info("started a local Dask cluster: %d worker processes on 127.0.0.1", n)
        yield DaskExecutor(client, local=True, info={"kind": "local"}, **bounds(request))


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
