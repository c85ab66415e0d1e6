"""HTCondor jobs through dask-jobqueue's HTCondorCluster (`--cluster htcondor`). HTCondor has no queues
(--queue is refused: select machines with a `requirements = ...` --job-extra) and no job time limit of its
own: --walltime only makes workers retire, handing their work over, before a site's runtime limit. Job
directives are submit-description commands, `key = value` (--job-extra 'requirements = (OpSys == "LINUX")');
the account is `accounting_group`. HTCondorCluster needs a disk request: jobqueue.htcondor.disk, else the
job's memory."""

from __future__ import annotations

from typing import Any

from ..config import ClusterRequest
from ..errors import InputError
from .jobqueue import JobQueueScheduler


class HTCondor(JobQueueScheduler):
    name = "htcondor"
    label = "HTCondor"
    cluster_class = "HTCondorCluster"
    job_id = '$(basename "$_CONDOR_SCRATCH_DIR")'  # dir_<pid>: one per job on its execute node
    status_command = "condor_q"
    account_keyword = None
    queue_keyword = None

    def walltime_options(self, native: str) -> dict[str, Any]:
        return {}

    def account_options(self, account: str) -> dict[str, Any]:
        return {}  # a directive: see extra_directives

    def size_options(self, cores: int, memory: str, cfg: dict) -> dict[str, Any]:
        return {} if cfg.get("disk") else {"disk": memory}

    def extra_directives(self, request: ClusterRequest, cfg: dict, cores: int) -> Any:
        directives = dict(cfg.get("job-extra-directives") or {})
        if request.account:
            directives["accounting_group"] = request.account
        for line in request.job_extra:
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                raise InputError(f"--job-extra {line!r}: HTCondor directives are submit commands, 'key = value'")
            directives[key.strip()] = value.strip()
        return directives


SCHEDULER = HTCondor()
