"""PBS Pro / Torque batch jobs through dask-jobqueue's PBSCluster (`--cluster pbs`): `-A` account, `-l
walltime=HH:MM:SS`; PBSCluster asks for cores and memory itself (`-l select=1:ncpus=N:mem=M`, or
jobqueue.pbs.resource-spec)."""

from __future__ import annotations

from .jobqueue import JobQueueScheduler


class PBS(JobQueueScheduler):
    name = "pbs"
    label = "PBS"
    cluster_class = "PBSCluster"
    job_id = "$PBS_JOBID"
    status_command = "qstat"


SCHEDULER = PBS()
