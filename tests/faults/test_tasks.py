"""Faults of shard tasks and of the workers running them: a task that raises once, a worker SIGKILLed
mid-shard, two attempts of one shard at once, a worker retiring mid-task, the last worker dying, a stuck task."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shardmerge import shard as shard_module
from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.headers import load_header_rules
from shardmerge.pipeline import plan_inputs
from shardmerge.shard import write_shard
from shardmerge.shardstore import load_manifest, write_file_table
from tests.faults.helpers import LAYOUT, failpoint_dir, report_of, shard_stores, wait_for_failpoint, wait_until
from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files


def _ingest_with_failpoints(tmp_path, corpus, failpoints: str, *extra: str):
    out = tmp_path / "out.zarr"
    rep = tmp_path / "report.json"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "2", *LAYOUT, "--report", rep, *extra,
                        env={"SHARDMERGE_FAILPOINTS": failpoints,
                             "SHARDMERGE_FAILPOINT_DIR": str(failpoint_dir(tmp_path))})
    return r, out, rep


def test_shard_task_that_raises_once_is_retried(tmp_path, corpus, clean_store):
    r, out, rep = _ingest_with_failpoints(tmp_path, corpus, "shard-start=raise")
    assert r.exit_code == 0, r
    assert (failpoint_dir(tmp_path) / "shard-start.hit").exists()
    assert "failed (OSError: [Errno 5] Input/output error (injected fault at shard-start)); retrying" in r.output
    assert report_of(rep)["counts"]["shards_total"] == 9
    assert chunk_files(out) == chunk_files(clean_store)


def test_worker_sigkilled_mid_shard_is_replaced_and_the_task_rerun(tmp_path, corpus, clean_store):
    """The worker dies after writing its partial shard and manifest, just before the rename: the nanny
    starts a new worker, the scheduler reruns the task, and the dead attempt's partial is never used."""
    r, out, _ = _ingest_with_failpoints(tmp_path, corpus, "shard-before-rename=kill")
    assert r.exit_code == 0, r
    dead = int((failpoint_dir(tmp_path) / "shard-before-rename.hit").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)
    assert chunk_files(out) == chunk_files(clean_store)
    assert run_cli("validate", out).exit_code == 0


def test_two_attempts_of_one_shard_at_once_publish_one(tmp_path, corpus, monkeypatch):
    """Both attempts finish their partial, then rename at the same moment: one wins, the other removes its
    partial and returns the winner's manifest."""
    rules = load_header_rules()
    plan = plan_inputs([str(corpus)], request=LayoutRequest(chunk_rows=16, shard_rows=16), rules=rules,
                       cluster=ClusterRequest(workers=0))
    shard = plan.shards[3]
    together = threading.Barrier(2, timeout=30)
    real_rename = shard_module._rename_first_wins

    def rename_together(partial, final):
        together.wait()
        return real_rename(partial, final)

    monkeypatch.setattr(shard_module, "_rename_first_wins", rename_together)
    scratch = tmp_path / "race"
    scratch.mkdir()
    context = plan.context(write_file_table(plan, str(tmp_path)))  # not in scratch: only the shard lands there
    results, errors = [], []

    def attempt():
        try:
            results.append(write_shard(shard, context, str(scratch), rules))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert os.listdir(scratch) == [shard.store_name]  # one shard, no leftover partial
    winner = load_manifest(str(scratch / shard.store_name))
    assert [m["created_at"] for m in results] == [winner["created_at"]] * 2

    monkeypatch.setattr(shard_module, "_rename_first_wins", real_rename)
    alone = tmp_path / "alone"
    alone.mkdir()
    write_shard(shard, context, str(alone), rules)
    raced, single = chunk_files(scratch / shard.store_name), chunk_files(alone / shard.store_name)
    assert raced.pop("manifest.json") and single.pop("manifest.json")  # it records timings and pids
    assert raced == single


def test_a_worker_retiring_mid_task_hands_its_work_over(tmp_path, corpus, clean_store, monkeypatch):
    """What a walltime --lifetime does, triggered at a known point instead of by a clock (a timer-driven
    version hung on a loaded machine): the worker running a shard task (held 3 s at its start) is retired
    gracefully; the other worker finishes the run and the store equals a clean run's."""
    from distributed import Client, LocalCluster

    from shardmerge.executors import local_cluster_options

    monkeypatch.setenv("SHARDMERGE_FAILPOINTS", "shard-start=sleep:3")  # the workers inherit it
    monkeypatch.setenv("SHARDMERGE_FAILPOINT_DIR", str(failpoint_dir(tmp_path)))
    out = tmp_path / "out.zarr"
    mark = failpoint_dir(tmp_path) / "shard-start.hit"
    with LocalCluster(n_workers=2, **local_cluster_options()) as cluster, Client(cluster) as client:
        retired: list = []

        def retire_the_busy_worker():  # the CLI handles signals, so it runs on the main thread and this beside
            try:
                wait_until(lambda: mark.exists() and mark.read_text() != "", what="a shard task started")
                pid = int(mark.read_text())
                busy = [addr for addr, p in client.run(os.getpid).items() if p == pid]
                client.retire_workers(workers=busy, close_workers=True)
                retired.append((busy, sorted(client.scheduler_info(n_workers=-1)["workers"])))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
                retired.append(exc)

        helper = threading.Thread(target=retire_the_busy_worker)
        helper.start()
        r = run_cli("ingest", corpus, "-o", out, "--scheduler", cluster.scheduler_address, *LAYOUT, "--clevel", "9",
                    "--worker-wait", "60")
        helper.join(timeout=60)
    assert r.exit_code == 0, r
    assert len(retired) == 1 and isinstance(retired[0], tuple), retired
    busy, left = retired[0]
    assert len(busy) == 1 and busy[0] not in left, "the worker running the held shard task was not retired"
    # --clevel 9: a different codec level than the clean store, so compare decoded values instead
    import numpy as np
    import zarr

    a, b = zarr.open_group(out, mode="r"), zarr.open_group(clean_store, mode="r")
    for name in ("signal/flux_raw", "signal/uncertainty_raw", "signal/wavelength"):
        np.testing.assert_array_equal(a[name][:], b[name][:])


def _start_scheduler_and_worker(tmp_path, env: dict) -> tuple[str, list[subprocess.Popen]]:
    """A real `dask scheduler` and one `dask worker` (no nanny: nothing restarts it) on 127.0.0.1."""
    dask = str(Path(sys.executable).parent / "dask")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return address, [sched, _start_worker(address, env)]


def _start_worker(address: str, env: dict) -> subprocess.Popen:
    dask = str(Path(sys.executable).parent / "dask")
    return subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                             "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env}, start_new_session=True)


def test_last_worker_killed_mid_run_stops_within_worker_wait_then_the_same_command_resumes(tmp_path, corpus,
                                                                                           clean_store):
    """An existing scheduler whose only worker is SIGKILLed while a shard task runs: the run stops with
    exit 7 after --worker-wait seconds without any worker (it used to wait forever), publishes nothing and
    keeps the finished shards; the same command, once a worker is back, reuses them."""
    fp = {"SHARDMERGE_FAILPOINTS": "shard-start=pause@3", "SHARDMERGE_FAILPOINT_DIR": str(failpoint_dir(tmp_path))}
    address, procs = _start_scheduler_and_worker(tmp_path, fp)
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    args = ["ingest", str(corpus), "-o", str(out), "--scheduler", address, "--worker-wait", "3", *LAYOUT,
            "--report", str(rep)]
    try:
        proc = subprocess.Popen([sys.executable, "-m", "shardmerge", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        pid = wait_for_failpoint(tmp_path, "shard-start", proc)  # two shards are done, the third is held
        assert pid == procs[1].pid
        os.kill(pid, signal.SIGKILL)
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the ingest still waits 120 s after its last worker died:\n{proc.communicate()[0]}")
        assert proc.returncode == 7, output
        assert "no Dask worker has been connected for" in output and "--worker-wait 3" in output
        assert not out.exists() and not (tmp_path / "out.zarr.tmp").exists()
        assert report_of(rep)["status"] == "failed"
        assert len(shard_stores(tmp_path / "scratch")) == 2

        procs.append(_start_worker(address, {}))
        again = run_cli_process(*args[:-2], "--report", str(tmp_path / "again.json"), timeout=240)
        assert again.exit_code == 0, again
    finally:
        for p in reversed(procs):
            p.kill()
        for p in procs:
            p.wait(timeout=30)
    assert report_of(tmp_path / "again.json")["counts"]["shards_reused"] == 2
    assert chunk_files(out) == chunk_files(clean_store)


def test_a_stuck_task_stops_the_run_after_the_stall_timeout(tmp_path, corpus):
    """A shard task that never returns (a hung filesystem): exit 7 naming the stall, nothing published."""
    out = tmp_path / "out.zarr"
    r, out, _ = _ingest_with_failpoints(tmp_path, corpus, "shard-start=pause", "--stall-timeout", "3")
    assert r.exit_code == 7, r
    assert "no shard-" in r.output and "task finished for" in r.output and "--stall-timeout 3" in r.output
    assert not out.exists() and not (tmp_path / "out.zarr.tmp").exists()
