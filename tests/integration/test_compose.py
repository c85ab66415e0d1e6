"""docker-compose.yml, for real without Docker: every command line in it is accepted by its CLI, and the same
topology (a `dask scheduler`, two `dask worker`s, `shardmerge ingest --scheduler`) runs as real processes
on 127.0.0.1 with the compose file's own command lines, volumes mapped to folders."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import yaml

from shardmerge.cli import main as shardmerge_main
from tests.helpers import REPO, run_cli
from tests.storecmp import chunk_files

COMPOSE = REPO / "docker-compose.yml"


def _services() -> dict[str, list[str]]:
    doc = yaml.safe_load(COMPOSE.read_text())
    return {name: svc["command"] for name, svc in doc["services"].items()}


def _dask_cli(sub: str) -> click.Command:
    if sub == "scheduler":
        from distributed.cli.dask_scheduler import main
    else:
        from distributed.cli.dask_worker import main
    return main


def test_topology_is_a_scheduler_two_workers_and_an_ingest():
    services = _services()
    assert sorted(services) == ["ingest", "scheduler", "worker-1", "worker-2"]
    assert services["scheduler"][:2] == ["dask", "scheduler"]
    assert all(services[w][:3] == ["dask", "worker", "tcp://scheduler:8786"] for w in ("worker-1", "worker-2"))
    assert services["ingest"][:2] == ["shardmerge", "ingest"]
    assert services["ingest"][services["ingest"].index("--scheduler") + 1] == "tcp://scheduler:8786"


@pytest.mark.parametrize("service", ["scheduler", "worker-1", "worker-2", "ingest"])
def test_every_command_line_is_accepted_by_its_cli(service):
    argv = _services()[service]
    if argv[0] == "shardmerge":
        ctx = click.Context(shardmerge_main, info_name="shardmerge")
        name, cmd, rest = shardmerge_main.resolve_command(ctx, argv[1:])
        sub = cmd.make_context(name, rest, parent=ctx)  # raises click.UsageError on a bad option
        assert sub.params["scheduler"] == "tcp://scheduler:8786"
    else:
        assert argv[0] == "dask"
        cmd = _dask_cli(argv[1])
        ctx = cmd.make_context(f"dask {argv[1]}", argv[2:])
        assert ctx.params


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _localize(argv: list[str], port: int, volumes: dict[str, Path]) -> list[str]:
    """The compose command line as a process here: the service name `scheduler` is 127.0.0.1, the
    scheduler listens on loopback only, and container paths map to test folders."""
    out = []
    for a in argv:
        a = a.replace("tcp://scheduler:8786", f"tcp://127.0.0.1:{port}").replace("0.0.0.0", "127.0.0.1")
        if a == "8786":
            a = str(port)
        for inside, outside in volumes.items():
            if a.startswith(inside):
                a = str(outside) + a[len(inside):]
        out.append(a)
    exe = {"dask": [str(Path(sys.executable).parent / "dask")],
           "shardmerge": [sys.executable, "-m", "shardmerge.cli"]}[out[0]]
    return exe + out[1:]


def test_compose_topology_runs_with_real_processes(tmp_path, mixed_corpus, dask_scheduler):
    services = _services()
    volumes = {"/data/inputs": mixed_corpus, "/data/output": tmp_path / "output", "/scratch": tmp_path / "scratch"}
    for folder in volumes.values():
        folder.mkdir(exist_ok=True)
    port = _free_port()
    procs = []
    try:
        for name in ("scheduler", "worker-1", "worker-2"):
            procs.append(subprocess.Popen(_localize(services[name], port, volumes), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
            if name == "scheduler":
                deadline = time.monotonic() + 60
                while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                    assert time.monotonic() < deadline, "dask scheduler did not start"
                    time.sleep(0.1)
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)  # both workers up, as in compose once they are running
        ingest = subprocess.run(_localize(services["ingest"], port, volumes), capture_output=True, text=True,
                                timeout=300)
        assert ingest.returncode == 0, ingest.stdout + ingest.stderr
        assert "(2 workers)" in ingest.stderr
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    store = tmp_path / "output" / "survey.zarr"
    assert (tmp_path / "output" / "survey-report.json").exists()
    assert run_cli("validate", store).exit_code == 0
    local = tmp_path / "local.zarr"
    assert run_cli("ingest", mixed_corpus, "-o", local, "--scheduler", dask_scheduler).exit_code == 0
    assert chunk_files(store) == chunk_files(local)


def test_a_scheduler_without_workers_is_a_clear_error(tmp_path, mixed_corpus):
    port = _free_port()
    sched = subprocess.Popen(_localize(_services()["scheduler"], port, {}), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        r = subprocess.run([sys.executable, "-m", "shardmerge.cli", "ingest", str(mixed_corpus), "-o",
                            str(tmp_path / "o.zarr"), "--scheduler", f"tcp://127.0.0.1:{port}", "--worker-wait", "2"],
                           capture_output=True, text=True, timeout=120)
    finally:
        sched.terminate()
        sched.wait(timeout=30)
    assert r.returncode == 7, r.stderr
    assert f"the Dask scheduler at tcp://127.0.0.1:{port}: fewer than 1 worker(s) connected within 2 s" in r.stderr
    assert not (tmp_path / "o.zarr").exists()
