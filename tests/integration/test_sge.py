"""Issue 27: a second real batch scheduler, Son of Grid Engine (one node; `bash ../shared/ci/sge-ci.sh start`):
an ingest through `--cluster sge` publishes the store a local run does, its jobs run through SGE (its
accounting has them) and none is left afterwards. Skipped where no SGE runs, required where CI started one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files


def _sge_up() -> bool:
    if not (shutil.which("qsub") and shutil.which("qstat") and shutil.which("qacct")):
        return False
    try:  # qstat -f answers only while sge_qmaster runs
        done = subprocess.run(["qstat", "-f"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "@" in done.stdout


_UP = _sge_up()
if os.environ.get("SHARDMERGE_REQUIRE_SGE") and not _UP:  # CI started SGE: skipping would hide a failure
    raise RuntimeError("SHARDMERGE_REQUIRE_SGE is set but `qstat -f` finds no running sge_qmaster with a queue")
pytestmark = [
    pytest.mark.sge,
    pytest.mark.skipif(not _UP, reason="no SGE running (start one: bash ../shared/ci/sge-ci.sh start)"),
]

QUEUE = os.environ.get("SGE_CI_QUEUE", "all.q")


def _jobs() -> list[str]:
    out = subprocess.run(["qstat", "-u", "*"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()[2:] if line.strip()]  # past the two header lines


def _assert_no_jobs_left(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _jobs() and time.monotonic() < deadline:  # qdel'd jobs linger a moment in state dr
        time.sleep(0.2)
    assert _jobs() == []


def _accounted(job_name: str, timeout: float = 60) -> list[str]:
    """The job ids SGE's accounting holds for jobs of this name (written as each job ends)."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(["qacct", "-j", job_name], capture_output=True, text=True)
        ids = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("jobnumber")]
        if ids or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


@pytest.mark.timeout(400)
def test_ingest_on_sge_jobs_equals_the_local_store(tmp_path, mixed_corpus, dask_scheduler):
    local = tmp_path / "local.zarr"
    assert run_cli("ingest", mixed_corpus, "-o", local, "--scheduler", dask_scheduler).exit_code == 0
    out, rep, logs = tmp_path / "sge.zarr", tmp_path / "report.json", tmp_path / "job-logs"
    name = f"sm-{uuid.uuid4().hex[:8]}"  # the jobs' name (#$ -N), to find them in the accounting
    r = run_cli_process("ingest", mixed_corpus, "-o", out, "--cluster", "sge", "--jobs", "2", "--queue", QUEUE,
                        "--walltime", "00:10:00", "--job-cores", "1", "--job-memory", "3GB", "--interface", "lo",
                        "--worker-wait", "180", "--report", rep, "--job-logs", logs,
                        env={"DASK_JOBQUEUE__SGE__NAME": name}, timeout=360)
    assert r.exit_code == 0, r
    cluster = json.loads(rep.read_text())["cluster"]
    assert cluster["kind"] == "sge" and cluster["jobs"] == 2 and cluster["batch_system"] == "SGE"
    script = cluster["job_script"]
    for line in (f"#$ -q {QUEUE}", "#$ -l h_rt=00:10:00", "#$ -l h_vmem=2862M", f"#$ -N {name}"):
        assert line in script.splitlines(), script
    assert "--lifetime 540s" in script
    assert f"SGE job logs kept in {cluster['job_logs']}" in r.output
    assert chunk_files(out) == chunk_files(local)
    _assert_no_jobs_left()
    assert len(_accounted(name)) >= 1  # the workers ran as SGE jobs, which SGE accounted for
