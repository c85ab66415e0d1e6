"""An existing Dask scheduler, by address (`--scheduler tcp://HOST:PORT`; compose, a shared cluster)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import ClusterRequest
from .dask_backend import DaskExecutor, bounds, unreachable_workers, wait_for_workers

log = logging.getLogger("shardmerge")


@contextmanager
def scheduler_executor(request: ClusterRequest, **_context: object) -> Iterator[DaskExecutor]:
    from distributed import Client

    with Client(request.address, timeout="30s", set_as_default=False) as client:
        # tasks would wait forever on a scheduler without workers: bound that wait like a batch job's
        wait_for_workers(client, 1, request.worker_wait_s, f"the Dask scheduler at {request.address}")
        # results straight from the workers when this process reaches them all (see own_cluster_client)
        unreachable = unreachable_workers(client)
        client.direct_to_workers = not unreachable
        if unreachable:
            log.info("results come through the scheduler: worker(s) %s do not answer from this host",
                     ", ".join(unreachable[:5]))
        ex = DaskExecutor(client, local=False, info={"kind": "scheduler"}, **bounds(request))
        log.info("using the Dask scheduler at %s (%d workers)", request.address, ex.workers)
        yield ex
