"""Shared fixtures: a real Dask LocalCluster (2 workers, 127.0.0.1) for the whole session, synthetic
corpora built per test (never committed), and a helper that runs the real CLI."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shardmerge.cli import main
from shardmerge.samples import make_mixed_corpus

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def dask_scheduler():
    """Address of a real LocalCluster with 2 single-threaded worker processes on 127.0.0.1."""
    from distributed import LocalCluster

    from shardmerge.executors import local_cluster_options

    with LocalCluster(n_workers=2, **local_cluster_options(silence_logs=logging.ERROR)) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(autouse=True)
def _scratch(tmp_path, monkeypatch):
    """Every test gets its own scratch root, so shard stores never leak between tests."""
    monkeypatch.setenv("SHARDMERGE_SCRATCH", str(tmp_path / "scratch"))


@pytest.fixture
def mixed_corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    make_mixed_corpus(root, n_wcs1d=10, n_image2d=3, rows_per_image=40, n_sdss=6)
    return root


class CliResult:
    def __init__(self, exit_code: int, output: str, stdout: str | None = None):
        self.exit_code = exit_code
        self.output = output  # stdout and stderr as a user sees them
        self.stdout = output if stdout is None else stdout  # what a pipe would get (plan --json)

    def __repr__(self) -> str:
        return f"exit {self.exit_code}\n{self.output}"


def run_cli(*args: str) -> CliResult:
    """The CLI in this process (fast: reuses the session cluster through --scheduler)."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return CliResult(result.exit_code, result.output, result.stdout)


def run_cli_process(*args: str, timeout: float = 300, env: dict | None = None) -> CliResult:
    """The CLI as its own process, exactly as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "shardmerge.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return CliResult(done.returncode, done.stdout + done.stderr, done.stdout)
