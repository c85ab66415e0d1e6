"""Crashes of the ingest process itself: kill -9 of its whole process group mid-shard, mid-merge, mid-gate and
between the two renames of the fallback publish. Nothing half-written is ever visible at OUT, and rerunning
the same command finishes the job, reusing finished shards, with the bytes of a clean run."""

from __future__ import annotations

import os

import pytest
import zarr

from tests.faults.helpers import (
    LAYOUT,
    kill_group,
    report_of,
    shard_stores,
    start_ingest,
    wait_for_failpoint,
    wait_until,
)
from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files


@pytest.mark.parametrize("point", ["shard-before-rename", "merge-copied-shard", "gate-start"])
def test_sigkill_mid_run_then_the_same_command_resumes(tmp_path, corpus, clean_store, point):
    out = tmp_path / "out.zarr"
    scratch = tmp_path / "scratch"
    # a worker killed mid-shard needs workers; past the shard phase the driver alone is killed and resumes
    workers = 2 if point == "shard-before-rename" else 0
    # the merge runs beside the shard tasks: it reaches its 9th shard once all nine are written
    when = "@9" if point == "merge-copied-shard" else ""
    proc = start_ingest(tmp_path, corpus, "-o", out, *LAYOUT, failpoints=f"{point}=pause{when}", workers=workers)
    wait_for_failpoint(tmp_path, point, proc)
    if point == "shard-before-rename":  # one worker is stuck in its shard; let the other finish one
        wait_until(lambda: len(shard_stores(scratch)) >= 1, proc, what="a finished shard")
    kill_group(proc)

    assert not out.exists()  # nothing half-written is visible
    if point != "shard-before-rename":
        assert (tmp_path / "out.zarr.tmp").is_dir()  # the crash really left a half-written store behind
    finished = len(shard_stores(scratch))
    assert finished >= 1

    rep = tmp_path / "report.json"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", str(workers), *LAYOUT, "--report", rep)
    assert r.exit_code == 0, r
    counts = report_of(rep)["counts"]
    assert counts["shards_total"] == 9
    assert counts["shards_reused"] == finished
    if point != "shard-before-rename":
        assert counts["shards_reused"] == 9
    assert chunk_files(out) == chunk_files(clean_store)
    assert run_cli("validate", out).exit_code == 0
    assert sorted(os.listdir(tmp_path)) == ["failpoints", "out.zarr", "report.json", "scratch"], os.listdir(tmp_path)
    assert os.listdir(scratch) == []  # shards are removed once the publish succeeded


def test_crash_between_the_two_renames_of_the_fallback_is_undone(tmp_path, corpus, clean_store):
    """No RENAME_EXCHANGE (NFS, Lustre answer EINVAL), and a crash right after OUT was moved aside:
    OUT is briefly absent, but the intent file lets the next run put the old store back first."""
    out = tmp_path / "out.zarr"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--clevel", "1")
    assert r.exit_code == 0, r
    old_bytes = chunk_files(out)

    proc = start_ingest(tmp_path, corpus, "-o", out, *LAYOUT, "--overwrite",
                        failpoints="renameat2=raise:EINVAL,publish-between-renames=pause", workers=0)
    wait_for_failpoint(tmp_path, "publish-between-renames", proc)
    kill_group(proc)
    assert not out.exists()
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("out.zarr.old-")]
    assert len(moved) == 1 and chunk_files(moved[0]) == old_bytes
    assert (tmp_path / "out.zarr.publish-intent").exists()

    # a run that does not get past the checks still restores the old store first
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT)
    assert r.exit_code == 5 and "exists; pass --overwrite" in r.output, r
    assert "interrupted publish" in r.output and "undone" in r.output
    assert chunk_files(out) == old_bytes
    assert not moved[0].exists() and not (tmp_path / "out.zarr.publish-intent").exists()

    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--overwrite")
    assert r.exit_code == 0, r
    assert chunk_files(out) == chunk_files(clean_store)


def test_fallback_publish_without_rename_exchange(tmp_path, corpus, monkeypatch):
    """Where renameat2 answers EINVAL the two-step rename is used, and the old store is only deleted once
    the new one is in place."""
    out = tmp_path / "out.zarr"
    args = [corpus, "-o", out, "--workers", "0", *LAYOUT]
    assert run_cli("ingest", *args, "--clevel", "1").exit_code == 0
    monkeypatch.setenv("SHARDMERGE_FAILPOINTS", "renameat2=raise:EINVAL")
    monkeypatch.setenv("SHARDMERGE_FAILPOINT_DIR", str(tmp_path))
    rep = tmp_path / "r.json"
    r = run_cli("ingest", *args, "--overwrite", "--report", rep)
    assert r.exit_code == 0, r
    assert report_of(rep)["publish_method"] == "two-step"
    assert zarr.open_group(out, mode="r")["signal/flux_raw"].compressors[0].clevel == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr", "r.json", "renameat2.hit", "scratch"]


def test_interrupted_swap_whose_new_store_is_in_place_is_finished(tmp_path):
    """The crash hit after the second rename: the next run only deletes the old store and the intent."""
    import json

    from shardmerge.publish import intent_path, recover_publish

    out, old = tmp_path / "o.zarr", tmp_path / "o.zarr.old-1234abcd"
    out.mkdir()
    old.mkdir()
    (old / "chunk").write_text("old")
    intent = intent_path(str(out))
    with open(intent, "w") as f:
        json.dump({"out": str(out), "old": str(old), "new": f"{out}.tmp"}, f)
    assert recover_publish(str(out)) == "finished"
    assert out.is_dir() and not old.exists() and not os.path.exists(intent)
    assert recover_publish(str(out)) is None


def test_intent_naming_folders_elsewhere_is_refused(tmp_path):
    import json

    from shardmerge.errors import TargetError
    from shardmerge.publish import intent_path, recover_publish

    victim = tmp_path / "elsewhere" / "data"
    victim.mkdir(parents=True)
    out = tmp_path / "o.zarr"
    with open(intent_path(str(out)), "w") as f:
        json.dump({"out": str(out), "old": str(victim), "new": str(victim)}, f)
    with pytest.raises(TargetError, match="outside"):
        recover_publish(str(out))
    assert victim.is_dir()
