"""The one table of backends: every `--cluster` value (and `cluster=` of `shardmerge.ingest`), the module that
runs it, and the options it declares with their help. The CLI's options, the API's checks and the dispatch in
`executors.executor` are all read from here, so a new batch scheduler is one module (a JobQueueScheduler, see
jobqueue.py) plus one row in BACKENDS. Pure data: importing it costs nothing (no dask, no click)."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One cluster option: `name` is the API keyword, `--name-with-dashes` the flag. `kind`: "int" (at least
    1), "text", "texts" (repeatable), "folder", "file"; `metavar` what the help shows for its value."""

    name: str
    kind: str
    help: str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# the job options every dask-jobqueue backend honours (each scheduler module maps them onto its class's keywords)
JOB_OPTIONS = ("jobs", "queue", "account", "walltime", "job_cores", "job_memory", "job_extra", "job_scratch",
               "interface", "job_logs")

OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("jobs", "int", "Batch jobs to start (a job-queue --cluster)."),
    Option("queue", "text", "Queue (partition) the jobs go to (default: jobqueue.<cluster>.queue).", "NAME"),
    Option("account", "text", "Account (project) the jobs are charged to (default: jobqueue.<cluster>.account, "
                              "or .project where the scheduler calls it that).", "NAME"),
    Option("walltime", "text", "Job time limit, e.g. 01:00:00 (HH:MM:SS; D-HH:MM:SS too); workers retire a "
                               "margin before it, handing their work over.", "TIME"),
    Option("job_cores", "int", "Cores per job, one worker process each (default: jobqueue.<cluster>.cores).", "N"),
    Option("job_memory", "text", "Memory per job, e.g. 16GB (default: jobqueue.<cluster>.memory).", "SIZE"),
    Option("job_extra", "texts", "Extra job directive in the scheduler's own syntax, e.g. '--constraint=ssd' or "
                                 "'-l gpu=1' (repeatable; after jobqueue.<cluster>.job-extra-directives).",
           "DIRECTIVE"),
    Option("job_scratch", "text", "Per-job local scratch: each job's workers keep node-local shards and spill "
                                  "to a folder of their own job under this one, on the compute node (e.g. "
                                  "/local or '$TMPDIR', expanded there).", "DIR"),
    Option("interface", "text", "Network interface the scheduler and workers bind to (e.g. ib0; lo on one "
                                "machine).", "NAME"),
    Option("job_logs", "folder", "A job-queue --cluster: keep the batch jobs' logs in a folder per run under this "
                                 "one (default: SHARDMERGE_JOB_LOGS, else ./shardmerge-logs; "
                                 "jobqueue.<cluster>.log-directory wins when set).", "DIR"),
    Option("scheduler_file", "file", "slurm-runner: scheduler file on a filesystem all ranks share "
                                     "(default: ./shardmerge-scheduler-<job id>.json).", "FILE"),
)}


@dataclass(frozen=True)
class Backend:
    """One row. `runs`: "module:name" of a context manager `(request, *, role, log_dir) -> Executor`, or, for
    a job-queue backend, of its JobQueueScheduler (run by jobqueue.jobqueue_executor). `role`: "module:name"
    of a context manager every process of the command enters first (see executors.process_role).
    `selectable`: a `--cluster` value (the others are chosen by other options: --scheduler, client=)."""

    name: str
    runs: str
    summary: str
    options: tuple[str, ...] = ()
    jobqueue: bool = False
    role: str | None = None
    selectable: bool = True

    def load(self) -> Any:
        module, _, attr = self.runs.partition(":")
        return getattr(importlib.import_module(module), attr)

    def load_role(self) -> Any:
        if self.role is None:
            return None
        module, _, attr = self.role.partition(":")
        return getattr(importlib.import_module(module), attr)


def _jobqueue(name: str, cls: str, what: str) -> Backend:
    """A dask-jobqueue scheduler: module shardmerge.executors.<name>, its JobQueueScheduler SCHEDULER."""
    return Backend(name, f"shardmerge.executors.{name}:SCHEDULER", f"{what} batch jobs (dask-jobqueue {cls})",
                   JOB_OPTIONS, jobqueue=True)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("local", "shardmerge.executors.local:local_executor", "a Dask cluster on this machine (--workers)"),
    _jobqueue("slurm", "SLURMCluster", "SLURM"),
    _jobqueue("pbs", "PBSCluster", "PBS/Torque"),
    _jobqueue("lsf", "LSFCluster", "LSF"),
    _jobqueue("sge", "SGECluster", "(Son of) Grid Engine"),
    _jobqueue("htcondor", "HTCondorCluster", "HTCondor"),
    _jobqueue("oar", "OARCluster", "OAR"),
    _jobqueue("moab", "MoabCluster", "Moab"),
    Backend("slurm-runner", "shardmerge.executors.srun:srun_executor",
            "run inside an srun allocation (rank 0 scheduler, rank 1 ingest, the rest workers)",
            ("interface", "scheduler_file"), role="shardmerge.executors.srun:runner_role"),
    Backend("scheduler", "shardmerge.executors.scheduler:scheduler_executor", "an existing Dask scheduler",
            selectable=False),
    Backend("client", "shardmerge.executors.client:client_executor", "the caller's distributed.Client",
            selectable=False),
)}


def cluster_kinds() -> tuple[str, ...]:
    """The `--cluster` values, in table order."""
    return tuple(name for name, b in BACKENDS.items() if b.selectable)


def backend(kind: str) -> Backend:
    """The row of `kind`; a KeyError names the kinds there are."""
    try:
        return BACKENDS[kind]
    except KeyError:
        raise KeyError(f"unknown cluster kind {kind!r} (known: {', '.join(BACKENDS)})") from None


def backend_options() -> list[Option]:
    """Every option some backend declares, once, in the table's order of first declaration."""
    names: list[str] = []
    for b in BACKENDS.values():
        names += [n for n in b.options if n not in names]
    return [OPTIONS[n] for n in names]


def cluster_help() -> str:
    """`--cluster`'s help: each selectable kind and what it runs on."""
    return "; ".join(f"{name}: {b.summary}" for name, b in BACKENDS.items() if b.selectable) + "."

# the environment variable in which each batch system tells a job its id (SGE's JOB_ID last: generic name)
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "OAR_JOB_ID", "JOB_ID")


def batch_job_id() -> str:
    """This process's batch job, as VARIABLE=id (e.g. SLURM_JOB_ID=123), or "" outside one."""
    return next((f"{v}={os.environ[v]}" for v in JOB_ID_VARIABLES if os.environ.get(v)), "")

