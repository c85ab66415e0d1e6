"""Issue 27: every dask-jobqueue scheduler is a backend of one table, each with its options mapped onto its
cluster class's own keywords. The job scripts as text, from the command line and from a jobqueue.yaml found
through DASK_CONFIG, for every scheduler (no scheduler needed: the class's job_script())."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from shardmerge.cli import cluster_request, ingest_cmd
from shardmerge.config import ClusterRequest
from shardmerge.errors import InputError
from shardmerge.executors.jobqueue import clock_seconds, import_jobqueue, job_options
from shardmerge.executors.registry import BACKENDS, JOB_OPTIONS, OPTIONS, backend, cluster_kinds
from tests.helpers import REPO

SCHEDULERS = [name for name, row in BACKENDS.items() if row.jobqueue]
PROLOGUE = ("export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{}'",
            "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False")

# each scheduler's directive for the extra, and the lines a script from the CLI options below must have:
# queue short, account astro, walltime 01:00:00, 4 cores, 8GB, the extra, logs in /scratch/logs
FROM_CLI = {
    "slurm": ("--constraint=ssd", ["#SBATCH -p short", "#SBATCH -A astro", "#SBATCH -t 01:00:00",
                                   "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G", "#SBATCH --constraint=ssd",
                                   "#SBATCH -o /scratch/logs/dask-worker-%J.out"]),
    "pbs": ("-l ssd=1", ["#PBS -q short", "#PBS -A astro", "#PBS -l walltime=01:00:00",
                         "#PBS -l select=1:ncpus=4:mem=7630MB", "#PBS -l ssd=1", "#PBS -o /scratch/logs/"]),
    "moab": ("-l ssd=1", ["#PBS -q short", "#PBS -A astro", "#PBS -l walltime=01:00:00",
                          "#PBS -l select=1:ncpus=4:mem=7630MB", "#PBS -l ssd=1", "#PBS -o /scratch/logs/"]),
    "lsf": ('-R "select[ssd]"', ["#BSUB -q short", '#BSUB -P "astro"', "#BSUB -W 01:00", "#BSUB -n 4",
                                 "#BSUB -M 8000000", '#BSUB -R "select[ssd]"', "#BSUB -o /scratch/logs/w-%J.out"]),
    # SGE: memory per slot (8 GB over 4 slots) as the h_vmem complex, 4 cores as 4 slots of the smp PE
    "sge": ("-l ssd=1", ["#$ -q short", "#$ -P astro", "#$ -l h_rt=01:00:00", "#$ -l h_vmem=1908M",
                         "#$ -pe smp 4", "#$ -l ssd=1", "#$ -o /scratch/logs/"]),
    "oar": ("-t besteffort", ["#OAR -q short", "#OAR --project astro", "#OAR -l /nodes=1/core=4,walltime=01:00:00",
                              "#OAR -t besteffort", "#OAR -O /scratch/logs/dask-worker-%jobid%.out"]),
    # HTCondor: no queue, no time limit (only the workers' lifetime); directives are submit commands
    "htcondor": ('requirements = (OpSys == "LINUX")', ["accounting_group = astro", 'requirements = (OpSys == "LINUX")',
                                                       "MY.DaskWorkerCores = 4", "MY.DaskWorkerMemory = 8000000000",
                                                       "LogDirectory = /scratch/logs"]),
}
JOB_ID = {"slurm": "$SLURM_JOB_ID", "pbs": "$PBS_JOBID", "moab": "$MOAB_JOBID", "lsf": "$LSB_JOBID",
          "sge": "$JOB_ID", "oar": "$OAR_JOB_ID", "htcondor": '$(basename ""$_CONDOR_SCRATCH_DIR"")'}


def _script(kind: str, request: ClusterRequest, log_dir: str | None = "/scratch/logs") -> str:
    """The job script; jobqueue creates its log folder as the job is made: /scratch/logs (as in test_cluster)."""
    scheduler = backend(kind).load()
    kw = job_options(scheduler, request, log_dir)
    kw.pop("scheduler_options")
    return scheduler.cluster_type().job_cls(scheduler="tcp://10.0.0.1:8786", name="w", **kw).job_script()


def _from_cli(*argv: str) -> ClusterRequest:
    """The ClusterRequest the ingest command makes of these options."""
    return cluster_request(dict(ingest_cmd.make_context("ingest", ["IN", "-o", "OUT", *argv]).params))


def test_every_jobqueue_cluster_class_is_a_backend():
    jobqueue = import_jobqueue()
    classes = {n for n in dir(jobqueue) if n.endswith("Cluster") and n != "JobQueueCluster"}
    assert {backend(k).load().cluster_class for k in SCHEDULERS} == classes
    assert set(SCHEDULERS) == set(FROM_CLI)
    assert {"local", "slurm-runner", *SCHEDULERS} == set(cluster_kinds())
    for kind in SCHEDULERS:  # every one declares the job options, each a CLI option and an API keyword
        assert backend(kind).options == JOB_OPTIONS
    flags = {p.name for p in ingest_cmd.params}
    assert {o.name for o in OPTIONS.values()} <= flags


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_cli_options_become_the_job_script(kind):
    extra, expected = FROM_CLI[kind]
    queue = () if kind == "htcondor" else ("--queue", "short")
    request = _from_cli("--cluster", kind, *queue, "--account", "astro", "--walltime", "01:00:00", "--job-cores",
                        "4", "--job-memory", "8GB", "--job-extra", extra, "--job-scratch", "/local",
                        "--interface", "ib0", "--jobs", "3")
    assert request.kind == kind and request.jobs == 3
    script = _script(kind, request)
    for line in expected:
        assert line in script.splitlines(), f"{line!r} not in\n{script}"
    quoted = [line.replace("'", "''") for line in PROLOGUE] if kind == "htcondor" else PROLOGUE  # in Arguments
    assert all(line in script for line in quoted), script
    # per-job local scratch: node-local shards and the workers' spill in a folder of this job's own
    assert f'/local/shardmerge-job-{JOB_ID[kind]}' in script and "--local-directory $SHARDMERGE_NODE_SCRATCH" in script
    for arg in ("--nworkers 4", "--nthreads 1", "--lifetime 3240s", "--lifetime-stagger 180s", "--interface ib0"):
        assert arg in script, script  # one single-threaded worker per core; retiring 6 min before the hour


@pytest.fixture(scope="module")
def yaml_scripts(tmp_path_factory) -> dict[str, str]:
    """Every scheduler's job script from a jobqueue.yaml in a DASK_CONFIG folder, with only --job-extra given
    on the command line: in a fresh process, as the CLI reads it (dask collects the config at import)."""
    folder = tmp_path_factory.mktemp("dask-config")
    sections = {}
    for kind in SCHEDULERS:
        account_key = {"lsf": "project", "sge": "project", "oar": "project"}.get(kind, "account")
        section = {"cores": 2, "memory": "4GB", "log-directory": str(folder / f"{kind}-logs"),
                   "local-directory": "/yaml/local", "job-extra-directives": ["-l yaml=1"],
                   "queue": "night", account_key: "yacct", "walltime": "02:00" if kind == "lsf" else "02:00:00"}
        if kind == "htcondor":
            for key in ("queue", "account", "walltime"):
                section.pop(key)
            section["job-extra-directives"] = {"+yaml": "1"}
        sections[kind] = section
    (folder / "jobqueue.yaml").write_text(json.dumps({"jobqueue": sections}))  # JSON is YAML
    code = textwrap.dedent("""
        import json
        from shardmerge.config import ClusterRequest
        from tests.unit.test_jobqueue_backends import SCHEDULERS, _script
        extra = {"htcondor": ("+cli = 1",)}
        print(json.dumps({k: _script(k, ClusterRequest(kind=k, job_extra=extra.get(k, ("-l cli=1",))), "/run/logs")
                          for k in SCHEDULERS}))
    """)
    env = {**os.environ, "DASK_CONFIG": str(folder), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return {kind: script.replace(str(folder), "/yaml") for kind, script in json.loads(done.stdout).items()}


FROM_YAML = {
    "slurm": ["#SBATCH -p night", "#SBATCH -A yacct", "#SBATCH -t 02:00:00", "#SBATCH --cpus-per-task=2",
              "#SBATCH --mem=4G", "#SBATCH -l yaml=1", "#SBATCH -l cli=1"],
    "pbs": ["#PBS -q night", "#PBS -A yacct", "#PBS -l walltime=02:00:00", "#PBS -l select=1:ncpus=2:mem=3815MB",
            "#PBS -l yaml=1", "#PBS -l cli=1"],
    "moab": ["#PBS -q night", "#PBS -A yacct", "#PBS -l walltime=02:00:00", "#PBS -l yaml=1", "#PBS -l cli=1"],
    "lsf": ["#BSUB -q night", '#BSUB -P "yacct"', "#BSUB -W 02:00", "#BSUB -n 2", "#BSUB -l yaml=1",
            "#BSUB -l cli=1"],
    "sge": ["#$ -q night", "#$ -P yacct", "#$ -l h_rt=02:00:00", "#$ -l h_vmem=1908M", "#$ -pe smp 2",
            "#$ -l yaml=1", "#$ -l cli=1"],
    "oar": ["#OAR -q night", "#OAR --project yacct", "#OAR -l /nodes=1/core=2,walltime=02:00:00", "#OAR -l yaml=1",
            "#OAR -l cli=1"],
    "htcondor": ["+yaml = 1", "+cli = 1", "MY.DaskWorkerCores = 2", "MY.DaskWorkerMemory = 4000000000"],
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", SCHEDULERS)
def test_jobqueue_yaml_is_the_default_and_the_cli_adds_to_it(kind, yaml_scripts):
    script = yaml_scripts[kind]
    for line in FROM_YAML[kind]:
        assert line in script.splitlines(), f"{line!r} not in\n{script}"
    assert f"/yaml/{kind}-logs" in script and "/run/logs" not in script  # jobqueue's log-directory wins
    assert "--local-directory /yaml/local" in script  # the workers' local scratch, jobqueue's setting
    if kind != "htcondor":  # the walltime from the YAML still makes the workers retire before it
        assert "--lifetime 6600s" in script, script


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_job_size_must_be_given_somewhere(kind):
    import dask

    label = backend(kind).load().label
    with dask.config.set({f"jobqueue.{kind}.cores": None, f"jobqueue.{kind}.memory": None}), \
            pytest.raises(InputError, match=f"^{label} jobs need a size: pass --job-cores and --job-memory, or set "
                                            f"jobqueue.{kind}.cores"):
        job_options(backend(kind).load(), ClusterRequest(kind=kind), None)


def test_a_resource_spec_or_parallel_environment_of_ones_own_is_kept_for_sge():
    import dask

    with dask.config.set({"jobqueue.sge.resource-spec": "mem_free=2G",
                          "jobqueue.sge.job-extra-directives": ["-pe mpi 8"]}):
        script = _script("sge", ClusterRequest(kind="sge", job_cores=8, job_memory="16GB"))
    assert "#$ -l mem_free=2G" in script and "#$ -pe mpi 8" in script
    assert "h_vmem" not in script and "-pe smp" not in script
    one = _script("sge", ClusterRequest(kind="sge", job_cores=1, job_memory="1GB"))
    assert "#$ -l h_vmem=954M" in one and "-pe" not in one  # one core: one slot, no parallel environment


@pytest.mark.parametrize(("text", "seconds"), [
    ("3600", 3600), ("01:00", 3600), ("01:00:00", 3600), ("1-02:03:04", 93784), ("36:00:00", 129600),
])
def test_walltime_formats_of_the_other_schedulers(text, seconds):
    assert clock_seconds(text) == seconds
    with pytest.raises(InputError, match="expected HH:MM:SS"):
        clock_seconds("an hour")


def test_lsf_walltime_is_hours_and_minutes_rounded_up():
    script = _script("lsf", ClusterRequest(kind="lsf", job_cores=1, job_memory="1GB", walltime="00:30:30"))
    assert "#BSUB -W 00:31" in script and "--lifetime 1674s" in script  # 31 min less its 10 % margin


def test_api_refuses_what_a_scheduler_cannot_do_before_anything_is_touched(tmp_path):
    import shardmerge

    with pytest.raises(shardmerge.ArgumentError, match="^cluster=: HTCondor has no queues") as err:
        shardmerge.ingest(str(tmp_path), tmp_path / "o.zarr", cluster="htcondor", queue="short", job_cores=1,
                          job_memory="1GB")
    assert err.value.cli.startswith("--cluster htcondor: HTCondor has no queues")
    with pytest.raises(shardmerge.ArgumentError, match="^cluster=: SGE jobs need a size: pass job_cores= and "
                                                       "job_memory=") as err:
        shardmerge.ingest(str(tmp_path), tmp_path / "o.zarr", cluster="sge")
    assert "pass --job-cores and --job-memory" in err.value.cli
    with pytest.raises(shardmerge.ArgumentError, match="^cluster=: 'kubernetes' is not one of"):
        shardmerge.ingest(str(tmp_path), tmp_path / "o.zarr", cluster="kubernetes")
    assert not (tmp_path / "o.zarr").exists()


def test_the_cli_says_so_in_its_flags(tmp_path):
    from tests.helpers import run_cli

    r = run_cli("ingest", tmp_path, "-o", tmp_path / "o.zarr", "--cluster", "pbs")
    assert r.exit_code == 2 and "--cluster pbs: PBS jobs need a size: pass --job-cores and --job-memory" in r.output
    r = run_cli("ingest", tmp_path, "-o", tmp_path / "o.zarr", "--cluster", "kubernetes")
    assert r.exit_code == 2 and "'kubernetes' is not one of" in r.output


def test_executors_answer_what_the_pipeline_asks_without_knowing_the_backend(dask_scheduler):
    from distributed import Client

    from shardmerge.executors import InlineExecutor, ServedTheCluster, process_role
    from shardmerge.executors.base import NotTheRun
    from shardmerge.executors.dask_backend import DaskExecutor

    assert InlineExecutor().runs_on_workers is False
    with Client(dask_scheduler, set_as_default=False) as client:
        assert DaskExecutor(client).runs_on_workers is True
    assert ServedTheCluster is NotTheRun
    for kind in ("local", *SCHEDULERS):  # no role: this process is the run
        with process_role(ClusterRequest(kind=kind)) as role:
            assert role is None
    assert backend("slurm-runner").role is not None  # the one backend whose every process enters a role
