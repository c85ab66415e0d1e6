"""A real SLURM (one node: slurmctld, slurmd, munge; `bash ../shared/ci/slurm-ci.sh start`): batch jobs through
dask-jobqueue, a run inside one allocation, and the example batch script. Skipped where no SLURM runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, run_cli, run_cli_process
from tests.storecmp import chunk_files


def _slurm_up() -> bool:
    if not shutil.which("sbatch"):
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_UP = _slurm_up()
if os.environ.get("SHARDMERGE_REQUIRE_SLURM") and not _UP:  # CI started SLURM: skipping would hide a failure
    raise RuntimeError("SHARDMERGE_REQUIRE_SLURM is set but `scontrol ping` finds no running slurmctld")
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not _UP, reason="no SLURM running (start one: bash ../shared/ci/slurm-ci.sh start)"),
]

# resources as dask-jobqueue users keep them, in its config (here through the environment)
JOBQUEUE_ENV = {"DASK_JOBQUEUE__SLURM__CORES": "1", "DASK_JOBQUEUE__SLURM__MEMORY": "2GB",
                "DASK_JOBQUEUE__SLURM__QUEUE": "debug"}


def _jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %j"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def _assert_no_jobs_left(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _jobs() and time.monotonic() < deadline:  # scancel'd jobs linger a moment as COMPLETING
        time.sleep(0.2)
    assert _jobs() == []


@pytest.fixture
def local_store(tmp_path, mixed_corpus, dask_scheduler):
    out = tmp_path / "local.zarr"
    assert run_cli("ingest", mixed_corpus, "-o", out, "--scheduler", dask_scheduler).exit_code == 0
    return out


def test_ingest_on_slurm_jobs_equals_the_local_store(tmp_path, mixed_corpus, local_store):
    out, rep = tmp_path / "slurm.zarr", tmp_path / "report.json"
    r = run_cli_process("ingest", mixed_corpus, "-o", out, "--cluster", "slurm", "--jobs", "2", "--walltime",
                        "00:10:00", "--interface", "lo", "--worker-wait", "120", "--report", rep, env=JOBQUEUE_ENV)
    assert r.exit_code == 0, r
    cluster = json.loads(rep.read_text())["cluster"]
    assert cluster["kind"] == "slurm" and cluster["jobs"] == 2 and cluster["results_from"] == "workers"
    assert 0 < cluster["seconds_to_first_worker"] <= cluster["seconds_to_workers"]
    assert "--lifetime 540s" in cluster["job_script"] and "#SBATCH -p debug" in cluster["job_script"]
    assert chunk_files(out) == chunk_files(local_store)
    _assert_no_jobs_left()


def test_slurm_jobs_with_per_job_node_local_scratch(tmp_path, mixed_corpus):
    """Each job's workers write shards under a folder of their own job (as $TMPDIR on a compute node's local
    disk), set in jobqueue's job-script-prologue; the ingest fetches them through Dask."""
    out, rep = tmp_path / "slurm.zarr", tmp_path / "report.json"
    node = tmp_path / "node"
    prologue = json.dumps([f"export SHARDMERGE_NODE_SCRATCH={node}/job-$SLURM_JOB_ID"])
    r = run_cli_process("ingest", mixed_corpus, "-o", out, "--cluster", "slurm", "--jobs", "2", "--walltime",
                        "00:10:00", "--interface", "lo", "--worker-wait", "120", "--report", rep,
                        "--scratch-kind", "node-local", "--chunk-rows", "16", "--shard-rows", "32",
                        env={**JOBQUEUE_ENV, "DASK_JOBQUEUE__SLURM__JOB_SCRIPT_PROLOGUE": prologue})
    assert r.exit_code == 0, r
    report = json.loads(rep.read_text())
    assert report["scratch_kind"] == "node-local"
    assert report["counts"]["shards_fetched"] == report["counts"]["shards_total"] == 5
    job_roots = sorted(p.name for p in node.iterdir())
    assert job_roots and all(name.startswith("job-") for name in job_roots)  # the shards went to per-job folders
    assert not list(node.glob("*/*/shard-*"))  # and were removed once fetched
    assert chunk_files(out) == chunk_files(
        _ingest_shared(tmp_path, mixed_corpus, "--chunk-rows", "16", "--shard-rows", "32"))
    _assert_no_jobs_left()


def _ingest_shared(tmp_path, corpus, *layout):
    out = tmp_path / "shared.zarr"
    assert run_cli("ingest", corpus, "-o", out, "--workers", "0", *layout).exit_code == 0
    return out


def test_a_failing_slurm_run_leaves_no_jobs(tmp_path, mixed_corpus):
    (mixed_corpus / "broken.fits").write_bytes(b"SIMPLE  =  not really")
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "o.zarr", "--cluster", "slurm", "--jobs", "2",
                        "--interface", "lo", "--worker-wait", "120", env=JOBQUEUE_ENV)
    assert r.exit_code == 3 and "broken.fits" in r.output, r
    _assert_no_jobs_left()


def test_jobs_that_never_start_are_cancelled_after_the_wait(tmp_path, mixed_corpus):
    """A job SLURM accepts but holds (--begin an hour from now) never starts within the wait: the wait is
    bounded and the job cancelled. (A 64 GB job on this 16000 MB node is refused by sbatch itself: the
    test above.)"""
    held = {**JOBQUEUE_ENV, "DASK_JOBQUEUE__SLURM__JOB_EXTRA_DIRECTIVES": '["--begin=now+3600"]'}
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "o.zarr", "--cluster", "slurm",
                        "--interface", "lo", "--worker-wait", "3", env=held)
    assert r.exit_code == 7, r
    assert "fewer than 1 worker(s) connected within 3 s" in r.output
    _assert_no_jobs_left()
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.parametrize(("option", "value", "said"), [("--queue", "no-such-partition", "invalid partition"),
                                                         ("--job-memory", "64GB", "memory specification")])
def test_jobs_slurm_refuses_fail_the_run_at_once_not_after_the_wait(tmp_path, mixed_corpus, option, value, said):
    """sbatch refuses a partition that does not exist, and 64 GB on this 16000 MB node: no job can ever
    start, so the run says so as soon as every submission has failed (exit 7), not after --worker-wait."""
    t0 = time.monotonic()
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "o.zarr", "--cluster", "slurm", "--jobs", "2",
                        option, value, "--interface", "lo", "--worker-wait", "300", env=JOBQUEUE_ENV, timeout=240)
    assert r.exit_code == 7, r
    assert "SLURM refused every job asked of it: sbatch failed" in r.output, r.output
    assert said in r.output.lower(), r.output  # sbatch's own words, above
    assert time.monotonic() - t0 < 240  # the 300 s wait was not sat out (the start and close take some)
    _assert_no_jobs_left()
    assert not (tmp_path / "o.zarr").exists()


def test_ingest_inside_an_srun_allocation(tmp_path, mixed_corpus, local_store):
    out = tmp_path / "runner.zarr"
    r = subprocess.run(["srun", "--ntasks=4", "--cpus-per-task=1", sys.executable, "-m", "shardmerge.cli", "ingest",
                        str(mixed_corpus), "-o", str(out), "--cluster", "slurm-runner", "--interface", "lo",
                        "--scheduler-file", str(tmp_path / "scheduler.json")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert chunk_files(out) == chunk_files(local_store)
    _assert_no_jobs_left()


def test_the_example_batch_script(tmp_path, mixed_corpus, local_store):
    """scripts/slurm/ingest.sbatch as a user submits it, sized down on the sbatch command line."""
    out = tmp_path / "batch.zarr"
    env = {**os.environ, "INPUTS": str(mixed_corpus), "OUTPUT": str(out), "SCRATCH": str(tmp_path / "scratch"),
           "PYTHON": sys.executable, "SHARDMERGE_ARGS": "--interface lo"}
    r = subprocess.run(["sbatch", "--wait", "--ntasks=4", "--mem-per-cpu=1G", "--time=00:10:00",
                        f"--output={tmp_path / 'job.out'}", str(REPO / "scripts" / "slurm" / "ingest.sbatch")],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr + log
    assert f"published {out}" in log
    assert chunk_files(out) == chunk_files(local_store)
    assert json.loads((tmp_path / "batch.zarr.report.json").read_text())["status"] == "published"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_slurm_run_cancels_its_jobs(tmp_path, mixed_corpus, sig):
    """Ctrl-C, or the ingest itself being killed politely (SIGTERM), while shard tasks run on the jobs."""
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, **JOBQUEUE_ENV, "SHARDMERGE_FAILPOINTS": "shard-start=pause",
           "SHARDMERGE_FAILPOINT_DIR": str(marks)}  # sbatch passes the environment on to the jobs
    out = tmp_path / "o.zarr"
    proc = subprocess.Popen([sys.executable, "-m", "shardmerge.cli", "ingest", str(mixed_corpus), "-o", str(out),
                             "--cluster", "slurm", "--jobs", "1", "--interface", "lo", "--worker-wait", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (marks / "shard-start.hit").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "timeout"
        time.sleep(0.1)
    assert _jobs(), "the job should be running"
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted: nothing was published" in output
    _assert_no_jobs_left()
    assert not out.exists() and not (tmp_path / "o.zarr.tmp").exists()
