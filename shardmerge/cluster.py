"""The thin Dask layer. Stages hand an Executor plain functions and plain arguments; which cluster runs
them (a LocalCluster, an existing scheduler, or none at all) is decided here and nowhere else."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("shardmerge")


class InlineExecutor:
    """Runs tasks in this process, one after another (--workers 0): for debugging and tiny inputs."""

    workers = 0
    address = "inline"

    def map(self, fn: Callable, items: Sequence, *args: Any, name: str, retries: int = 0,
            on_result: Callable[[Any], None] | None = None) -> list:
        from .errors import ShardmergeError

        out = []
        for item in items:
            for attempt in range(retries + 1):
                try:
                    r = fn(item, *args)
                    break
                except ShardmergeError:
                    raise
                except Exception as exc:  # same rule as DaskExecutor.map
                    if attempt == retries:
                        raise
                    log.warning("task %s failed (%s: %s); retrying", name, type(exc).__name__, exc)
            if on_result:
                on_result(r)
            out.append(r)
        return out


class DaskExecutor:
    def __init__(self, client: Any):
        self.client = client

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def map(self, fn: Callable, items: Sequence, *args: Any, name: str, retries: int = 0,
            on_result: Callable[[Any], None] | None = None) -> list:
        """Submit one task per item and return results in item order. A task that raises a plain
        exception (an OSError from a flaky disk or network) is resubmitted up to `retries` times; a
        ShardmergeError is never retried: it names a bad file, a full disk or a failed fsync, which
        another attempt would only repeat or, for fsync, could wrongly report as fixed. A worker that
        dies is the scheduler's business: it reruns the task elsewhere."""
        from distributed import as_completed

        from .errors import ShardmergeError

        def submit(i: int, attempt: int):
            suffix = f"-retry{attempt}" if attempt else ""
            return self.client.submit(fn, items[i], *args, key=f"{name}-{i:06d}{suffix}", pure=False)

        futures = {submit(i, 0): (i, 0) for i in range(len(items))}
        results: list[Any] = [None] * len(items)
        pending = as_completed(list(futures))
        try:
            for fut in pending:
                i, attempt = futures[fut]
                if fut.status == "error":
                    exc = fut.exception()
                    if attempt < retries and not isinstance(exc, ShardmergeError):
                        log.warning("task %s failed (%s: %s); retrying", fut.key, type(exc).__name__, exc)
                        again = submit(i, attempt + 1)
                        futures[again] = (i, attempt + 1)
                        pending.add(again)
                        continue
                r = fut.result()  # re-raises the task's exception, with its message naming the file
                results[i] = r
                if on_result:
                    on_result(r)
        finally:
            for f in futures:
                f.release()
        return results


@contextmanager
def executor(workers: int | None = None, scheduler: str | None = None) -> Iterator[InlineExecutor | DaskExecutor]:
    """An existing scheduler by address, no cluster (workers == 0), or a LocalCluster on 127.0.0.1."""
    if workers == 0 and scheduler is None:
        yield InlineExecutor()
        return
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            log.info("using the Dask scheduler at %s (%d workers)", scheduler,
                     len(client.scheduler_info(n_workers=-1).get("workers", {})))
            yield DaskExecutor(client)
        return
    n = workers or os.cpu_count() or 1
    # The nanny's default MALLOC_TRIM_THRESHOLD_=65536 made zstd compression burn ~1.8x the CPU here.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}), \
            LocalCluster(n_workers=n, **local_cluster_options()) as cluster, Client(cluster) as client:
        log.info("started a local Dask cluster: %d worker processes on 127.0.0.1", n)
        yield DaskExecutor(client)


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
