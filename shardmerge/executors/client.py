"""A live `distributed.Client` the caller owns (`shardmerge.ingest(client=...)`, or the active default client):
tasks run on its workers, and it is left open, its cluster running, when the run ends or fails."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import ClusterRequest
from .dask_backend import DaskExecutor, bounds, wait_for_workers

log = logging.getLogger("shardmerge")


@contextmanager
def client_executor(request: ClusterRequest, **_context: object) -> Iterator[DaskExecutor]:
    client = request.client
    # never closed, and none of its settings changed (direct_to_workers included): it is the caller's
    wait_for_workers(client, 1, request.worker_wait_s, f"the Dask client's scheduler at {client.scheduler.address}")
    hosts = [w.get("host", "") for w in client.scheduler_info(n_workers=-1).get("workers", {}).values()]
    ex = DaskExecutor(client, local=all(_loopback(h) for h in hosts), info={"kind": "client"}, **bounds(request))
    log.info("using the caller's Dask client (scheduler %s, %d workers); it stays open after the run",
             client.scheduler.address, ex.workers)
    yield ex


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
