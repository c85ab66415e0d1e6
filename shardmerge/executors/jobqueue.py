"""Batch jobs through dask-jobqueue, one backend for every cluster class it has (`--cluster NAME --jobs N`).
What differs between schedulers (keyword names, time formats, how memory and cores are asked for) is a
JobQueueScheduler subclass in the scheduler's own module; everything else is here, once: job sizes from
jobqueue's own config (`jobqueue.<name>.*`, from a jobqueue.yaml or DASK_JOBQUEUE__<NAME>__* variables) with
the CLI's overrides on top, the bounded wait for workers, the lifetime hand-over before the walltime, per-job
scratch, the job logs' folder, and a close that cancels every job it submitted. The job script is testable
as text (job_options, then the class's job_script())."""

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
from ..errors import ClusterError, InputError
from .dask_backend import DaskExecutor, bounds, own_cluster_client

log = logging.getLogger("shardmerge")

DEFAULT_JOB_LOGS = "shardmerge-logs"


class JobQueueScheduler:
    """One dask-jobqueue cluster class, as shardmerge drives it. A subclass sets the class attributes and
    overrides the mapping methods where its scheduler differs; job_options does the rest."""

    name = ""  # the --cluster value, and the section of jobqueue.yaml (jobqueue.<name>.*)
    label = ""  # how messages name it ("SGE")
    cluster_class = ""  # the dask_jobqueue class
    job_id = ""  # shell expression for the job's id inside a job (per-job scratch folders are named by it)
    status_command = ""  # what a user runs to see the jobs (named when none starts)
    account_keyword: str | None = "account"  # jobqueue's keyword for --account (None: see account_options)
    queue_keyword: str | None = "queue"  # None: the scheduler has no queues (--queue is refused)

    # --- the mapping, per scheduler ---------------------------------------------------------------------

    def walltime(self, text: str) -> tuple[str, int]:
        """--walltime as the scheduler writes it, and in seconds. Default: [D-]HH:MM[:SS] in, HH:MM:SS out."""
        seconds = clock_seconds(text)
        return hms(seconds), seconds

    def walltime_options(self, native: str) -> dict[str, Any]:
        return {"walltime": native}

    def account_options(self, account: str) -> dict[str, Any]:
        return {self.account_keyword: account} if self.account_keyword else {}

    def size_options(self, cores: int, memory: str, cfg: dict) -> dict[str, Any]:
        """Keywords that ask the scheduler for `cores` and `memory`, beyond jobqueue's own cores/memory."""
        del cores, memory, cfg
        return {}

    def extra_directives(self, request: ClusterRequest, cfg: dict, cores: int) -> Any:
        """jobqueue's job_extra_directives: jobqueue's own (cfg), then --job-extra, and whatever asks for
        `cores` (or the account) where the scheduler needs a directive for that."""
        del cores
        return [*(cfg.get("job-extra-directives") or []), *request.job_extra]

    def log_directives(self, folder: str) -> list[str]:
        """Directives that send the job's logs to `folder`, where the cluster class's log_directory does not."""
        del folder
        return []

    def check(self, request: ClusterRequest) -> str | None:
        """What is wrong with `request` for this scheduler beyond the job size (in words that suit the CLI
        and the API alike); None: nothing."""
        if request.queue and not self.queue_keyword:
            return f"{self.label} has no queues: select the machines with a job directive (job extra) instead"
        return None

    # --- shared -------------------------------------------------------------------------------------

    def config(self) -> dict:
        """`jobqueue.<name>.*` with keys as a YAML file spells them (job-script-prologue): the environment
        (DASK_JOBQUEUE__SGE__JOB_SCRIPT_PROLOGUE) gives job_script_prologue beside jobqueue's default."""
        import dask

        import_jobqueue()  # its defaults are part of the config from then on
        cfg: dict = {}
        for key, value in (dask.config.get(f"jobqueue.{self.name}", default={}) or {}).items():
            if value is not None or key.replace("_", "-") not in cfg:  # a set value beats the other spelling's
                cfg[key.replace("_", "-")] = value
        return cfg

    def size(self, request: ClusterRequest, cfg: dict) -> tuple[int, str]:
        cores = request.job_cores or cfg.get("cores")
        memory = request.job_memory or cfg.get("memory")
        if not cores or not memory:
            raise InputError(self.size_problem("--job-cores", "--job-memory"))
        return int(cores), str(memory)

    def size_problem(self, cores: str, memory: str) -> str:
        return (f"{self.label} jobs need a size: pass {cores} and {memory}, or set jobqueue.{self.name}.cores "
                f"and jobqueue.{self.name}.memory in a jobqueue.yaml (or "
                f"DASK_JOBQUEUE__{self.name.upper()}__CORES/MEMORY)")

    def cluster_type(self) -> type:
        return getattr(import_jobqueue(), self.cluster_class)


def import_jobqueue() -> Any:
    """dask_jobqueue, imported keeping our SIGINT handler: its runner module, imported with the package, makes
    SIGINT call sys.exit(), so Ctrl-C would exit with status 0 (ours raises KeyboardInterrupt, status 130)."""
    handler = signal.getsignal(signal.SIGINT)
    import dask_jobqueue

    signal.signal(signal.SIGINT, handler)
    return dask_jobqueue


def job_options(scheduler: JobQueueScheduler, request: ClusterRequest, log_dir: str | None) -> dict:
    """The cluster class's keyword arguments: jobqueue's own config with the request's options on top. Pure
    apart from reading config."""
    cfg = scheduler.config()
    kw: dict[str, Any] = {}
    problem = scheduler.check(request)
    if problem:
        raise InputError(problem)
    if request.queue and scheduler.queue_keyword:
        kw[scheduler.queue_keyword] = request.queue
    if request.account:
        kw.update(scheduler.account_options(request.account))
    if request.interface:
        kw["interface"] = request.interface
    cores, memory = scheduler.size(request, cfg)
    kw["cores"], kw["memory"] = cores, memory
    if cfg.get("processes") is None:  # one single-threaded worker process per core: FITS parsing holds the GIL
        kw["processes"] = cores
    kw.update(scheduler.size_options(cores, memory, cfg))
    walltime = request.walltime or cfg.get("walltime")
    if walltime:
        native, seconds = scheduler.walltime(str(walltime))
        if request.walltime:
            kw.update(scheduler.walltime_options(native))
        lifetime, stagger = lifetime_of(seconds)
        kw["worker_extra_args"] = [*(cfg.get("worker-extra-args") or []), "--lifetime", f"{lifetime}s",
                                   "--lifetime-stagger", f"{stagger}s"]
    extra = scheduler.extra_directives(request, cfg, cores)
    if extra:
        kw["job_extra_directives"] = extra
    # as for local clusters: without the nanny's MALLOC_TRIM_THRESHOLD_, zstd runs ~1.8x faster; and no
    # statistical profiler (a thread per worker sampling 100 times a second, ~3% of its CPU) when these
    # jobs have no dashboard to show its results
    prologue = [*(cfg.get("job-script-prologue") or []), "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{}'",
                "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False"]
    if request.job_scratch:  # node-local shards and spill in a folder of this job's own, on its node
        folder = f"{request.job_scratch.rstrip('/')}/shardmerge-job-{scheduler.job_id}"
        prologue.append(f'export SHARDMERGE_NODE_SCRATCH="{folder}"')
        kw["local_directory"] = "$SHARDMERGE_NODE_SCRATCH"
    kw["job_script_prologue"] = prologue
    if cfg.get("log-directory"):  # the user's own jobqueue setting
        kw["log_directory"] = os.path.abspath(os.path.expanduser(str(cfg["log-directory"])))
    elif log_dir:
        kw["log_directory"] = log_dir  # a folder of the run's own, kept (job_log_dir)
    if kw.get("log_directory") and scheduler.log_directives(kw["log_directory"]):
        kw["job_extra_directives"] = [*(kw.get("job_extra_directives") or cfg.get("job-extra-directives") or []),
                                      *scheduler.log_directives(kw["log_directory"])]
    kw.setdefault("scheduler_options", {"dashboard": False, **({"interface": request.interface}
                                                               if request.interface else {})})
    return kw


@contextmanager
def jobqueue_executor(scheduler: JobQueueScheduler, request: ClusterRequest,
                      log_dir: str | None) -> Iterator[DaskExecutor]:
    with jobqueue_cluster(scheduler, request, log_dir) as (client, info):
        yield DaskExecutor(client, local=False, info=info, **bounds(request))


@contextmanager
def jobqueue_cluster(scheduler: JobQueueScheduler, request: ClusterRequest,
                     log_dir: str | None) -> Iterator[tuple[Any, dict]]:
    """The scheduler's cluster class scaled to `jobs` batch jobs. Leaving the block, normally, on an error
    or on Ctrl-C, closes it and cancels every job it submitted, also when closing itself fails (it can, for
    a job the scheduler refused)."""
    kwargs = job_options(scheduler, request, log_dir)
    cluster = scheduler.cluster_type()(**kwargs)
    label = scheduler.label
    try:
        with own_cluster_client(cluster) as client:
            t0 = time.monotonic()
            cluster.scale(jobs=request.jobs)
            log.info("submitted %d %s job(s) of %s cores, %s; waiting for workers (at most %.0f s)",
                     request.jobs, label, kwargs["cores"], kwargs["memory"], request.worker_wait_s)
            where = f"; job logs in {kwargs['log_directory']}" if kwargs.get("log_directory") else ""
            submit = cluster.job_cls.submit_command
            _wait_for_first_worker(client, cluster, request.worker_wait_s,
                                   f"{label} ({request.jobs} job(s) requested; an {submit} error above means "
                                   f"{label} refused the request, else check {scheduler.status_command}{where})",
                                   f"{label} refused every job asked of it: {submit} failed (its error is above: "
                                   f"a partition, account or limit it does not accept, or no controller "
                                   f"answering){where}")
            first = time.monotonic() - t0
            per_job = int(kwargs.get("processes") or 1)
            with suppress(TimeoutError):  # the rest may join later, the run goes on without them
                client.wait_for_workers(request.jobs * per_job, timeout=min(60.0, request.worker_wait_s))
            info = {"kind": scheduler.name, "batch_system": label, "jobs": request.jobs,
                    "seconds_to_first_worker": round(first, 2),
                    "seconds_to_workers": round(time.monotonic() - t0, 2), "job_script": cluster.job_script(),
                    "job_logs": os.path.abspath(kwargs.get("log_directory") or os.getcwd())}
            log.info("%s: first worker after %.1f s, %d worker(s) after %.1f s", label, first,
                     len(client.scheduler_info(n_workers=-1)["workers"]), info["seconds_to_workers"])
            yield client, info
    finally:
        close_jobqueue_cluster(cluster, label)


SUBMIT_POLL_S = 2.0  # how often the wait for the first worker looks whether every submission failed


def _wait_for_first_worker(client: Any, cluster: Any, timeout: float, what: str, refused: str) -> None:
    """Wait for one worker, at most `timeout`, but stop as soon as every job's submission has failed (the
    submit command refused the job: a partition or account that does not exist, no controller answering):
    such a job never starts, and the run need not wait out --worker-wait to say so."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.wait_for_workers(1, timeout=max(0.01, min(SUBMIT_POLL_S, deadline - time.monotonic())))
            return
        except TimeoutError:
            pass
        if _every_submission_failed(cluster):
            raise ClusterError(f"{refused}; no worker can connect")
        if time.monotonic() >= deadline:
            raise ClusterError(f"{what}: fewer than 1 worker(s) connected within {timeout:.0f} s")


def _every_submission_failed(cluster: Any) -> bool:
    """dask-jobqueue adds a job to `cluster.workers` once its start has run; a start whose submit command
    failed left it without a job id."""
    try:
        jobs = list(cluster.workers.values())
    except RuntimeError:  # changed size while the cluster's loop updated it: look again next time
        return False
    return bool(jobs) and all(getattr(job, "job_id", None) is None for job in jobs)


def submitted_jobs(cluster: Any) -> list[str]:
    """The ids of the jobs a jobqueue cluster submitted and still tracks."""
    return sorted({str(j) for j in (getattr(w, "job_id", None) for w in cluster.workers.values()) if j})


def close_jobqueue_cluster(cluster: Any, label: str) -> None:
    jobs = submitted_jobs(cluster)
    try:
        cluster.close(timeout=60)
    except Exception as exc:  # noqa: BLE001 - the jobs must be cancelled whatever went wrong
        log.warning("closing the %s cluster failed (%s: %s); cancelling its jobs directly", label,
                    type(exc).__name__, exc)
    if jobs:  # idempotent: cancelling a finished job is harmless
        cancel = cluster.job_cls.cancel_command.split()
        subprocess.run([*cancel, *jobs], capture_output=True, check=False)


def job_log_dir(base: str | None, out: str, now: float | None = None) -> str:
    """The folder a run's batch job logs go to, kept after the run: `<base>/<UTC time>-<OUT's name>-<pid>`,
    `base` being --job-logs / ClusterRequest.job_logs, else SHARDMERGE_JOB_LOGS, else ./shardmerge-logs. The
    current folder by default because that is where the submit commands themselves write job logs, where
    users look, and it is on a filesystem the compute nodes mount (the jobs write there). Not scratch
    (removed after a successful run, possibly node-local), and not beside OUT (every name there is
    shardmerge's fixed set, see beside.py). Only the path: dask-jobqueue creates it when it submits."""
    root = base or os.environ.get("SHARDMERGE_JOB_LOGS") or DEFAULT_JOB_LOGS
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(out)))[:80] or "store"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return os.path.join(os.path.abspath(os.path.expanduser(root)), f"{stamp}-{name}-{os.getpid()}")


def clock_seconds(text: str) -> int:
    """[D-]HH:MM:SS, [D-]HH:MM, or a plain number of seconds (as PBS, SGE and OAR accept)."""
    days, _, rest = text.strip().rpartition("-")
    try:
        parts = [int(p) for p in rest.split(":")]
        if len(parts) == 1 and not days:
            return parts[0]
        h, m, sec = (parts + [0, 0])[:3]
        if len(parts) > 3 or min(parts) < 0:
            raise ValueError
        return (int(days) if days else 0) * 86400 + h * 3600 + m * 60 + sec
    except ValueError:
        raise InputError(f"--walltime {text!r}: expected HH:MM:SS (or D-HH:MM:SS, HH:MM)") from None


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def lifetime_of(total: int) -> tuple[int, int]:
    """Workers retire (handing their work over) before the scheduler kills the job: a margin of 10% of the
    walltime, at least 60 s and at most 10 min, staggered so a job's workers do not all leave at once."""
    margin = min(max(60, total // 10), 600)
    lifetime = max(total - margin, total // 2)
    return lifetime, max(1, min(margin // 2, 300))


def memory_bytes(memory: str) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(memory))
