"""OAR batch jobs through dask-jobqueue's OARCluster (`--cluster oar`): the account is OAR's `--project`,
the walltime part of its `-l` resource line, the job logs `-O`/`-E` directives. OAR asks for memory through
a resource property a site names: set jobqueue.oar.memory-per-core-property-name (else no memory is
requested, as jobqueue then warns)."""

from __future__ import annotations

import logging
from typing import Any

from .jobqueue import JobQueueScheduler

log = logging.getLogger("shardmerge")


class OAR(JobQueueScheduler):
    name = "oar"
    label = "OAR"
    cluster_class = "OARCluster"
    job_id = "$OAR_JOB_ID"
    status_command = "oarstat"
    account_keyword = "project"

    def size_options(self, cores: int, memory: str, cfg: dict) -> dict[str, Any]:
        if cfg.get("memory-per-core-property-name"):
            return {}
        log.info("OAR: no memory is requested (set jobqueue.oar.memory-per-core-property-name to your site's "
                 "memory property)")
        return {"memory_per_core_property_name": "not_applicable"}

    def log_directives(self, folder: str) -> list[str]:
        # OARCluster leaves its log_directory out of the script (OAR.<id>.stdout in the submit folder)
        return [f"-O {folder}/dask-worker-%jobid%.out", f"-E {folder}/dask-worker-%jobid%.err"]


SCHEDULER = OAR()
