"""Damage between the merge and the gate, leftovers of a crashed run, and inputs that changed before a
resume."""

from __future__ import annotations

import os
import shutil

import pytest

from shardmerge import pipeline
from shardmerge.stages import finish
from shardmerge.testing.spectra import make_image2d, make_mixed_corpus, make_wcs1d
from tests.faults.helpers import (
    LAYOUT,
    failpoint_dir,
    kill_group,
    report_of,
    shard_stores,
    start_ingest,
    wait_for_failpoint,
    wait_until,
)
from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files


@pytest.mark.parametrize(("array", "damage"), [
    ("signal/flux_raw", "delete"),
    ("signal/uncertainty_raw", "truncate"),
    ("continuum/continuum_model", "flip"),
    ("signal/flux_raw", "flip-keep-mtime"),  # a hard-linked chunk: the gate's stat proof must see this write
])
def test_chunk_damaged_before_the_gate_fails_it_naming_the_chunk(tmp_path, corpus, monkeypatch, array, damage):
    out = tmp_path / "out.zarr"
    chunk = os.path.join(*array.split("/"), "c", "1", "0")
    real = finish.failpoint

    def damage_then_continue(name):
        if name == "gate-start":
            path = tmp_path / "out.zarr.tmp" / chunk
            if damage == "delete":
                path.unlink()
            elif damage == "truncate":
                path.write_bytes(path.read_bytes()[:-10])
            else:
                before = path.stat()
                raw = bytearray(path.read_bytes())
                raw[len(raw) // 2] ^= 0x01
                path.write_bytes(bytes(raw))
                if damage == "flip-keep-mtime":
                    assert before.st_nlink == 2  # linked from its shard, not copied
                    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        real(name)

    monkeypatch.setattr(finish, "failpoint", damage_then_continue)
    r = run_cli("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT)
    assert r.exit_code == 4, r
    assert f"11 every file is what the merge wrote: {chunk}" in r.output
    if damage == "delete":
        assert f"10 every chunk exists: {array}: chunk(s) (1, 0) missing" in r.output
    assert not out.exists() and not os.path.exists(f"{out}.tmp")


def test_shard_chunk_damaged_in_scratch_is_caught_by_the_merge_and_recomputed(tmp_path, corpus, clean_store):
    """A chunk file altered in scratch after its shard was written (bit rot, a stray process): the merge
    compares it with the manifest's checksum, removes that shard, and the rerun recomputes just it."""
    out = tmp_path / "out.zarr"
    # the merge of the 9th shard (the merge runs beside the shard tasks): every shard is written by then
    proc = start_ingest(tmp_path, corpus, "-o", out, *LAYOUT, failpoints="merge-copied-shard=pause@9", workers=0)
    wait_for_failpoint(tmp_path, "merge-copied-shard", proc)
    kill_group(proc)
    victim = shard_stores(tmp_path / "scratch")[4]
    chunk = victim / "flux_raw" / "c" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[-1] ^= 0xFF
    chunk.write_bytes(bytes(raw))

    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT)
    assert r.exit_code == 1, r
    assert f"{victim}: chunk flux_raw/c/0/0 does not match its manifest checksum" in r.output
    assert not victim.exists() and not out.exists()
    rep = tmp_path / "r.json"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--report", rep)
    assert r.exit_code == 0, r
    assert report_of(rep)["counts"]["shards_reused"] == 8
    assert chunk_files(out) == chunk_files(clean_store)


def test_leftovers_of_a_crashed_run_are_swept_and_never_published(tmp_path, corpus):
    out = tmp_path / "out.zarr"
    stale_tmp = tmp_path / "out.zarr.tmp"
    stale_tmp.mkdir()
    (stale_tmp / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", '
                                         '"attributes": {"ingest_pipeline": "shardmerge 0.1"}}')
    (stale_tmp / "from-the-crash").write_text("half-written")
    scratch = pipeline.scratch_dir(None, str(out))
    partial = os.path.join(scratch, "shard-000000-0123456789abcdef.zarr.abc.partial")
    os.makedirs(os.path.join(partial, "flux_raw"))
    stale_shard = os.path.join(scratch, "shard-000001-fedcba9876543210.zarr")
    os.makedirs(stale_shard)
    outside = tmp_path / "keep-me"
    outside.mkdir()
    os.symlink(outside, os.path.join(partial, "link-out"))  # cleanup must not follow it

    r = run_cli("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--keep-scratch")
    assert r.exit_code == 0, r
    assert "removed" in r.output and "out.zarr.tmp left by an earlier run" in r.output
    assert not stale_tmp.exists() and not (out / "from-the-crash").exists()
    assert not os.path.exists(partial) and not os.path.exists(stale_shard)
    assert outside.is_dir()
    assert len(shard_stores(tmp_path / "scratch")) == 9
    assert oct(os.stat(scratch).st_mode & 0o777) == "0o700"


def test_scratch_planted_by_another_user_or_as_a_symlink_is_refused(tmp_path, corpus):
    target = tmp_path / "elsewhere"
    target.mkdir()
    root = tmp_path / "scratch"
    root.symlink_to(target)
    r = run_cli("ingest", corpus, "-o", tmp_path / "out.zarr", "--workers", "0")
    assert r.exit_code == 2 and "is a symlink or belongs to another user" in r.output, r
    assert os.listdir(target) == []  # nothing was written through the link


def _crash_at_gate(tmp_path, corpus, out):
    """A crash after every shard is written (in-process: the resume logic is what these tests are about)."""
    proc = start_ingest(tmp_path, corpus, "-o", out, *LAYOUT, failpoints="gate-start=pause", workers=0)
    wait_for_failpoint(tmp_path, "gate-start", proc)
    kill_group(proc)
    (tmp_path / "failpoints" / "gate-start.hit").unlink()


@pytest.mark.parametrize("change", ["edit", "append", "remove"])
def test_inputs_changed_before_a_resume(tmp_path, change):
    """Only shards that read a changed file (or whose rows moved) are recomputed; the result equals a clean
    run on the changed inputs."""
    corpus = tmp_path / "corpus"
    make_mixed_corpus(corpus, n_wcs1d=10, n_image2d=3, rows_per_image=40, n_sdss=6)
    out = tmp_path / "out.zarr"
    _crash_at_gate(tmp_path, corpus, out)
    files = sorted(p for p in corpus.rglob("*.fits*"))
    if change == "edit":
        assert files[0].name == "plate_000.fits"  # 40 rows: rows 0..39, shards 0-2
        make_image2d(files[0], i=100, n_rows=40, n_pix=4000, seed=555)  # same shape, other values
        expect_reused = 6
    elif change == "append":
        make_wcs1d(files[-1].parent / "zzz_last.fits", i=99, n_pix=3000, seed=99)
        expect_reused = 8  # the last shard (rows 128..135) now has 9 rows
    else:
        files[-1].unlink()  # the last file: only the last shard changes
        expect_reused = 8
    rep = tmp_path / "r.json"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--report", rep)
    assert r.exit_code == 0, r
    counts = report_of(rep)["counts"]
    assert counts["shards_reused"] == expect_reused, counts

    clean = tmp_path / "clean.zarr"
    r = run_cli_process("ingest", corpus, "-o", clean, "--workers", "0", *LAYOUT)
    assert r.exit_code == 0, r
    assert chunk_files(out) == chunk_files(clean)


def test_restart_discards_reusable_shards(tmp_path, corpus):
    out = tmp_path / "out.zarr"
    _crash_at_gate(tmp_path, corpus, out)
    rep = tmp_path / "r.json"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--restart", "--report", rep)
    assert r.exit_code == 0, r
    assert report_of(rep)["counts"]["shards_reused"] == 0
    shutil.rmtree(out)


def test_shards_are_merged_while_later_shards_are_still_being_written(tmp_path, corpus, clean_store):
    """The merge runs beside the shard tasks: with the last (9th) shard task held at its start, the first
    eight shards are already in the .tmp store, and the ninth is not; let go, the run publishes the bytes
    of a clean run."""
    out = tmp_path / "out.zarr"
    flux = tmp_path / "out.zarr.tmp" / "signal" / "flux_raw" / "c"
    proc = start_ingest(tmp_path, corpus, "-o", out, *LAYOUT, failpoints="shard-start=wait@9", workers=0)
    try:
        wait_for_failpoint(tmp_path, "shard-start", proc)
        wait_until(lambda: all((flux / str(r) / "0").exists() for r in range(8)), proc, what="8 shards merged")
        # the chunk, not its folder: the merge makes every chunk folder up front
        assert not (flux / "8" / "0").exists() and not out.exists()
    except BaseException:
        kill_group(proc)
        raise
    (failpoint_dir(tmp_path) / "shard-start.go").touch()
    assert proc.wait(timeout=120) == 0, proc.stdout.read()
    assert chunk_files(out) == chunk_files(clean_store)


@pytest.mark.parametrize(("fault", "says"), [("ENOSPC", "No space left on device"),
                                             ("EIO", "the disk or filesystem failed: check it")])
def test_a_merge_that_fails_while_shards_are_written_stops_the_run_and_leaves_nothing(tmp_path, corpus,
                                                                                        clean_store, fault, says):
    """The .tmp store's disk fills, or fails, while the merge copies the 2nd shard, shards still being
    written: exit 6 naming the disk error (no traceback), the .tmp store removed, the shards written kept,
    and the rerun publishes."""
    out, rep = tmp_path / "out.zarr", tmp_path / "r.json"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--report", rep,
                        env={"SHARDMERGE_FAILPOINTS": f"merge-copied-shard=raise:{fault}@2",
                             "SHARDMERGE_FAILPOINT_DIR": str(failpoint_dir(tmp_path))})
    assert r.exit_code == 6, r
    assert says in r.output and "Traceback" not in r.output
    assert not out.exists() and not (tmp_path / "out.zarr.tmp").exists()
    assert report_of(rep)["status"] == "failed"
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--report", rep)
    assert r.exit_code == 0, r
    assert report_of(rep)["counts"]["shards_reused"] >= 2
    assert chunk_files(out) == chunk_files(clean_store)
