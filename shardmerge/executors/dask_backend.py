"""What the Dask backends share: the executor over a distributed Client, the watchdog that bounds every
wait for results, the bounded wait for workers, and the check that every worker sees the scratch."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..config import ClusterRequest
from ..errors import ClusterError
from .base import should_retry

log = logging.getLogger("shardmerge")


def own_cluster_client(cluster: Any) -> Any:
    """The client of a cluster this run started (a LocalCluster, batch jobs, an in-allocation runner): its
    scheduler reaches every worker from this host or allocation, so this process can too, and results
    come straight from the worker that holds them. Through the scheduler (distributed's default for a
    client outside the cluster) each result takes a second hop, pickled in-band at protocol 4: a copy on
    every side, which made a node-local fetch of 360 MB take 1.9 s instead of 1.1-1.4 s here. A worker
    this process cannot reach after all is still gathered through the scheduler (distributed falls
    back, after distributed's connect timeout). An existing scheduler (`--scheduler`) may sit where its
    workers are not reachable from here: its client gathers direct only when every worker answered a
    probe (`unreachable_workers`)."""
    from distributed import Client

    return Client(cluster, set_as_default=False, direct_to_workers=True)


def unreachable_workers(client: Any, timeout_s: float = 2.0) -> list[str]:
    """The connected workers this process cannot open a TCP connection to within `timeout_s` (all probed
    at once), or that do not listen on TCP at all (their results can only come through the scheduler)."""
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import parse_address, parse_host_port

    def unreachable(address: str) -> bool:
        scheme, where = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return True
        try:
            socket.create_connection(parse_host_port(where), timeout=timeout_s).close()
        except OSError:
            return True
        return False

    workers = sorted(client.scheduler_info(n_workers=-1).get("workers", {}))
    if not workers:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(workers))) as pool:
        return [w for w, bad in zip(workers, pool.map(unreachable, workers), strict=True) if bad]


class DaskExecutor:
    def __init__(self, client: Any, local: bool = True, info: dict | None = None, worker_wait_s: float = 600.0,
                 stall_s: float = 1800.0):
        self.client = client
        self.local = local  # every worker on this machine (a LocalCluster)
        # the run report says which way task results come back (see own_cluster_client)
        self.info = {**(info or {}), "results_from": "workers" if client.direct_to_workers else "scheduler"}
        self.worker_wait_s = worker_wait_s  # longest time the run may go on with no worker connected
        self.stall_s = stall_s  # longest time without any task finishing while tasks are in flight

    runs_on_workers = True  # (see base.Executor.runs_on_workers)

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def map(self, fn: Callable, items: Sequence, *args: Any, name: str, retries: int = 0,  # noqa: PLR0913 - base.Executor.map's contract
            on_result: Callable[[Any], None] | None = None,
            keep_errors: tuple[type[BaseException], ...] = (),
            fold: Callable[[Any], None] | None = None, first: Sequence[int] | None = None) -> list:
        """Submit one task per item and return results in item order. A task that raises a plain
        exception (an OSError from a flaky disk or network) is resubmitted up to `retries` times; a
        ShardmergeError is never retried: it names a bad file, a full disk or a failed fsync, which
        another attempt would only repeat or, for fsync, could wrongly report as fixed. An exception of a
        `keep_errors` type is the task's result. A worker that dies is the scheduler's business: it reruns
        the task elsewhere. With `fold`, results go to it in item order as soon as their prefix is complete
        and are dropped (a survey's scan results never pile up in the driver)."""
        from distributed import as_completed

        start = list(first) if first is not None else list(range(len(items)))
        if sorted(start) != list(range(len(items))):
            raise ValueError(f"{name}: `first` must order every item once")
        # the scheduler runs a higher priority first; submitting in that order too keeps its queue in order
        priority = {i: len(items) - rank for rank, i in enumerate(start)}

        def submit(i: int, attempt: int):
            suffix = f"-retry{attempt}" if attempt else ""
            return self.client.submit(fn, items[i], *args, key=f"{name}-{i:06d}{suffix}", pure=False,
                                      priority=priority[i])

        futures = {submit(i, 0): (i, 0) for i in start}
        results: list[Any] = [] if fold else [None] * len(items)
        in_order = InOrder(fold) if fold else None

        def done(i: int, r: Any) -> None:
            if on_result:
                on_result(r)
            if in_order:
                in_order.put(i, r)
            else:
                results[i] = r

        # results come with their futures, fetched by the client's event loop as tasks finish, not by one
        # blocking round trip each (half the cost per task on a busy machine)
        pending = as_completed(list(futures), loop=self.client.loop, with_results=True, raise_errors=False)
        watch = _Watchdog(self.client, self.worker_wait_s, self.stall_s, name)
        try:
            for fut, result in watch.completed(pending):
                i, attempt = futures[fut]
                if fut.status == "error":
                    exc = fut.exception()
                    if isinstance(exc, keep_errors):
                        done(i, exc)
                    else:  # raises, unless it resubmits
                        _retry_or_raise(fut, exc, retries, submit, futures, pending)
                    continue
                if fut.status == "lost":  # its result died with its worker: the scheduler computes it again
                    pending.add(fut)  # (and the watchdog bounds the wait for a worker to do it)
                    continue
                _check_finished(fut)
                done(i, result)
                fut.release()  # its result is ours now: the worker may drop it
        finally:
            for f in futures:
                f.release()
        return results

    def map_on(self, fn: Callable, feed: Feed, *args: Any, name: str, window: int,
               fold: Callable[[int, Any], None]) -> dict[int, str]:
        """Run `fn(item, *args)` for each (item, worker) of `feed`, in the order given, on that worker only
        (what it holds is on its own disk), at most `window` at once, so that what comes back stays a few
        tasks' worth. The feed may still be filling from another thread (fetches that start while shards
        are being written): this returns once it is closed and drained. `fold(k, result)` takes the k-th
        item's result as it arrives (None for a lost one): not in order, since a task pinned behind a long
        one on its worker would otherwise hold every later result here. Returns {k: why} for the items
        that could not run there: the worker is gone (before or during the task) or the task failed on
        it. The caller recomputes those."""
        from distributed import as_completed

        # results are fetched by the client's event loop while this thread keeps the previous ones
        arrived = as_completed([], loop=self.client.loop, with_results=True, raise_errors=False)
        watch = _Watchdog(self.client, self.worker_wait_s, self.stall_s, name)
        run = _PinnedTasks(self.client, fn, args, name, fold, arrived)
        try:
            while not feed.cancelled:
                run.forget_gone_workers()
                run.submit_from(feed, window)
                if not run.pending:
                    if feed.drained:
                        break
                    watch.last_progress = time.monotonic()  # nothing in flight: waiting on the feed is no stall
                    feed.wait(watch.POLL_S)
                    continue
                batch = arrived.next_batch(block=False)
                run.collect(batch)
                if batch:
                    watch.last_progress = time.monotonic()
                else:
                    watch.check()
                    watch.wait(arrived)
        finally:
            for fut in run.pending:
                fut.release()
        return run.lost

    def run_on_workers(self, fn: Callable, *args: Any) -> dict[str, Any]:
        """`fn(*args)` on every connected worker, outside the task graph (cleanup of what they hold)."""
        return self.client.run(fn, *args)


def _retry_or_raise(fut: Any, exc: BaseException, retries: int, submit: Callable[[int, int], Any],
                    futures: dict[Any, tuple[int, int]], pending: Any) -> None:
    """A map task that failed with `exc`: resubmitted (`submit(i, attempt)`, its new future added to
    `futures` and `pending`) when should_retry allows, else its exception raised: its message names the file."""
    i, attempt = futures[fut]
    if not should_retry(exc, attempt, retries):
        raise exc
    log.warning("task %s failed (%s: %s); retrying", fut.key, type(exc).__name__, exc)
    again = submit(i, attempt + 1)
    futures[again] = (i, attempt + 1)
    pending.add(again)


def _check_finished(fut: Any) -> None:
    """A map task neither failed nor lost must have finished: cancelled means the scheduler dropped it
    (restarted, or closing)."""
    if fut.status != "finished":
        raise ClusterError(f"task {fut.key} was {fut.status} by the Dask scheduler; finished shards are "
                           "kept: rerun the same command")


class _PinnedTasks:
    """One map_on's tasks: those in flight ({future: k}), each item's worker (by k), the workers last seen
    connected, and the items lost ({k: why}, each also folded as None)."""

    LOOK_EVERY_S = 0.5  # which workers are connected: asked at most twice a second

    def __init__(self, client: Any, fn: Callable, args: tuple, name: str, fold: Callable[[int, Any], None],
                 arrived: Any):
        self.client, self.fn, self.args, self.name, self.fold, self.arrived = client, fn, args, name, fold, arrived
        self.lost: dict[int, str] = {}
        self.pending: dict[Any, int] = {}
        self.workers: list[str] = []
        self.alive: set[str] = set()
        self.next_look = 0.0

    def look(self) -> set[str]:
        return set(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def lose(self, k: int, why: str) -> None:
        self.lost[k] = why
        self.fold(k, None)

    def forget_gone_workers(self) -> None:
        """Cancel, as lost, the tasks pinned to a worker that left: such a task would wait for ever."""
        now = time.monotonic()
        if now < self.next_look:
            return
        self.alive, self.next_look = self.look(), now + self.LOOK_EVERY_S
        for fut, k in list(self.pending.items()):
            if self.workers[k] not in self.alive:
                del self.pending[fut]
                fut.cancel()
                self.lose(k, f"worker {self.workers[k]} left during the task")

    def submit_from(self, feed: Feed, window: int) -> None:
        """Submit what the feed holds, each on its worker, while fewer than `window` are in flight."""
        while len(self.pending) < window and (got := feed.take()) is not None:
            item, worker = got
            k = len(self.workers)
            self.workers.append(worker)
            if worker not in self.alive:  # or it joined since the last look (a worker that just wrote)
                self.alive = self.look()
            if worker not in self.alive:
                self.lose(k, f"worker {worker or '?'} is gone")
                continue
            # ahead of the tasks queued on that worker (a fetch is short, and its worker's next
            # shard would otherwise hold it until the worker ran out of shards)
            fut = self.client.submit(self.fn, item, *self.args, key=f"{self.name}-{k:06d}", pure=False,
                                     workers=[worker], allow_other_workers=False, priority=1)
            self.pending[fut] = k
            self.arrived.add(fut)

    def collect(self, batch: Iterable[tuple[Any, Any]]) -> None:
        """Fold the results of a batch of finished futures; a failed one is lost."""
        for fut, result in batch:
            k = self.pending.pop(fut, None)
            if k is None:  # cancelled by forget_gone_workers
                continue
            if fut.status == "finished":
                self.fold(k, result)
            else:
                why = fut.exception() if fut.status == "error" else ""
                self.lose(k, f"{fut.status} on {self.workers[k]}: {why}")
            fut.release()


class Feed:
    """The (item, worker) pairs of a map_on, which may arrive while it runs: `put` from any thread, then
    `close`. `close(cancel=True)` makes the map_on return at once, dropping what is in flight (the run is
    failing anyway)."""

    def __init__(self, pairs: Iterable[tuple[Any, str]] = (), closed: bool = False):
        self._items: deque[tuple[Any, str]] = deque(pairs)
        self._closed = closed
        self.cancelled = False
        self._cond = threading.Condition()

    def put(self, item: Any, worker: str) -> None:
        with self._cond:
            self._items.append((item, worker))
            self._cond.notify_all()

    def close(self, cancel: bool = False) -> None:
        with self._cond:
            self._closed = True
            self.cancelled = self.cancelled or cancel
            self._cond.notify_all()

    def take(self) -> tuple[Any, str] | None:
        with self._cond:
            return self._items.popleft() if self._items else None

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def wait(self, timeout: float) -> None:
        """Until an item arrives or the feed closes, at most `timeout` seconds."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)


class InOrder:
    """Hands results to `fold` in item order, holding only those that arrived before an earlier one."""

    def __init__(self, fold: Callable[[Any], None]):
        self.fold = fold
        self.next = 0
        self.waiting: dict[int, Any] = {}

    def put(self, i: int, r: Any) -> None:
        self.waiting[i] = r
        while self.next in self.waiting:
            self.fold(self.waiting.pop(self.next))
            self.next += 1


def bounds(request: ClusterRequest) -> dict[str, float]:
    return {"worker_wait_s": request.worker_wait_s, "stall_s": request.stall_s}


class _Watchdog:
    """Bounds every wait for results. A scheduler keeps tasks forever when its last worker is gone (SIGKILLed,
    its job ended), a result held by a dead worker is recomputed (so fetching it waits for a worker too), and
    a task can hang (a dead NFS mount): without this the run would wait without end. The worker count is
    asked at most once a second. Between looks it sleeps on the results queue's condition, so a result that
    arrives wakes it at once instead of at the end of a poll interval."""

    POLL_S = 0.05

    def __init__(self, client: Any, worker_wait_s: float, stall_s: float, name: str):
        self.client = client
        self.worker_wait_s = worker_wait_s
        self.stall_s = stall_s
        self.name = name
        self.last_progress = time.monotonic()
        self.no_worker_since: float | None = None
        self.next_check = 0.0

    def completed(self, pending: Any) -> Iterator[Any]:
        """The futures of `pending` as they finish."""
        while not pending.is_empty():
            batch = pending.next_batch(block=False)
            if batch:
                self.last_progress = time.monotonic()
                yield from batch
                continue
            self.check()
            self.wait(pending)

    def wait(self, pending: Any) -> None:
        """Up to POLL_S, or until `pending` (a distributed as_completed) has a result. Its event loop puts
        the result in its queue before it notifies under `thread_condition`, so asking whether the queue is
        empty under that condition cannot miss a wakeup."""
        with pending.thread_condition:
            if not pending.has_ready():
                pending.thread_condition.wait(timeout=self.POLL_S)

    def check(self) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + 1.0
        if self._workers() == 0:
            self.no_worker_since = self.no_worker_since or now
            if now - self.no_worker_since > self.worker_wait_s:
                raise ClusterError(
                    f"no Dask worker has been connected for {now - self.no_worker_since:.0f} s (--worker-wait "
                    f"{self.worker_wait_s:.0f}) while {self.name} tasks were waiting: the workers died or their "
                    "jobs ended. Finished shards are kept: rerun the same command once workers are back")
        else:
            self.no_worker_since = None
        if now - self.last_progress > self.stall_s:
            raise ClusterError(
                f"no {self.name} task finished for {now - self.last_progress:.0f} s (--stall-timeout "
                f"{self.stall_s:.0f}) though workers are connected: a task is stuck (a hung filesystem?). "
                "Finished shards are kept: rerun the same command")

    def _workers(self) -> int:
        try:
            return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        except Exception:  # noqa: BLE001 - a scheduler that does not answer has no usable worker either
            return 0


def wait_for_workers(client: Any, n: int, timeout: float, what: str) -> None:
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError as exc:
        raise ClusterError(f"{what}: fewer than {n} worker(s) connected within {timeout:.0f} s") from exc


def blind_workers(ex: Any, scratch: str) -> list[str]:
    """The workers ("address on host") that cannot see a probe file this process writes in `scratch`."""
    probe = os.path.join(scratch, f".visible-{uuid.uuid4().hex}")
    with open(probe, "w", encoding="utf-8") as f:
        f.write(socket.gethostname())
    try:
        seen = ex.client.run(_sees, probe)
    finally:
        os.unlink(probe)
    return sorted(f"{addr} on {host}" for addr, (host, ok) in seen.items() if not ok)


def check_shared_scratch(ex: Any, scratch: str) -> None:
    """--scratch-kind shared: shards are written by workers and read by this process, so on a cluster beyond
    this machine scratch must be a filesystem every worker shares with it. Refuse before any work when a
    worker cannot see it."""
    if not ex.runs_on_workers or ex.local:
        return
    blind = blind_workers(ex, scratch)
    if blind:
        raise ClusterError(f"scratch {scratch} is not visible from worker(s) {', '.join(blind)}: the shards they "
                           "write could not reach the merge on this host. Pass --scratch on a filesystem that "
                           "every node mounts at the same path, or --scratch-kind node-local")


def _sees(path: str) -> tuple[str, bool]:
    return socket.gethostname(), os.path.isfile(path)
