"""The fault matrix's helpers: the layout that makes 9 shards, real ingest processes in their own process
group (so a test can SIGKILL the CLI with its cluster), failpoints, and waiting on them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# 16-row chunks and shards: the corpus below becomes 9 shards, so a crash can land between them
LAYOUT = ("--chunk-rows", "16", "--shard-rows", "16")


def start_ingest(tmp_path: Path, *args, failpoints: str = "", workers: int = 2) -> subprocess.Popen:
    """`shardmerge ingest ARGS` as a real process leading its own process group (its LocalCluster's
    nanny and workers are in that group too)."""
    env = {**os.environ, "SHARDMERGE_FAILPOINTS": failpoints, "SHARDMERGE_FAILPOINT_DIR": str(failpoint_dir(tmp_path))}
    if not failpoints:
        env.pop("SHARDMERGE_FAILPOINTS")
    return subprocess.Popen([sys.executable, "-m", "shardmerge", "ingest", *map(str, args), "--workers",
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
