"""SLURM job settings as plain data and job scripts as text: no SLURM needed."""

from __future__ import annotations

import dask
import pytest
from dask_jobqueue.slurm import SLURMJob

from shardmerge.config import ClusterRequest
from shardmerge.errors import InputError
from shardmerge.executors.slurm import slurm_options, walltime_seconds, worker_lifetime


def _script(request: ClusterRequest) -> str:
    kw = slurm_options(request, "/scratch/logs")
    kw.pop("scheduler_options")
    return SLURMJob(scheduler="tcp://10.0.0.1:8786", name="w", **kw).job_script()


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 1800), ("10:30", 630), ("01:00:00", 3600), ("2-00", 172800), ("1-02:03", 93780), ("1-00:00:05", 86405),
])
def test_walltime_formats(text, seconds):
    assert walltime_seconds(text) == seconds


def test_workers_retire_before_the_walltime():
    assert worker_lifetime("01:00:00") == (3240, 180)  # 10 % margin
    assert worker_lifetime("00:05:00") == (240, 30)  # at least 60 s
    assert worker_lifetime("2-00:00:00") == (172200, 300)  # at most 10 min


def test_cli_options_become_the_job_script():
    script = _script(ClusterRequest(kind="slurm", queue="short", account="astro", walltime="01:00:00",
                                    job_cores=4, job_memory="8GB", job_extra=("--constraint=ssd",),
                                    interface="ib0"))
    for line in ("#SBATCH -p short", "#SBATCH -A astro", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                 "#SBATCH -t 01:00:00", "#SBATCH --constraint=ssd", "#SBATCH -o /scratch/logs/",
                 "export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{}'",
                 "export DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False"):
        assert line in script, script
    worker = script.strip().splitlines()[-1]
    for arg in ("--nworkers 4", "--nthreads 1", "--lifetime 3240s", "--lifetime-stagger 180s", "--interface ib0"):
        assert arg in worker, worker


def test_jobqueue_config_is_the_default_and_the_cli_overrides_it():
    with dask.config.set({"jobqueue.slurm.cores": 2, "jobqueue.slurm.memory": "4GB",
                          "jobqueue.slurm.queue": "night", "jobqueue.slurm.processes": 1,
                          "jobqueue.slurm.job-extra-directives": ["--qos=low"]}):
        script = _script(ClusterRequest(kind="slurm", job_extra=("--exclusive",)))
        assert "#SBATCH -p night" in script and "--mem=4G" in script and "--nworkers" not in script
        assert "#SBATCH --qos=low" in script and "#SBATCH --exclusive" in script
        script = _script(ClusterRequest(kind="slurm", queue="debug", job_cores=8))
        assert "#SBATCH -p debug" in script and "--cpus-per-task=8" in script


def test_job_size_must_be_given_somewhere():
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}), \
            pytest.raises(InputError, match="--job-cores and --job-memory"):
        slurm_options(ClusterRequest(kind="slurm"), None)


def test_the_cluster_policy_runs_small_inputs_in_this_process(tmp_path):
    from shardmerge.config import ClusterRequest
    from shardmerge.executors import ONE_SHARD_FILE_BYTES, SMALL_INPUT_FILES, choose_cluster

    few = [str(tmp_path / f"{i}.fits") for i in range(3)]
    many = [str(tmp_path / f"{i}.fits") for i in range(SMALL_INPUT_FILES + 1)]
    assert choose_cluster(ClusterRequest(), few).workers == 0
    assert choose_cluster(ClusterRequest(), many).workers is None  # a LocalCluster of the machine's cores
    assert choose_cluster(ClusterRequest(workers=2), few).workers == 2  # asked for: honoured
    assert choose_cluster(ClusterRequest(kind="scheduler", address="tcp://127.0.0.1:1"), few).kind == "scheduler"
    # one small file is one scan task and one shard: asked-for workers could not split it
    small, big = tmp_path / "small.fits", tmp_path / "big.fits"
    small.write_bytes(b"\0" * 2880)
    with big.open("wb") as f:
        f.truncate(ONE_SHARD_FILE_BYTES + 1)
    assert choose_cluster(ClusterRequest(workers=2), [str(small)]).workers == 0
    assert choose_cluster(ClusterRequest(workers=2), [str(big)]).workers == 2  # may be several shards
    assert choose_cluster(ClusterRequest(workers=2), [str(small), str(small)]).workers == 2
    assert choose_cluster(ClusterRequest(workers=2), [str(tmp_path / "gone.fits")]).workers == 2  # the scan's to name
    assert choose_cluster(ClusterRequest(kind="scheduler", address="tcp://127.0.0.1:1"), [str(small)]).kind == \
        "scheduler"


def test_one_retry_rule_for_every_backend():
    from shardmerge.errors import BadFileError
    from shardmerge.executors import InlineExecutor, should_retry

    assert should_retry(OSError(5, "EIO"), 0, 2) and not should_retry(OSError(5, "EIO"), 2, 2)
    assert not should_retry(BadFileError("f.fits", "truncated"), 0, 2)
    assert not should_retry(KeyboardInterrupt(), 0, 2)
    calls = []

    def flaky(item):
        calls.append(item)
        if len(calls) < 3:
            raise OSError(5, "flaky")
        return item * 2

    assert InlineExecutor().map(flaky, [21], name="t", retries=2) == [42] and len(calls) == 3
    calls.clear()
    with pytest.raises(OSError, match="flaky"):  # no retries: the first failure is the answer
        InlineExecutor().map(flaky, [1], name="t", retries=0)



def test_fold_gets_results_in_item_order_whatever_order_they_finish(dask_scheduler):
    """The scan folds its results into the file table in path order, dropping each once folded."""
    import itertools

    from distributed import Client

    from shardmerge.executors import InlineExecutor
    from shardmerge.executors.dask_backend import DaskExecutor, InOrder

    for finish_order in itertools.permutations(range(5)):
        folded: list[int] = []
        in_order = InOrder(folded.append)
        for i in finish_order:
            in_order.put(i, i * 10)
            assert folded == [k * 10 for k in range(len(folded))]  # never a gap, never out of order
        assert folded == [0, 10, 20, 30, 40] and not in_order.waiting
    with Client(dask_scheduler) as client:
        finished, folded = [], []
        out = DaskExecutor(client).map(abs, list(range(-40, 0)), name="fold", on_result=finished.append,
                                       fold=folded.append)
    assert out == [] and folded == list(range(40, 0, -1)) and sorted(finished) == sorted(folded)
    folded.clear()
    assert InlineExecutor().map(abs, [-1, -2, -3], name="fold", fold=folded.append) == []
    assert folded == [1, 2, 3]


def _note_start(i: int, log: str) -> int:
    with open(log, "a") as f:  # one single-threaded worker: tasks run one at a time
        f.write(f"{i}\n")
    return i * 10


def test_tasks_start_in_the_order_given_and_results_keep_item_order(tmp_path):
    """Shard tasks start longest first (plan.longest_first); the merge still gets them by position."""
    from distributed import Client, LocalCluster

    from shardmerge.executors import InlineExecutor
    from shardmerge.executors.dask_backend import DaskExecutor

    log = tmp_path / "started"
    first = [3, 1, 5, 0, 2, 4]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard": False}) as cluster, Client(cluster) as client:
        ex = DaskExecutor(client)
        assert ex.map(_note_start, list(range(6)), str(log), name="order", first=first) == [0, 10, 20, 30, 40, 50]
        assert log.read_text().split() == [str(i) for i in first]
        with pytest.raises(ValueError, match="must order every item once"):
            ex.map(_note_start, list(range(6)), str(log), name="bad", first=[0, 1, 2])
    log.unlink()
    assert InlineExecutor().map(_note_start, [0, 1, 2], str(log), name="inline", first=[2, 0, 1]) == [0, 10, 20]
    assert log.read_text().split() == ["0", "1", "2"]  # one at a time: item order, as the streamed merge reads


def test_jobqueue_keys_from_the_environment_are_honoured():
    """DASK_JOBQUEUE__SLURM__JOB_SCRIPT_PROLOGUE arrives as job_script_prologue beside dask-jobqueue's default
    job-script-prologue: both are the same setting (per-job node-local scratch is set there). In a fresh
    process, as the CLI reads them: dask collects the environment before dask-jobqueue adds its defaults."""
    import os
    import subprocess
    import sys

    code = ("from shardmerge.config import ClusterRequest; from shardmerge.executors.slurm import slurm_options; "
            "kw = slurm_options(ClusterRequest(kind='slurm', job_cores=1, job_memory='1GB', walltime='01:00:00'), "
            "None); print(kw['job_script_prologue'], kw['worker_extra_args'])")
    env = {**os.environ, "DASK_JOBQUEUE__SLURM__JOB_SCRIPT_PROLOGUE": '["export SHARDMERGE_NODE_SCRATCH=$TMPDIR"]',
           "DASK_JOBQUEUE__SLURM__WORKER_EXTRA_ARGS": '["--resources", "io=1"]'}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "export SHARDMERGE_NODE_SCRATCH=$TMPDIR" in done.stdout and "'--resources', 'io=1'" in done.stdout


def test_a_cluster_close_that_fails_or_hangs_after_the_shards_costs_the_run_a_warning(monkeypatch, caplog):
    """The cluster closes beside the merge once every shard is durable: nothing the store needs is left on
    it, so a close that raises, or outlasts its bound (a SLURM scancel on a stuck controller), is logged
    and the run goes on, with no wait beyond the bound."""
    import threading

    from shardmerge import pipeline
    from shardmerge.threads import Background

    def failing() -> None:
        raise RuntimeError("scheduler gone")

    assert pipeline._cluster_closed(Background(pipeline._timed(lambda: None), name="ok")) >= 0
    with caplog.at_level("WARNING", logger="shardmerge"):
        assert pipeline._cluster_closed(Background(pipeline._timed(failing), name="fails")) is None
    assert "closing the Dask cluster failed (RuntimeError: scheduler gone); the store is not affected" in caplog.text
    release = threading.Event()
    monkeypatch.setattr(pipeline, "CLUSTER_CLOSE_WAIT_S", 0.2)
    try:
        with caplog.at_level("WARNING", logger="shardmerge"):
            assert pipeline._cluster_closed(Background(release.wait, name="hangs")) is None
    finally:
        release.set()
    assert "did not close within 0.2 s" in caplog.text


def test_workers_this_process_cannot_reach_are_named_so_results_come_through_the_scheduler():
    """An existing scheduler's workers are probed before its client gathers straight from them: one that
    refuses a connection, or listens on no TCP address, keeps results on the scheduler's path."""
    import socket

    from shardmerge.executors.dask_backend import unreachable_workers

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the connection is refused at once
    up = f"tcp://127.0.0.1:{listening.getsockname()[1]}"
    down = f"tcp://127.0.0.1:{closed_port}"

    class Client:
        def __init__(self, workers):
            self.workers = workers

        def scheduler_info(self, n_workers):
            return {"workers": {w: {} for w in self.workers}}

    try:
        assert unreachable_workers(Client([up, down, "inproc://10.0.0.1/1/2"]), timeout_s=5) == [
            "inproc://10.0.0.1/1/2", down]
        assert unreachable_workers(Client([up])) == [] and unreachable_workers(Client([])) == []
    finally:
        listening.close()
