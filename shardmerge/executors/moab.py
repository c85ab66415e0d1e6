"""Moab batch jobs through dask-jobqueue's MoabCluster (`--cluster moab`): PBS's directives, Moab's
commands (msub, canceljob)."""

from __future__ import annotations

from .jobqueue import JobQueueScheduler


class Moab(JobQueueScheduler):
    name = "moab"
    label = "Moab"
    cluster_class = "MoabCluster"
    job_id = "$MOAB_JOBID"
    status_command = "showq"


SCHEDULER = Moab()
