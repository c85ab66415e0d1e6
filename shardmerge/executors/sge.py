"""(Son of) Grid Engine batch jobs through dask-jobqueue's SGECluster (`--cluster sge`). SGECluster asks SGE
for neither cores nor memory on its own, so they are mapped here: N cores are `-pe smp N` (N slots of the
parallel environment "smp"; name another in jobqueue.sge.job-extra-directives, e.g. "-pe mpi 4", and none is
added), memory is `-l h_vmem=` per slot (SGE multiplies a per-slot complex by the slots), unless
jobqueue.sge.resource-spec says otherwise. A resource_spec must name complexes the cluster defines
(`qconf -sc`): h_vmem is one by default. The account is SGE's project (`-P`); walltime is `-l h_rt=`."""

from __future__ import annotations

from typing import Any

from ..config import ClusterRequest
from .jobqueue import JobQueueScheduler, memory_bytes

PARALLEL_ENVIRONMENT = "smp"


class SGE(JobQueueScheduler):
    name = "sge"
    label = "SGE"
    cluster_class = "SGECluster"
    job_id = "$JOB_ID"
    status_command = "qstat"
    account_keyword = "project"

    def size_options(self, cores: int, memory: str, cfg: dict) -> dict[str, Any]:
        if cfg.get("resource-spec"):
            return {}
        per_slot = -(-memory_bytes(memory) // cores)
        return {"resource_spec": f"h_vmem={-(-per_slot // 2**20)}M"}

    def extra_directives(self, request: ClusterRequest, cfg: dict, cores: int) -> Any:
        directives = super().extra_directives(request, cfg, cores)
        if cores > 1 and not any(d.strip().startswith("-pe ") for d in directives):
            directives.insert(0, f"-pe {PARALLEL_ENVIRONMENT} {cores}")  # N slots on one host
        return directives


SCHEDULER = SGE()
