"""Shared fixtures: a real Dask LocalCluster (2 workers, 127.0.0.1) for the whole session, a scratch root per
test, and synthetic corpora built per test (never committed). Helpers tests import are in helpers.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shardmerge.testing.spectra import make_mixed_corpus


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
    monkeypatch.setenv("SHARDMERGE_JOB_LOGS", str(tmp_path / "job-logs"))  # not ./shardmerge-logs in the repo


@pytest.fixture
def mixed_corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    make_mixed_corpus(root, n_wcs1d=10, n_image2d=3, rows_per_image=40, n_sdss=6)
    return root
