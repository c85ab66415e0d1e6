"""The fault matrix's fixtures: a corpus of several shards, a clean reference store built from it, and small
tmpfs mounts for full and read-only disks. Helpers tests import are in helpers.py."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from shardmerge.testing.spectra import make_mixed_corpus
from tests.faults.helpers import LAYOUT
from tests.helpers import run_cli_process


@pytest.fixture(scope="session")  # read only, by every fault module: made once
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "corpus"
    make_mixed_corpus(root, n_wcs1d=10, n_image2d=3, rows_per_image=40, n_sdss=6)
    return root


@pytest.fixture(scope="session")
def clean_store(corpus, tmp_path_factory) -> Path:
    """The store a clean run of LAYOUT writes from `corpus` (chunk bytes include source paths: same corpus)."""
    base = tmp_path_factory.mktemp("clean")
    out = base / "clean.zarr"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "2", *LAYOUT,
                        env={"SHARDMERGE_SCRATCH": str(base / "scratch")})
    assert r.exit_code == 0, r
    return out


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
