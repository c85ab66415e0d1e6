"""Faults of shard tasks and of the workers running them: a task that raises once, a worker SIGKILLed
mid-shard, two attempts of one shard at once, workers retiring at the end of their lifetime."""

from __future__ import annotations

import os
import threading

import pytest

from shardmerge import shard as shard_module
from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.headers import load_header_rules
from shardmerge.pipeline import plan_inputs
from shardmerge.shard import load_manifest, write_shard
from tests.conftest import run_cli, run_cli_process
from tests.faults.conftest import LAYOUT, failpoint_dir, report_of
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
    results, errors = [], []

    def attempt():
        try:
            results.append(write_shard(shard, plan.context(), str(scratch), rules))
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
    write_shard(shard, plan.context(), str(alone), rules)
    raced, single = chunk_files(scratch / shard.store_name), chunk_files(alone / shard.store_name)
    assert raced.pop("manifest.json") and single.pop("manifest.json")  # it records timings and pids
    assert raced == single


def test_workers_retiring_at_the_end_of_their_lifetime(tmp_path, corpus, clean_store, monkeypatch):
    """Walltime: workers with a short --lifetime retire gracefully (and are restarted) during the run, one
    of them while a shard task (held for 3 s) is running on it."""
    from distributed import Client, LocalCluster

    from shardmerge.cluster import local_cluster_options

    monkeypatch.setenv("SHARDMERGE_FAILPOINTS", "shard-start=sleep:3")  # the workers inherit it
    monkeypatch.setenv("SHARDMERGE_FAILPOINT_DIR", str(failpoint_dir(tmp_path)))

    options = local_cluster_options(lifetime="1.5s", lifetime_stagger="0.5s", lifetime_restart=True)
    with LocalCluster(n_workers=2, **options) as cluster, Client(cluster) as client:
        seen: set[str] = set()
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.update(client.scheduler_info(n_workers=-1)["workers"])
                stop.wait(0.1)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            out = tmp_path / "out.zarr"
            r = run_cli("ingest", corpus, "-o", out, "--scheduler", cluster.scheduler_address, *LAYOUT,
                        "--clevel", "9")
        finally:
            stop.set()
            watcher.join()
    assert r.exit_code == 0, r
    assert len(seen) > 2, "no worker retired during the run: make the run longer or the lifetime shorter"
    # --clevel 9: a different codec level than the clean store, so compare decoded values instead
    import numpy as np
    import zarr

    a, b = zarr.open_group(out, mode="r"), zarr.open_group(clean_store, mode="r")
    for name in ("signal/flux_raw", "signal/uncertainty_raw", "signal/wavelength"):
        np.testing.assert_array_equal(a[name][:], b[name][:])


def test_local_cluster_listens_on_loopback_only_without_dashboard():
    """The scheduler, workers and the scheduler's small HTTP server (health, metrics) are on 127.0.0.1,
    and the dashboard pages are not served."""
    import urllib.error
    import urllib.request

    from shardmerge.cluster import executor

    with executor(ClusterRequest(workers=1)) as ex:
        assert ex.address.startswith("tcp://127.0.0.1:")
        info = ex.client.scheduler_info()
        assert all(w.startswith("tcp://127.0.0.1:") for w in info["workers"])
        http = ex.client.cluster.scheduler.http_server
        assert http.address == "127.0.0.1"
        base = f"http://127.0.0.1:{http.port}"
        with urllib.request.urlopen(f"{base}/health", timeout=10) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/status", timeout=10)
        assert err.value.code == 404
