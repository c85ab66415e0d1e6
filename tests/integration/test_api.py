"""shardmerge.ingest, the public Python API: parity with the CLI, argument checks that name the argument, the
caller's own Dask client (left open) and the active default one, and the guard a script needs under spawn."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap

import pytest

import shardmerge
from shardmerge.cli import ingest_cmd
from tests.helpers import REPO, run_cli
from tests.storecmp import chunk_files

NOT_CLI = {"client", "progress"}  # the API's own keywords


def _cli_defaults() -> dict[str, object]:
    """What the ingest command passes for each option left out: click's own parse of a bare command line."""
    ctx = ingest_cmd.make_context("ingest", ["IN", "-o", "OUT"])
    out = dict(ctx.params)
    out["zarr_format"] = int(out["zarr_format"])  # a click.Choice of strings; the API takes the int (and those)
    return out


def test_every_cli_option_is_a_keyword_of_the_same_name_and_default():
    params = inspect.signature(shardmerge.ingest).parameters
    assert list(params)[:2] == ["inputs", "out"]
    assert params["inputs"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    keywords = {n: p for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    cli = {p.name for p in ingest_cmd.params}
    assert set(keywords) - NOT_CLI == cli - {"inputs", "out"}
    for name, default in _cli_defaults().items():
        if name not in ("inputs", "out"):
            assert keywords[name].default == default, name
    assert keywords["client"].default is None and keywords["progress"].default is True


def test_import_shardmerge_stays_cheap():
    code = ("import sys, shardmerge; shardmerge.ingest, shardmerge.RunReport, shardmerge.ShardmergeError; "
            "print(' '.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    imported = {name.partition(".")[0] for name in done.stdout.split()}
    assert imported & {"dask", "distributed", "zarr", "astropy", "numpy", "pyarrow", "pandas"} == set()
    assert "shardmerge.api" in done.stdout.split()


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"inputs": []}, "inputs="),
    ({"inputs": [b"x"]}, "inputs="),
    ({"out": None}, "out="),
    ({"chunk_rows": 0}, "chunk_rows="),
    ({"chunk_rows": "16"}, "chunk_rows="),
    ({"clevel": 10}, "clevel="),
    ({"zarr_format": 4}, "zarr_format="),
    ({"workers": -1}, "workers="),
    ({"workers": True}, "workers="),
    ({"cluster": "pbs"}, "cluster="),
    ({"worker_wait": 0.5}, "worker_wait="),
    ({"strict": "bogus"}, "strict="),
    ({"on_bad_file": "ignore"}, "on_bad_file="),
    ({"scratch_kind": "nfs"}, "scratch_kind="),
    ({"overwrite": "yes"}, "overwrite="),
    ({"mapping": "/nonexistent/m.toml", "format": "mapping"}, "mapping="),
    ({"format": "mapping"}, "format='mapping' and mapping="),
    ({"scheduler": "tcp://127.0.0.1:1", "cluster": "slurm"}, "scheduler= and cluster="),
    ({"client": object()}, "client="),
])
def test_argument_errors_name_the_argument(tmp_path, mixed_corpus, kwargs, named):
    args = {"inputs": str(mixed_corpus), "out": str(tmp_path / "o.zarr"), **kwargs}
    with pytest.raises(shardmerge.ArgumentError) as err:
        shardmerge.ingest(args.pop("inputs"), args.pop("out"), **args)
    assert str(err.value).startswith(named), err.value
    assert "--" not in str(err.value)  # the Python argument, never the CLI flag
    assert isinstance(err.value, shardmerge.InputError) and err.value.exit_code == 2
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "scratch").exists()  # nothing touched


def test_the_cli_says_the_same_in_its_flags(tmp_path, mixed_corpus):
    r = run_cli("ingest", mixed_corpus, "-o", tmp_path / "o.zarr", "--format", "mapping")
    assert r.exit_code == 2 and "--format mapping and --mapping FILE go together" in r.output, r


def test_a_bare_string_is_one_input(tmp_path, mixed_corpus, monkeypatch):
    monkeypatch.chdir(mixed_corpus.parent)
    with pytest.raises(shardmerge.InputError, match="^nowhere: no such file"):
        shardmerge.ingest("nowhere", tmp_path / "o.zarr", quiet=True)
    report = shardmerge.ingest(mixed_corpus.name, tmp_path / "o.zarr", progress=False)  # "corpus", not c, o, ...
    assert isinstance(report, shardmerge.RunReport) and report.status == "published"
    assert report.counts["files_ingested"] == 19 and report.scheduler == "inline"


@pytest.mark.timeout(240)
def test_python_and_cli_write_the_same_store_on_the_callers_client(tmp_path, mixed_corpus, dask_scheduler):
    from distributed import Client

    cli_out, api_out = tmp_path / "cli.zarr", tmp_path / "api.zarr"
    assert run_cli("ingest", mixed_corpus, "-o", cli_out, "--scheduler", dask_scheduler, "--quiet").exit_code == 0
    with Client(dask_scheduler, set_as_default=False) as client:
        report = shardmerge.ingest([mixed_corpus], api_out, client=client, report=tmp_path / "r.json",
                                   progress=False)
        assert client.status == "running"  # left open, and usable
        assert client.submit(sum, [1, 2]).result(timeout=30) == 3
    assert report.status == "published" and report.cluster["kind"] == "client"
    assert report.scheduler == dask_scheduler and report.workers == 2
    assert chunk_files(api_out) == chunk_files(cli_out)
    assert run_cli("validate", api_out).exit_code == 0
    assert "shardmerge.ingest(" in (tmp_path / "r.json").read_text()  # the call is the run's command


def test_client_and_a_cluster_option_are_alternatives(tmp_path, mixed_corpus, dask_scheduler):
    from distributed import Client

    with Client(dask_scheduler, set_as_default=False) as client:
        with pytest.raises(shardmerge.ArgumentError, match="^client= and workers= are alternatives"):
            shardmerge.ingest(mixed_corpus, tmp_path / "o.zarr", client=client, workers=2)
        assert client.status == "running"


@pytest.mark.timeout(240)
def test_an_active_default_client_is_used(tmp_path, mixed_corpus, dask_scheduler):
    from distributed import Client

    with Client(dask_scheduler):  # the default client, as `client = Client(...)` in a notebook makes it
        report = shardmerge.ingest(mixed_corpus, tmp_path / "o.zarr", progress=False)
        assert report.cluster["kind"] == "client" and report.scheduler == dask_scheduler
        # a cluster option says otherwise: this small input runs in this process
        inline = shardmerge.ingest(mixed_corpus, tmp_path / "p.zarr", workers=0, progress=False)
        assert inline.scheduler == "inline"
    assert chunk_files(tmp_path / "o.zarr") == chunk_files(tmp_path / "p.zarr")


SCRIPT = """\
import sys
import shardmerge

{call}
"""


def _script(tmp_path, corpus, guarded: bool) -> subprocess.CompletedProcess:
    call = f"report = shardmerge.ingest({str(corpus)!r}, {str(tmp_path / 'o.zarr')!r}, workers=2, progress=False)\n"
    call += "print('STATUS', report.status, report.cluster['kind'])"
    if guarded:
        call = 'if __name__ == "__main__":\n' + textwrap.indent(call, "    ")
    path = tmp_path / "notebook_like.py"
    path.write_text(SCRIPT.format(call=call))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=200,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)


@pytest.mark.timeout(240)
def test_a_script_without_the_main_guard_is_refused_clearly(tmp_path, mixed_corpus):
    done = _script(tmp_path, mixed_corpus, guarded=False)
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "MainGuardError" in output and 'if __name__ == "__main__":' in output, output
    assert "notebook_like.py, line 4" in output
    assert "Nanny" not in output and "LockHeldError" not in output, output
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.timeout(240)
def test_the_same_script_with_the_guard_runs_on_local_workers(tmp_path, mixed_corpus):
    done = _script(tmp_path, mixed_corpus, guarded=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "STATUS published local" in done.stdout
    assert "Traceback" not in done.stderr
