"""Node-local scratch, as on a cluster whose nodes each have their own disk: a real `dask scheduler` and two
`dask worker` processes, each in its own mount namespace with a private tmpfs at the same path (SLURM's
per-job TMPDIR on two nodes). The ingest (this machine's namespace) cannot see either tmpfs, nor can the
workers see its scratch: every shard reaches the merge through Dask or not at all.

Stores are fetched while other shards are still being written (the last shard task held at its start).
Failure rows: a worker lost after writing its shards and before they are fetched (its tmpfs goes with it,
as a node's disk would); the driver killed in the middle of the fetch, then rerun; a fetch that fails on
its worker; a store that cannot be kept on the ingest's scratch."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.helpers import LAYOUT, failpoint_dir, kill_group, report_of, wait_for_failpoint, wait_until
from tests.helpers import run_cli
from tests.storecmp import chunk_files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeCluster:
    """A scheduler and two workers, each worker on its own "node": a private tmpfs at `node_root` that only
    it sees, and the ingest's scratch hidden from it."""

    def __init__(self, tmp_path: Path, worker_failpoints: str = ""):
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            pytest.skip("node-local scratch is simulated with mount namespaces: needs root and unshare")
        self.node_root = tmp_path / "node-tmp"  # the same path on every "node", a different disk behind it
        self.node_root.mkdir()
        self.driver_scratch = Path(os.environ["SHARDMERGE_SCRATCH"])  # conftest: one per test
        self.driver_scratch.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        dask = str(Path(sys.executable).parent / "dask")
        self.procs: list[subprocess.Popen] = [subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        self.workers: dict[str, subprocess.Popen] = {}
        for name in ("node-1", "node-2"):
            script = (f"mount -t tmpfs -o size=256m,mode=0700 tmpfs {self.node_root} && "
                      f"mount -t tmpfs -o size=1m tmpfs {self.driver_scratch} && "
                      f"exec {dask} worker {self.address} --no-nanny --nthreads 1 --name {name} "
                      "--no-dashboard --host 127.0.0.1")
            env = {**os.environ, "SHARDMERGE_NODE_SCRATCH": str(self.node_root),
                   "SHARDMERGE_FAILPOINTS": worker_failpoints, "SHARDMERGE_FAILPOINT_DIR": str(failpoint_dir(tmp_path))}
            if not worker_failpoints:
                env.pop("SHARDMERGE_FAILPOINTS")
            proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(proc)
            self.workers[name] = proc
        self.wait_for_workers(2)

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(n, timeout=120)

    def shards_on(self, name: str) -> list[str]:
        """The shard stores in a worker's own tmpfs, seen from inside its namespace."""
        pid = self.workers[name].pid
        root = Path(f"/proc/{pid}/root") / str(self.node_root).lstrip("/")
        return sorted(n for d in root.glob("*-node") for n in os.listdir(d) if n.startswith("shard-"))

    def kill(self, name: str) -> None:
        proc = self.workers[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)


@pytest.fixture
def nodes(tmp_path, request):
    cluster = NodeCluster(tmp_path, getattr(request, "param", ""))
    try:
        yield cluster
    finally:
        cluster.close()


def _ingest(tmp_path: Path, nodes: NodeCluster, corpus, out: Path, *extra: str, failpoints: str = "",
            report: str = "report.json") -> subprocess.Popen:
    env = {**os.environ, "SHARDMERGE_FAILPOINT_DIR": str(failpoint_dir(tmp_path))}
    if failpoints:
        env["SHARDMERGE_FAILPOINTS"] = failpoints
    return subprocess.Popen([sys.executable, "-m", "shardmerge", "ingest", str(corpus), "-o", str(out),
                             "--scheduler", nodes.address, "--report", str(tmp_path / report), *LAYOUT, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def test_auto_finds_scratch_invisible_and_a_node_local_run_publishes_the_same_bytes(tmp_path, nodes, corpus,
                                                                                    clean_store):
    out = tmp_path / "out.zarr"
    log = _finish(_ingest(tmp_path, nodes, corpus, out))  # --scratch-kind auto
    assert "is not visible from worker(s)" in log
    report = report_of(tmp_path / "report.json")
    assert report["scratch_kind"] == "node-local" and report["cluster"]["results_from"] == "workers"
    assert report["counts"]["shards_fetched"] == report["counts"]["shards_total"] == 9
    assert report["bytes"]["fetched"] >= report["bytes"]["scratch"] > 0
    assert chunk_files(out) == chunk_files(clean_store)  # byte for byte what a shared-scratch run writes
    assert nodes.shards_on("node-1") == nodes.shards_on("node-2") == []  # the workers' copies are gone
    assert not list(Path(os.environ["SHARDMERGE_SCRATCH"]).glob("*/shard-*"))  # and the fetched ones too
    r = run_cli("ingest", corpus, "-o", tmp_path / "refused.zarr", "--scheduler", nodes.address, *LAYOUT,
                "--scratch-kind", "shared")
    assert r.exit_code == 7 and "or --scratch-kind node-local" in r.output, r.output


@pytest.mark.parametrize("nodes", ["shard-start=wait@9"], indirect=True)  # the last shard task holds
def test_stores_are_fetched_while_other_shards_are_still_being_written(tmp_path, nodes, corpus, clean_store):
    out = tmp_path / "out.zarr"
    proc = _ingest(tmp_path, nodes, corpus, out, "--scratch-kind", "node-local", failpoints="shard-fetched=sleep:0")
    try:
        wait_for_failpoint(tmp_path, "shard-start", proc)  # the last shard task holds at its start...
        wait_for_failpoint(tmp_path, "shard-fetched", proc)  # ...while a store is fetched and kept here
        assert len(nodes.shards_on("node-1") + nodes.shards_on("node-2")) == 8  # the last is not written yet
    except BaseException:
        kill_group(proc)
        raise
    finally:
        (failpoint_dir(tmp_path) / "shard-start.go").touch()
    _finish(proc)
    assert report_of(tmp_path / "report.json")["counts"]["shards_fetched"] == 9
    assert chunk_files(out) == chunk_files(clean_store)


def test_a_worker_lost_before_the_fetch_has_its_shards_written_again(tmp_path, nodes, corpus, clean_store):
    out = tmp_path / "out.zarr"
    # fetches wait; the ingest holds once every shard task has returned (none is rerun by the scheduler then)
    proc = _ingest(tmp_path, nodes, corpus, out, "--scratch-kind", "node-local",
                   failpoints="fetch-start=wait,shards-written=wait")
    try:
        wait_for_failpoint(tmp_path, "shards-written", proc)
        held = {name: nodes.shards_on(name) for name in nodes.workers}
        victim = max(held, key=lambda name: len(held[name]))
        assert held[victim], held  # it wrote shards that now exist nowhere else
        nodes.kill(victim)
    except BaseException:
        kill_group(proc)
        raise
    finally:
        for name in ("fetch-start", "shards-written"):
            (failpoint_dir(tmp_path) / f"{name}.go").touch()
    log = _finish(proc)
    report = report_of(tmp_path / "report.json")
    assert report["counts"]["shards_recomputed_lost"] == len(held[victim]), log
    assert "lost before it was fetched" in log
    assert chunk_files(out) == chunk_files(clean_store)


@pytest.mark.parametrize("restart", [False, True])
def test_a_driver_killed_during_the_fetch_is_rerun_and_keeps_what_it_fetched(tmp_path, nodes, corpus, clean_store,
                                                                             restart):
    out = tmp_path / "out.zarr"
    proc = _ingest(tmp_path, nodes, corpus, out, "--scratch-kind", "node-local",
                   failpoints="shard-fetched=pause@4")
    wait_for_failpoint(tmp_path, "shard-fetched", proc)
    kill_group(proc)  # the ingest only: the workers, and the shards on their disks, live on
    assert not out.exists()
    wait_until(lambda: all(p.poll() is None for p in nodes.workers.values()), what="workers alive")
    kept = [p for p in nodes.driver_scratch.glob("*/shard-*.zarr") if (p / "manifest.json").exists()]
    assert len(kept) == 4  # in place on this scratch; the others are on the workers' disks, or never written
    proc = _ingest(tmp_path, nodes, corpus, out, "--scratch-kind", "node-local",
                   *(["--restart"] if restart else []), report="rerun.json")
    _finish(proc)
    counts = report_of(tmp_path / "rerun.json")["counts"]
    if restart:  # nothing an earlier run left is used: not this scratch's shards, not the workers'
        assert counts["shards_fetched"] == 9 and counts.get("shards_reused", 0) == 0
    else:
        assert counts["shards_fetched"] == 5  # the 4 fetched before the kill were kept on this scratch
        assert counts["shards_reused"] >= 4  # those 4, and any the rerun's tasks found on their worker's disk
    assert chunk_files(out) == chunk_files(clean_store)


def test_a_store_that_cannot_be_kept_fails_the_run_and_the_rerun_finishes_it(tmp_path, nodes, corpus, clean_store):
    """A full disk on the ingest's scratch while keeping a fetched store (the keeper's thread): the run
    stops, shards still being written or not, with the storage error's exit code; the rerun reuses what
    was kept and publishes the same bytes."""
    out = tmp_path / "out.zarr"
    proc = _ingest(tmp_path, nodes, corpus, out, "--scratch-kind", "node-local",
                   failpoints="shard-fetched=raise:ENOSPC@2")
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 6 and "No space left on device (injected fault at shard-fetched)" in log, log
    assert "Traceback" not in log
    assert not out.exists() and not (tmp_path / "out.zarr.tmp").exists()
    _finish(_ingest(tmp_path, nodes, corpus, out, "--scratch-kind", "node-local", report="rerun.json"))
    assert report_of(tmp_path / "rerun.json")["counts"]["shards_reused"] >= 2  # the two kept before the error
    assert chunk_files(out) == chunk_files(clean_store)


@pytest.mark.parametrize("nodes", ["fetch-read=raise"], indirect=True)  # the first fetch fails on its worker
def test_a_fetch_that_fails_on_its_worker_has_that_shard_written_again(tmp_path, nodes, corpus, clean_store):
    out = tmp_path / "out.zarr"
    log = _finish(_ingest(tmp_path, nodes, corpus, out, "--scratch-kind", "node-local"))
    counts = report_of(tmp_path / "report.json")["counts"]
    assert counts["shards_recomputed_lost"] == 1 and "injected fault at fetch-read" in log
    assert counts["shards_fetched"] == 9
    assert chunk_files(out) == chunk_files(clean_store)
