"""The thin Dask layer. Stages hand an Executor plain functions and plain arguments; which cluster runs
them (a LocalCluster, an existing scheduler, SLURM batch jobs, a SLURM allocation, or none at all) is
decided here and nowhere else."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from .config import ClusterRequest
from .errors import ClusterError, InputError, ShardmergeError

log = logging.getLogger("shardmerge")


class InlineExecutor:
    """Runs tasks in this process, one after another (--workers 0): for debugging and tiny inputs."""

    workers = 0
    address = "inline"
    local = True
    info = {"kind": "inline"}

    def map(self, fn: Callable, items: Sequence, *args: Any, name: str, retries: int = 0,
            on_result: Callable[[Any], None] | None = None) -> list:
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
    def __init__(self, client: Any, local: bool = True, info: dict | None = None, worker_wait_s: float = 600.0,
                 stall_s: float = 1800.0):
        self.client = client
        self.local = local  # every worker on this machine (a LocalCluster)
        self.info = info or {}
        self.worker_wait_s = worker_wait_s  # longest time the run may go on with no worker connected
        self.stall_s = stall_s  # longest time without any task finishing while tasks are in flight

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

        def submit(i: int, attempt: int):
            suffix = f"-retry{attempt}" if attempt else ""
            return self.client.submit(fn, items[i], *args, key=f"{name}-{i:06d}{suffix}", pure=False)

        futures = {submit(i, 0): (i, 0) for i in range(len(items))}
        results: list[Any] = [None] * len(items)
        pending = as_completed(list(futures))
        watch = _Watchdog(self.client, self.worker_wait_s, self.stall_s, name)
        try:
            for fut in watch.completed(pending):
                i, attempt = futures[fut]
                if fut.status == "error":
                    exc = fut.exception()
                    if attempt < retries and not isinstance(exc, ShardmergeError):
                        log.warning("task %s failed (%s: %s); retrying", fut.key, type(exc).__name__, exc)
                        again = submit(i, attempt + 1)
                        futures[again] = (i, attempt + 1)
                        pending.add(again)
                        continue
                r = watch.result(fut)  # re-raises the task's exception, with its message naming the file
                results[i] = r
                if on_result:
                    on_result(r)
        finally:
            for f in futures:
                f.release()
        return results


@contextmanager
def runner_role(request: ClusterRequest) -> Iterator[Any]:
    """For "slurm-runner", enter dask-jobqueue's SLURMRunner: every rank of the `srun` runs this command;
    rank 0 becomes the scheduler and rank 2+ workers, and those never get past this point (they exit when
    the client is done). Rank 1 goes on and runs the ingest. Other kinds: nothing to do."""
    if request.kind != "slurm-runner":
        yield None
        return
    from dask_jobqueue.slurm import SLURMRunner

    logging.getLogger("distributed").setLevel(logging.WARNING)  # every rank writes to the same batch log
    scheduler_file = request.scheduler_file or os.path.join(os.getcwd(), "shardmerge-scheduler-{job_id}.json")
    net = {"interface": request.interface} if request.interface else {}
    try:
        runner = SLURMRunner(scheduler_file=scheduler_file, scheduler_options={**net, "dashboard": False},
                             worker_options={**net, "nthreads": 1})
    except RuntimeError as exc:  # not inside srun, or fewer than 3 tasks
        raise ClusterError(f"--cluster slurm-runner: {exc} Run it with srun inside an allocation of at least 3 "
                           "tasks (see scripts/slurm/ingest.sbatch)") from exc
    with runner:
        yield runner


@contextmanager
def executor(request: ClusterRequest | None = None, runner: Any = None,
             log_dir: str | None = None) -> Iterator[InlineExecutor | DaskExecutor]:
    """Tasks run in this process (local, 0 workers), on an existing scheduler, on SLURM batch jobs, inside
    a SLURM allocation (`runner` from runner_role), or on a LocalCluster on 127.0.0.1 (the default)."""
    request = request or ClusterRequest()
    if request.kind == "local" and request.workers == 0:
        yield InlineExecutor()
        return
    import dask
    from distributed import Client, LocalCluster

    if request.kind == "scheduler":
        with Client(request.address, timeout="30s") as client:
            # tasks would wait forever on a scheduler without workers: bound that wait like a batch job's
            _wait_for_workers(client, 1, request.worker_wait_s, f"the Dask scheduler at {request.address}")
            ex = DaskExecutor(client, local=False, info={"kind": "scheduler"}, **_bounds(request))
            log.info("using the Dask scheduler at %s (%d workers)", request.address, ex.workers)
            yield ex
        return
    if request.kind == "slurm-runner":
        with Client(runner) as client:
            t0 = time.monotonic()
            _wait_for_workers(client, runner.n_workers, request.worker_wait_s, "the allocation's worker ranks")
            info = {"kind": "slurm-runner", "seconds_to_workers": round(time.monotonic() - t0, 2)}
            yield DaskExecutor(client, local=False, info=info, **_bounds(request))
        return
    if request.kind == "slurm":
        with slurm_cluster(request, log_dir) as (client, info):
            yield DaskExecutor(client, local=False, info=info, **_bounds(request))
        return
    if request.kind != "local":
        raise ClusterError(f"unknown cluster kind {request.kind!r}")
    n = request.workers or os.cpu_count() or 1
    # The nanny's default MALLOC_TRIM_THRESHOLD_=65536 made zstd compression burn ~1.8x the CPU here.
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}), \
            LocalCluster(n_workers=n, **local_cluster_options()) as cluster, Client(cluster) as client:
        log.info("started a local Dask cluster: %d worker processes on 127.0.0.1", n)
        yield DaskExecutor(client, local=True, info={"kind": "local"}, **_bounds(request))


def _bounds(request: ClusterRequest) -> dict[str, float]:
    return {"worker_wait_s": request.worker_wait_s, "stall_s": request.stall_s}


class _Watchdog:
    """Bounds every wait for results. A scheduler keeps tasks forever when its last worker is gone (SIGKILLed,
    its job ended), a result held by a dead worker is recomputed (so fetching it waits for a worker too), and
    a task can hang (a dead NFS mount): without this the run would wait without end. The worker count is
    asked at most once a second; polling the results queue costs nothing."""

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
            time.sleep(self.POLL_S)

    def result(self, fut: Any) -> Any:
        """fut.result(), bounded like the wait for it: the worker holding it may be gone."""
        while True:
            try:
                r = fut.result(timeout=1.0)
            except TimeoutError:
                self.check()
                continue
            self.last_progress = time.monotonic()
            return r

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


def _wait_for_workers(client: Any, n: int, timeout: float, what: str) -> None:
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError as exc:
        raise ClusterError(f"{what}: fewer than {n} worker(s) connected within {timeout:.0f} s") from exc


@contextmanager
def slurm_cluster(request: ClusterRequest, log_dir: str | None) -> Iterator[tuple[Any, dict]]:
    """A dask-jobqueue SLURMCluster scaled to `jobs` batch jobs. Leaving the block, normally, on an error
    or on Ctrl-C, closes it and cancels every job it submitted, also when closing itself fails (it can, for
    a job that sbatch refused)."""
    from distributed import Client

    SLURMCluster = _import_slurm_cluster()
    kwargs = slurm_options(request, log_dir)
    cluster = SLURMCluster(**kwargs)
    try:
        with Client(cluster) as client:
            t0 = time.monotonic()
            cluster.scale(jobs=request.jobs)
            log.info("submitted %d SLURM job(s) of %s cores, %s; waiting for workers (at most %.0f s)",
                     request.jobs, kwargs["cores"], kwargs["memory"], request.worker_wait_s)
            where = f"; job logs in {kwargs['log_directory']}" if kwargs.get("log_directory") else ""
            _wait_for_workers(client, 1, request.worker_wait_s,
                              f"SLURM ({request.jobs} job(s) requested; an sbatch error above means SLURM refused "
                              f"the request, else check squeue{where})")
            first = time.monotonic() - t0
            per_job = int(kwargs.get("processes") or 1)
            with suppress(TimeoutError):  # the rest may join later, the run goes on without them
                client.wait_for_workers(request.jobs * per_job, timeout=min(60.0, request.worker_wait_s))
            info = {"kind": "slurm", "jobs": request.jobs, "seconds_to_first_worker": round(first, 2),
                    "seconds_to_workers": round(time.monotonic() - t0, 2), "job_script": cluster.job_script()}
            log.info("SLURM: first worker after %.1f s, %d worker(s) after %.1f s", first,
                     len(client.scheduler_info(n_workers=-1)["workers"]), info["seconds_to_workers"])
            yield client, info
    finally:
        _close_slurm_cluster(cluster)


def _close_slurm_cluster(cluster: Any) -> None:
    jobs = sorted({str(j) for j in (getattr(w, "job_id", None) for w in cluster.workers.values()) if j})
    try:
        cluster.close(timeout=60)
    except Exception as exc:  # noqa: BLE001 - the jobs must be cancelled whatever went wrong
        log.warning("closing the SLURM cluster failed (%s: %s); cancelling its jobs directly",
                    type(exc).__name__, exc)
    if jobs:  # idempotent: scancel of a finished job is harmless
        subprocess.run(["scancel", *jobs], capture_output=True, check=False)


def _import_slurm_cluster() -> type:
    """dask-jobqueue's runner module, imported with the package, makes SIGINT call sys.exit(): Ctrl-C
    would then exit with status 0. Keep our own handler (KeyboardInterrupt, status 130)."""
    handler = signal.getsignal(signal.SIGINT)
    from dask_jobqueue import SLURMCluster

    signal.signal(signal.SIGINT, handler)
    return SLURMCluster


def slurm_options(request: ClusterRequest, log_dir: str | None) -> dict:
    """SLURMCluster keyword arguments: dask-jobqueue's own config (`jobqueue.slurm.*` from a jobqueue.yaml
    or DASK_JOBQUEUE__SLURM__* variables) with the CLI's overrides on top. Pure apart from reading config."""
    import dask

    cfg = dask.config.get("jobqueue.slurm", default={}) or {}
    kw: dict[str, Any] = {}
    for key, value in (("queue", request.queue), ("account", request.account), ("walltime", request.walltime),
                       ("interface", request.interface)):
        if value:
            kw[key] = value
    cores = request.job_cores or cfg.get("cores")
    memory = request.job_memory or cfg.get("memory")
    if not cores or not memory:
        raise InputError("SLURM jobs need a size: pass --job-cores and --job-memory, or set jobqueue.slurm.cores "
                         "and jobqueue.slurm.memory in a jobqueue.yaml (or DASK_JOBQUEUE__SLURM__CORES/MEMORY)")
    kw["cores"], kw["memory"] = int(cores), str(memory)
    if cfg.get("processes") is None:  # one single-threaded worker process per core: FITS parsing holds the GIL
        kw["processes"] = int(cores)
    if request.job_extra:
        kw["job_extra_directives"] = [*(cfg.get("job-extra-directives") or []), *request.job_extra]
    walltime = kw.get("walltime") or cfg.get("walltime")
    if walltime:
        lifetime, stagger = worker_lifetime(str(walltime))
        kw["worker_extra_args"] = [*(cfg.get("worker-extra-args") or []), "--lifetime", f"{lifetime}s",
                                   "--lifetime-stagger", f"{stagger}s"]
    # as for local clusters: without the nanny's MALLOC_TRIM_THRESHOLD_, zstd runs ~1.8x faster
    kw["job_script_prologue"] = [*(cfg.get("job-script-prologue") or []),
                                 "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{}'"]
    if not cfg.get("log-directory") and log_dir:
        kw["log_directory"] = log_dir  # job logs (slurm-*.out) go beside the shards, not into the cwd
    kw.setdefault("scheduler_options", {"dashboard": False, **({"interface": request.interface}
                                                               if request.interface else {})})
    return kw


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
    """Workers retire (handing their work over) before SLURM kills the job: a margin of 10% of the walltime,
    at least 60 s and at most 10 min, staggered so a job's workers do not all leave at once."""
    total = walltime_seconds(walltime)
    margin = min(max(60, total // 10), 600)
    lifetime = max(total - margin, total // 2)
    return lifetime, max(1, min(margin // 2, 300))


def check_shared_scratch(ex: InlineExecutor | DaskExecutor, scratch: str) -> None:
    """Shards are written by workers and read by this process: on a cluster beyond this machine, scratch
    must be a filesystem every worker shares with it. Refuse before any work when a worker cannot see it
    (node-local disks); pass --scratch on a shared filesystem (the same path on every node)."""
    if not isinstance(ex, DaskExecutor) or ex.local:
        return
    probe = os.path.join(scratch, f".visible-{uuid.uuid4().hex}")
    with open(probe, "w", encoding="utf-8") as f:
        f.write(socket.gethostname())
    try:
        seen = ex.client.run(_sees, probe)
    finally:
        os.unlink(probe)
    blind = sorted(f"{addr} on {host}" for addr, (host, ok) in seen.items() if not ok)
    if blind:
        raise ClusterError(f"scratch {scratch} is not visible from worker(s) {', '.join(blind)}: the shards they "
                           "write could not reach the merge on this host. Pass --scratch on a filesystem that "
                           "every node mounts at the same path")


def _sees(path: str) -> tuple[str, bool]:
    return socket.gethostname(), os.path.isfile(path)


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
