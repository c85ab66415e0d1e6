"""Stores written by an earlier release stay valid: tests/data/previous-release.zarr.tar.gz was written by
shardmerge at commit 94620d1 (before the schema table, the new layouts and gate check 12) from three
synthetic files; today's `validate` and `inspect` must accept it as it is."""

from __future__ import annotations

import tarfile
from pathlib import Path

import zarr

from tests.helpers import run_cli

ARCHIVE = Path(__file__).resolve().parents[1] / "data" / "previous-release.zarr.tar.gz"


def test_a_store_of_the_previous_release_passes_validate(tmp_path):
    with tarfile.open(ARCHIVE) as t:
        t.extractall(tmp_path, filter="data")
    store = tmp_path / "previous-release.zarr"
    assert zarr.open_group(store, mode="r").attrs["git_commit"] == "94620d1"
    r = run_cli("validate", store)
    assert r.exit_code == 0 and "17/18 checks passed, 1 skipped" in r.output, r.output
    assert run_cli("inspect", store).exit_code == 0
