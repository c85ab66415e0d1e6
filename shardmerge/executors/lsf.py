"""IBM Spectrum LSF batch jobs through dask-jobqueue's LSFCluster (`--cluster lsf`): the account is LSF's
project (`-P`), the walltime LSF's `-W [HH:]MM` (seconds rounded up to a minute); LSFCluster asks for
cores (`-n`) and memory (`-M`, `rusage[mem=]`) itself."""

from __future__ import annotations

from .jobqueue import JobQueueScheduler, clock_seconds


class LSF(JobQueueScheduler):
    name = "lsf"
    label = "LSF"
    cluster_class = "LSFCluster"
    job_id = "$LSB_JOBID"
    status_command = "bjobs"
    account_keyword = "project"

    def walltime(self, text: str) -> tuple[str, int]:
        seconds = clock_seconds(text)
        minutes = -(-seconds // 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}", minutes * 60


SCHEDULER = LSF()
