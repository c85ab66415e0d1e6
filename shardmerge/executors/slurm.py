"""SLURM batch jobs through dask-jobqueue's SLURMCluster (`--cluster slurm --jobs N`). Job sizes come from
jobqueue's own config with the CLI's overrides on top; the job script is testable as text (slurm_options)."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..config import ClusterRequest
from ..errors import InputError
from .dask_backend import DaskExecutor, bounds, own_cluster_client, wait_for_workers

log = logging.getLogger("shardmerge")


@contextmanager
def slurm_executor(request: ClusterRequest, log_dir: str | None) -> Iterator[DaskExecutor]:
    with slurm_cluster(request, log_dir) as (client, info):
        yield DaskExecutor(client, local=False, info=info, **bounds(request))


@contextmanager
def slurm_cluster(request: ClusterRequest, log_dir: str | None) -> Iterator[tuple[Any, dict]]:
    """A dask-jobqueue SLURMCluster scaled to `jobs` batch jobs. Leaving the block, normally, on an error
    or on Ctrl-C, closes it and cancels every job it submitted, also when closing itself fails (it can, for
    a job that sbatch refused)."""
    SLURMCluster = _import_slurm_cluster()
    kwargs = slurm_options(request, log_dir)
    cluster = SLURMCluster(**kwargs)
    try:
        with own_cluster_client(cluster) as client:
            t0 = time.monotonic()
            cluster.scale(jobs=request.jobs)
            log.info("submitted %d SLURM job(s) of %s cores, %s; waiting for workers (at most %.0f s)",
                     request.jobs, kwargs["cores"], kwargs["memory"], request.worker_wait_s)
            where = f"; job logs in {kwargs['log_directory']}" if kwargs.get("log_directory") else ""
            wait_for_workers(client, 1, request.worker_wait_s,
                              f"SLURM ({request.jobs} job(s) requested; an sbatch error above means SLURM refused "
                              f"the request, else check squeue{where})")
            first = time.monotonic() - t0
            per_job = int(kwargs.get("processes") or 1)
            with suppress(TimeoutError):  # the rest may join later, the run goes on without them
                client.wait_for_workers(request.jobs * per_job, timeout=min(60.0, request.worker_wait_s))
            info = {"kind": "slurm", "jobs": request.jobs, "seconds_to_first_worker": round(first, 2),
                    "seconds_to_workers": round(time.monotonic() - t0, 2), "job_script": cluster.job_script(),
                    "job_logs": os.path.abspath(kwargs.get("log_directory") or os.getcwd())}
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

    # keys as dask canonicalizes them: a YAML file says job-script-prologue, the environment
    # (DASK_JOBQUEUE__SLURM__JOB_SCRIPT_PROLOGUE) job_script_prologue
    cfg: dict = {}
    for key, value in (dask.config.get("jobqueue.slurm", default={}) or {}).items():
        if value is not None or key.replace("_", "-") not in cfg:  # a set value beats the other spelling's default
            cfg[key.replace("_", "-")] = value
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
    # as for local clusters: without the nanny's MALLOC_TRIM_THRESHOLD_, zstd runs ~1.8x faster; and no
    # statistical profiler (a thread per worker sampling 100 times a second, ~3% of its CPU) when these
    # jobs have no dashboard to show its results
    kw["job_script_prologue"] = [*(cfg.get("job-script-prologue") or []),
                                 "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{}'",
                                 "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False"]
    if cfg.get("log-directory"):  # the user's own jobqueue setting
        kw["log_directory"] = os.path.abspath(os.path.expanduser(str(cfg["log-directory"])))
    elif log_dir:
        kw["log_directory"] = log_dir  # job logs (slurm-*.out): a folder of the run's own, kept (job_log_dir)
    kw.setdefault("scheduler_options", {"dashboard": False, **({"interface": request.interface}
                                                               if request.interface else {})})
    return kw


DEFAULT_JOB_LOGS = "shardmerge-logs"


def job_log_dir(base: str | None, out: str, now: float | None = None) -> str:
    """The folder a run's SLURM job logs go to, kept after the run: `<base>/<UTC time>-<OUT's name>-<pid>`,
    `base` being --job-logs / ClusterRequest.job_logs, else SHARDMERGE_JOB_LOGS, else ./shardmerge-logs. The
    current folder by default because that is where sbatch itself writes slurm-*.out, where SLURM users
    look, and it is on a filesystem the compute nodes mount (the jobs write there). Not scratch (removed
    after a successful run, possibly node-local), and not beside OUT (every name there is shardmerge's
    fixed set, see beside.py). Only the path: dask-jobqueue creates it when it submits the jobs."""
    root = base or os.environ.get("SHARDMERGE_JOB_LOGS") or DEFAULT_JOB_LOGS
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(out)))[:80] or "store"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return os.path.join(os.path.abspath(os.path.expanduser(root)), f"{stamp}-{name}-{os.getpid()}")


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
