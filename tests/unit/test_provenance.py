"""git_commit names the source that ran: from git in a checkout, stamped into a built wheel otherwise."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from shardmerge.provenance import git_commit, provenance_attrs

REPO = Path(__file__).resolve().parents[2]


def _head() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


pytestmark = pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout of shardmerge")


def test_checkout_reports_head():
    assert git_commit() == _head()
    attrs = provenance_attrs(n_inputs=3, input_bytes=10, command=["shardmerge", "ingest"])
    assert attrs["schema_version"] == "2.0" and attrs["git_commit"] == _head()
    assert attrs["command_line"] == "shardmerge ingest" and attrs["created_at"].endswith("Z")


def test_wheel_carries_the_commit(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("shardmerge-*.whl")
    with zipfile.ZipFile(wheel) as z:
        stamp = z.read("shardmerge/_build_info.py").decode()
    assert stamp.strip() == f'GIT_COMMIT = "{_head()}"'
