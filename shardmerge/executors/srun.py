"""Inside one SLURM allocation (`srun shardmerge ingest --cluster slurm-runner`): dask-jobqueue's SLURMRunner
makes rank 0 the scheduler, rank 1 this ingest, ranks 2+ the workers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import ClusterRequest
from ..errors import ClusterError
from .base import NotTheRun
from .dask_backend import DaskExecutor, bounds, own_cluster_client, wait_for_workers

log = logging.getLogger("shardmerge")


@contextmanager
def runner_role(request: ClusterRequest) -> Iterator[Any]:
    """The role of "slurm-runner" (registry row; entered by executors.process_role): dask-jobqueue's
    SLURMRunner. Every rank of the `srun` runs this command; rank 0 becomes the scheduler and rank 2+
    workers, and those never get past this point (they exit when the client is done). Rank 1 goes on and
    runs the ingest."""
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
    except SystemExit as exc:
        # the scheduler and worker ranks serve the cluster inside the constructor, and leave by SystemExit
        # (SIGINT, which the runner maps to sys.exit) once the ingest rank is done: this process was not the run
        raise NotTheRun(exc.code) from None
    with runner:
        yield runner


@contextmanager
def srun_executor(request: ClusterRequest, *, role: Any, **_context: Any) -> Iterator[DaskExecutor]:
    runner = role
    with own_cluster_client(runner) as client:
        t0 = time.monotonic()
        wait_for_workers(client, runner.n_workers, request.worker_wait_s, "the allocation's worker ranks")
        info = {"kind": "slurm-runner", "seconds_to_workers": round(time.monotonic() - t0, 2)}
        yield DaskExecutor(client, local=False, info=info, **bounds(request))
