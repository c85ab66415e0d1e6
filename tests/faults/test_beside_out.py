"""Nothing of the user's beside OUT is touched: a folder, file or link at `OUT.tmp` or `OUT.lock`, a planted
publish intent, a --report or --scratch aimed at an input, at OUT or at each other. Each is refused with
its cause named, and the user's files are byte for byte what they were. And the merge's full disk, and an
interrupt between the two renames of the fallback publish, leave OUT whole with a named cause."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from shardmerge.publish import TMP_MARKER
from shardmerge.report import RunReport
from shardmerge.testing.spectra import make_image2d, make_wcs1d
from tests.faults.helpers import LAYOUT, kill_group, start_ingest, wait_for_failpoint
from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files


def snapshot(path: Path) -> tuple:
    """What the user has at `path`, down to bytes, modes and mtimes: a link as its target (never followed),
    a folder with everything under it (a folder's own mtime is left out: the checks made before any work
    create and remove a probe file in OUT's folder)."""
    if path.is_symlink():
        return ("link", os.readlink(path))
    if not path.exists():
        return ("absent",)
    st = path.stat()
    if path.is_file():
        return ("file", path.read_bytes(), st.st_mode, st.st_mtime_ns)
    return ("folder", st.st_mode, tuple((c.name, snapshot(c)) for c in sorted(path.iterdir())))


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    for i in range(3):
        make_wcs1d(folder / f"s{i}.fits", i=i, n_pix=200, seed=i)
    return folder


def _ingest(*args) -> object:
    return run_cli("ingest", *map(str, args), "--workers", "0")


# --- OUT.tmp ------------------------------------------------------------------------------------------------

def _plant_tmp(tmp_path: Path, kind: str) -> Path:
    tmp = tmp_path / "o.zarr.tmp"
    if kind == "folder":
        tmp.mkdir()
        (tmp / "thesis.tex").write_text("years of work")
    elif kind == "empty folder":
        tmp.mkdir()
    elif kind == "file":
        tmp.write_text("a user's notes")
    else:  # a link to a user's folder
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "data.txt").write_text("keep me")
        tmp.symlink_to(tmp_path / "mine")
    return tmp


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["folder", "empty folder", "file", "link"])
def test_a_users_out_tmp_is_refused_untouched(tmp_path, inputs, kind):
    tmp = _plant_tmp(tmp_path, kind)
    before, mine = snapshot(tmp), snapshot(tmp_path / "mine")
    r = _ingest(inputs, "-o", tmp_path / "o.zarr")
    assert r.exit_code == 5, r
    assert f"{tmp} exists and was not written by shardmerge" in r.output
    assert snapshot(tmp) == before and snapshot(tmp_path / "mine") == mine
    assert not (tmp_path / "o.zarr").exists()


@pytest.mark.timeout(60)
def test_a_run_failing_on_a_missing_input_deletes_nothing(tmp_path, inputs):
    tmp = _plant_tmp(tmp_path, "folder")
    before = snapshot(tmp)
    r = _ingest(tmp_path / "nope", "-o", tmp_path / "o.zarr")
    assert r.exit_code == 2 and "nope: no such file or folder" in r.output, r
    assert snapshot(tmp) == before
    assert not (tmp_path / "o.zarr.lock").exists()  # refused before the lock: nothing at all was done


@pytest.mark.timeout(120)
def test_a_crashed_merges_tmp_is_ours_from_its_first_moment_and_removed(tmp_path, inputs):
    """SIGKILL right after the merge writer made `.tmp` (its first shard copied): the rerun knows it as its
    own and removes it, and the published store holds no marker."""
    out = tmp_path / "o.zarr"
    proc = start_ingest(tmp_path, inputs, "-o", out, "--chunk-rows", "1", "--shard-rows", "1",
                        failpoints="merge-copied-shard=pause", workers=0)
    wait_for_failpoint(tmp_path, "merge-copied-shard", proc)
    kill_group(proc)
    assert (tmp_path / "o.zarr.tmp" / TMP_MARKER).is_file()
    r = run_cli_process("ingest", inputs, "-o", out, "--workers", "0", "--chunk-rows", "1", "--shard-rows", "1")
    assert r.exit_code == 0, r
    assert "removed" in r.output and "o.zarr.tmp" in r.output
    assert not (tmp_path / "o.zarr.tmp").exists() and not (out / TMP_MARKER).exists()
    assert run_cli("validate", out).exit_code == 0


# --- OUT.lock -----------------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["file", "link to a file", "dangling link", "folder"])
def test_a_foreign_lock_file_or_link_is_refused_untouched(tmp_path, inputs, kind):
    lock = tmp_path / "o.zarr.lock"
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    if kind == "file":
        lock.write_text("not a lock of shardmerge's\n")
    elif kind == "link to a file":
        lock.symlink_to(victim)
    elif kind == "dangling link":
        lock.symlink_to(tmp_path / "would-be-created")
    else:
        lock.mkdir()
    before, victim_before = snapshot(lock), snapshot(victim)
    r = _ingest(inputs, "-o", tmp_path / "o.zarr")
    assert r.exit_code == 5, r
    assert f"{lock} exists and is not a lock file written by shardmerge" in r.output
    assert snapshot(lock) == before and snapshot(victim) == victim_before
    assert not (tmp_path / "would-be-created").exists() and not (tmp_path / "o.zarr").exists()


# --- OUT.publish-intent -------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("names", ["a sibling as old", "old not 8 hex digits", "a sibling as new", "another out"])
def test_a_planted_publish_intent_moves_and_deletes_nothing(tmp_path, inputs, names):
    out = tmp_path / "o.zarr"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    odd = tmp_path / "o.zarr.old-notahex1"
    odd.mkdir()
    doc = {"out": str(out), "old": f"{out}.old-1234abcd", "new": f"{out}.tmp"}
    if names == "a sibling as old":
        doc["old"] = str(precious)
    elif names == "old not 8 hex digits":
        doc["old"] = str(odd)
    elif names == "a sibling as new":
        doc["new"] = str(precious)
    else:
        doc["out"] = str(precious)
    intent = tmp_path / "o.zarr.publish-intent"
    intent.write_text(json.dumps(doc))
    before = snapshot(tmp_path)
    r = _ingest(inputs, "-o", out)
    assert r.exit_code == 5, r
    assert f"{intent} names paths outside what a publish of {out} writes" in r.output
    assert "nothing was moved or deleted" in r.output
    assert snapshot(tmp_path) == before  # nothing moved, deleted or created (no lock left either)


@pytest.mark.timeout(60)
def test_a_publish_intent_that_is_a_link_is_not_followed(tmp_path, inputs):
    out = tmp_path / "o.zarr"
    (tmp_path / "elsewhere.json").write_text(json.dumps({"out": str(out), "old": str(tmp_path / "in"),
                                                         "new": f"{out}.tmp"}))
    (tmp_path / "o.zarr.publish-intent").symlink_to(tmp_path / "elsewhere.json")
    before = snapshot(tmp_path)
    r = _ingest(inputs, "-o", out)
    assert r.exit_code == 5, r
    assert "o.zarr.publish-intent is not an intent file written by shardmerge (a symbolic link)" in r.output
    assert snapshot(tmp_path) == before


# --- --report -----------------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["an input file", "a file in an input folder", "an @LIST file", "a listed file",
                                   "OUT", "inside OUT.tmp", "inside scratch", "a folder's name (trailing /)"])
def test_a_report_path_that_would_replace_an_input_or_land_beside_out_is_refused(tmp_path, inputs, where):
    out = tmp_path / "o.zarr"
    listing = tmp_path / "files.txt"
    listing.write_text("in/s0.fits\nin/s1.fits\n")
    given: list = [inputs]
    if where == "an input file":
        given, report = [inputs / "s0.fits", inputs / "s1.fits"], inputs / "s1.fits"
    elif where == "a file in an input folder":
        report = inputs / "s2.fits"
    elif where == "an @LIST file":
        given, report = [f"@{listing}"], listing
    elif where == "a listed file":
        given, report = [f"@{listing}"], inputs / "s0.fits"
    elif where == "OUT":
        report = out
    elif where == "inside OUT.tmp":
        report = tmp_path / "o.zarr.tmp" / "r.json"
    elif where.startswith("a folder"):
        report = f"{tmp_path / 'rr.json'}/"  # the run would publish, then fail to write it
    else:
        report = tmp_path / "scratch" / "r.json"
    before = snapshot(tmp_path)
    r = _ingest(*given, "-o", out, "--report", report)
    assert r.exit_code == 2, r
    assert f"--report {report}: " in r.output
    assert snapshot(tmp_path) == before  # no report, no store, no scratch, no lock: refused before any work


def test_the_report_is_written_atomically_and_never_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    report = tmp_path / "r.json"
    (tmp_path / "r.json.partial").symlink_to(victim)  # the temp name an earlier version used
    RunReport(status="published").write(str(report))
    assert json.loads(report.read_text())["status"] == "published"
    assert victim.read_text() == "the user's own file\n" and os.readlink(tmp_path / "r.json.partial") == str(victim)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.json.partial", "victim.txt"]
    assert oct(report.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    report.unlink()
    report.symlink_to(victim)  # a link at the report's own path is replaced, not followed
    RunReport(status="failed").write(str(report))
    assert not report.is_symlink() and victim.read_text() == "the user's own file\n"


def _umask() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))


# --- --scratch ----------------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["under a regular file", "OUT", "OUT.tmp", "inside OUT", "inside an input folder"])
def test_a_scratch_that_can_never_work_is_refused_before_any_work(tmp_path, inputs, where):
    out = tmp_path / "o.zarr"
    (tmp_path / "afile").write_text("a user's file")
    extra: list = []
    if where == "inside OUT":  # an existing store, to be replaced
        assert _ingest(inputs, "-o", out, "--scratch", tmp_path / "s").exit_code == 0
        extra = ["--overwrite"]
    scratch = {"under a regular file": tmp_path / "afile" / "sub", "OUT": out, "OUT.tmp": tmp_path / "o.zarr.tmp",
               "inside OUT": out / "scratch", "inside an input folder": inputs / "scratch"}[where]
    before = snapshot(tmp_path)
    r = _ingest(inputs, "-o", out, "--scratch", scratch, *extra)
    assert r.exit_code == 2, r
    assert f"scratch folder {scratch}: " in r.output and "Traceback" not in r.output
    assert snapshot(tmp_path) == before
    if where == "OUT":  # once refused, a rerun with a usable scratch is not blocked by a folder at OUT
        assert _ingest(inputs, "-o", out, "--scratch", tmp_path / "s").exit_code == 0


@pytest.mark.timeout(60)
def test_a_read_only_scratch_is_refused_before_any_work(tmp_path, inputs, tmpfs):
    scratch = tmpfs(1 << 20, ro=True)
    before = snapshot(tmp_path / "in")
    r = run_cli_process("ingest", inputs, "-o", tmp_path / "o.zarr", "--workers", "2", "--scratch", scratch)
    assert r.exit_code == 2, r
    assert f"scratch folder {scratch}: cannot write in {scratch} (Read-only file system)" in r.output
    assert "Traceback" not in r.output and "started a local Dask cluster" not in r.output
    assert snapshot(tmp_path / "in") == before and not (tmp_path / "o.zarr").exists()


# --- the merge's full disk ----------------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_a_full_out_disk_in_the_merge_is_exit_6_naming_outs_filesystem(tmp_path, tmpfs):
    """4 MiB holds the first shards' chunks, not the store: the disk fills mid-merge with the index writer
    open (its close on the full disk used to raise over the StorageError: a traceback, exit 1)."""
    big = tmp_path / "big"
    for i in range(3):
        make_image2d(big / f"plate{i}.fits", i=i, n_rows=128, n_pix=4000, seed=i)
    folder = tmpfs(4 << 20)
    (folder / "notes.txt").write_text("the user's own file beside OUT")
    before = snapshot(folder / "notes.txt")
    out = folder / "out.zarr"
    r = run_cli_process("ingest", big, "-o", out, "--workers", "0", *LAYOUT, "--scratch", tmp_path / "scratch")
    assert r.exit_code == 6, r
    error = [line for line in r.output.splitlines() if line.startswith("shardmerge: error:")]
    assert len(error) == 1 and f"{out}.tmp" in error[0] and "No space left on device" in error[0], r
    assert str(tmp_path / "scratch") not in error[0]  # the full disk is OUT's, not scratch
    assert "Traceback" not in r.output
    assert sorted(os.listdir(folder)) == ["notes.txt"] and snapshot(folder / "notes.txt") == before


# --- an interrupt between the two renames of the fallback publish -------------------------------------------

@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_between_the_two_renames_leaves_out_whole_at_once(tmp_path, inputs, sig):
    out = tmp_path / "o.zarr"
    scratch = tmp_path / "s"
    assert _ingest(inputs, "-o", out, "--scratch", scratch, "--clevel", "1").exit_code == 0
    old_bytes = chunk_files(out)
    proc = start_ingest(tmp_path, inputs, "-o", out, "--overwrite", "--scratch", scratch,
                        failpoints="renameat2=raise:EINVAL,publish-between-renames=pause", workers=0)
    try:
        wait_for_failpoint(tmp_path, "publish-between-renames", proc)
        assert not out.exists()  # the moment: OUT moved aside, the new store not yet in place
        os.kill(proc.pid, sig)
        output, _ = proc.communicate(timeout=60)
    except BaseException:
        kill_group(proc)
        raise
    assert proc.returncode == 130, output
    assert "interrupted between its two renames: undone (the old store is back) at once" in output
    assert chunk_files(out) == old_bytes  # the old store, whole, by the process that was interrupted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failpoints", "in", "o.zarr", "s"]
    assert run_cli("validate", out).exit_code == 0
