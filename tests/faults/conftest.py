"""The fault matrix's tools: a corpus of several shards, a clean reference store built from it, real ingest
processes in their own process group (so a test can SIGKILL the CLI with its cluster), failpoints, and
small tmpfs mounts for full and read-only disks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from shardmerge.samples import make_mixed_corpus
from tests.conftest import run_cli_process

# 16-row chunks and shards: the corpus below becomes 9 shards, so a crash can land between them
LAYOUT = ("--chunk-rows", "16", "--shard-rows", "16")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "corpus"
    make_mixed_corpus(root, n_wcs1d=10, n_image2d=3, rows_per_image=40, n_sdss=6)
    return root


@pytest.fixture(scope="module")
def clean_store(corpus, tmp_path_factory) -> Path:
    """The store a clean run of LAYOUT writes from `corpus` (chunk bytes include source paths: same corpus)."""
    base = tmp_path_factory.mktemp("clean")
    out = base / "clean.zarr"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "2", *LAYOUT,
                        env={"SHARDMERGE_SCRATCH": str(base / "scratch")})
    assert r.exit_code == 0, r
    return out


def start_ingest(tmp_path: Path, *args, failpoints: str = "", workers: int = 2) -> subprocess.Popen:
    """`shardmerge ingest ARGS` as a real process leading its own process group (its LocalCluster's
    nanny and workers are in that group too)."""
    env = {**os.environ, "SHARDMERGE_FAILPOINTS": failpoints, "SHARDMERGE_FAILPOINT_DIR": str(failpoint_dir(tmp_path))}
    if not failpoints:
        env.pop("SHARDMERGE_FAILPOINTS")
    return subprocess.Popen([sys.executable, "-m", "shardmerge.cli", "ingest", *map(str, args), "--workers",
                             str(workers)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def failpoint_dir(tmp_path: Path) -> Path:
    d = tmp_path / "failpoints"
    d.mkdir(exist_ok=True)
    return d


def wait_until(condition, proc: subprocess.Popen | None = None, timeout: float = 120, what: str = "") -> None:
    """Poll `condition`; fail with the process's output if it exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"ingest exited with {proc.returncode} before {what}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_for_failpoint(tmp_path: Path, name: str, proc: subprocess.Popen) -> int:
    """Wait until a process reached failpoint `name`; returns that process's pid."""
    mark = failpoint_dir(tmp_path) / f"{name}.hit"
    wait_until(lambda: mark.exists() and mark.read_text() != "", proc, what=f"failpoint {name}")
    return int(mark.read_text())


def kill_group(proc: subprocess.Popen) -> str:
    """kill -9 the ingest and everything it started (its cluster), as a crash or an OOM killer would."""
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the group is gone only when its last worker is
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    return out


def report_of(path: Path) -> dict:
    return json.loads(path.read_text())


def shard_stores(scratch_root: Path) -> list[Path]:
    return sorted(p for p in scratch_root.glob("*/shard-*.zarr") if p.is_dir())


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, ro=False) → a fresh tmpfs of `size` bytes; needs root (CI and this machine run as root)."""
    mounted: list[Path] = []

    def mount(size: int, ro: bool = False) -> Path:
        point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): needs root")
        mounted.append(point)
        if ro:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)
