"""Disk faults: a full scratch or OUT filesystem (a real 1 MiB tmpfs), fsync answering EIO (mocked: it
cannot be caused on demand), a read-only OUT folder (a real read-only mount: chmod does not stop root)."""

from __future__ import annotations

import errno
import os
import re

import pytest

from shardmerge import durable
from shardmerge.testing.spectra import make_image2d
from tests.faults.helpers import LAYOUT
from tests.helpers import run_cli, run_cli_process


@pytest.fixture
def big_corpus(tmp_path):
    """About 5 MiB compressed: more than the 1 MiB tmpfs holds."""
    root = tmp_path / "big"
    for i in range(3):
        make_image2d(root / f"plate{i}.fits", i=i, n_rows=128, n_pix=4000, seed=i)
    return root


def _leftovers(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, dirs, files in os.walk(folder)
                  for n in dirs + files if n.endswith((".partial", ".tmp")))


def test_full_scratch_disk_is_a_clean_error(tmp_path, big_corpus, tmpfs):
    scratch = tmpfs(1 << 20)
    out = tmp_path / "out.zarr"
    r = run_cli_process("ingest", big_corpus, "-o", out, "--workers", "2", "--scratch", scratch)
    assert r.exit_code == 6, r
    assert "No space left on device (free some space or point it elsewhere)" in r.output
    assert str(scratch) in r.output
    assert "Traceback" not in r.output
    assert _leftovers(scratch) == []  # every attempt removed its partial
    assert not out.exists() and not os.path.exists(f"{out}.tmp")


def test_full_output_disk_is_a_clean_error_and_leaves_nothing(tmp_path, big_corpus, tmpfs):
    folder = tmpfs(1 << 20)
    out = folder / "out.zarr"
    r = run_cli_process("ingest", big_corpus, "-o", out, "--workers", "2")
    assert r.exit_code == 6, r
    assert "No space left on device" in r.output and f"{out}.tmp" in r.output
    assert os.listdir(folder) == []  # no .tmp, no lock file, nothing


def test_fsync_error_on_the_store_is_fatal_and_nothing_is_published(tmp_path, corpus, monkeypatch):
    out = tmp_path / "out.zarr"
    real_fsync = os.fsync
    failed = []

    def fsync(fd):
        if ".zarr.tmp" in os.readlink(f"/proc/self/fd/{fd}"):
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    real_syncfs = durable.syncfs

    def syncfs(fd):  # where the store is made durable with one syncfs(2) (Linux >= 5.8)
        if ".zarr.tmp" in os.readlink(f"/proc/self/fd/{fd}"):
            failed.append(fd)
            raise OSError(errno.EIO, "Input/output error")
        return real_syncfs(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(durable, "syncfs", syncfs)
    r = run_cli("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT)
    assert r.exit_code == 6, r
    assert re.search(r"(fsync|syncfs) failed \(Input/output error\); nothing is published", r.output), r
    assert len(failed) == 1  # the first failure stops the run: a sync is never retried
    assert not out.exists() and not os.path.exists(f"{out}.tmp")


@pytest.mark.parametrize("written", ["/shard-", "/files-"])  # a shard task's store; the plan's file table
def test_fsync_error_in_a_shard_task_is_not_retried(tmp_path, corpus, monkeypatch, written):
    """Retrying after a failed fsync could report success for pages the kernel already dropped."""
    out = tmp_path / "out.zarr"
    real_fsync = os.fsync
    attempts = set()

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if ".partial" in path and written in path:
            attempts.add(path.split(".partial")[0])
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    r = run_cli("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT)
    assert r.exit_code == 6 and "fsync failed" in r.output, r
    assert len(attempts) == 1
    assert _leftovers(tmp_path) == [] and not out.exists()


def test_read_only_output_folder_is_refused_before_any_work(tmp_path, corpus, tmpfs):
    folder = tmpfs(1 << 20, ro=True)
    r = run_cli_process("ingest", corpus, "-o", folder / "out.zarr", "--workers", "2")
    assert r.exit_code == 5, r
    assert f"cannot write in {folder} (Read-only file system)" in r.output
    assert "started a local Dask cluster" not in r.output  # refused before any work
    assert not (tmp_path / "scratch").exists()


def test_an_io_error_that_outlives_a_shard_tasks_retries_is_named_not_a_traceback(tmp_path, corpus, monkeypatch):
    """A shard task's plain EIO is retried (NFS answers EIO to a timeout); one that stays is a disk error
    named with its path (exit 6), not a traceback, and nothing is published."""
    from shardmerge import shard

    calls = []

    def failing(plan, spec, segments, path, *args):
        calls.append(path)
        raise OSError(errno.EIO, "Input/output error", path)

    monkeypatch.setattr(shard, "_materialize", failing)
    out = tmp_path / "out.zarr"
    r = run_cli("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT)
    assert r.exit_code == 6, r.output
    assert "Input/output error (the disk or filesystem failed: check it, then rerun" in r.output
    assert calls[0] in r.output and "Traceback" not in r.output
    assert len(calls) == 3  # the first attempt and two retries
    assert not out.exists() and not os.path.exists(f"{out}.tmp")
