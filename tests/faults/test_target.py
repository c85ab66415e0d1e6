"""Target faults: OUT is always the old complete store or the new complete one; bad input is named, never
ingested; a second writer is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import zarr

from shardmerge.errors import BadFileError
from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli, run_cli_process


def _inputs(d, n=3, n_pix=200, seed=0):
    return [make_wcs1d(d / f"s{i}.fits", i=i, n_pix=n_pix, seed=seed + i) for i in range(n)]


def test_existing_target_needs_overwrite(tmp_path, dask_scheduler):
    _inputs(tmp_path / "in")
    out = tmp_path / "o.zarr"
    assert run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler).exit_code == 0
    created = zarr.open_group(out, mode="r").attrs["created_at"]
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 5 and "exists; pass --overwrite" in r.output
    assert zarr.open_group(out, mode="r").attrs["created_at"] == created

    make_wcs1d(tmp_path / "in" / "s9.fits", i=9, n_pix=200, seed=9)
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler, "--overwrite")
    assert r.exit_code == 0, r
    assert zarr.open_group(out, mode="r")["signal/flux_raw"].shape == (4, 200)
    assert sorted(os.listdir(tmp_path)) == ["in", "o.zarr", "scratch"]  # the old store is gone, no leftovers


def test_the_same_command_run_again_keeps_the_report_of_the_store_it_refused_to_replace(tmp_path, dask_scheduler):
    """Run again without --overwrite, the ingest is refused (exit 5) before any work: the report of the store
    at OUT is kept, not replaced by the refused run's. A report of anything else there is replaced."""
    import json

    _inputs(tmp_path / "in")
    out, report = tmp_path / "o.zarr", tmp_path / "r.json"
    args = ("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler, "--report", report)
    assert run_cli(*args).exit_code == 0
    published = report.read_text()
    r = run_cli(*args)
    assert r.exit_code == 5 and "exists; pass --overwrite" in r.output
    assert f"kept {report}: it is the report of the store at {out}" in r.output
    assert report.read_text() == published
    other = tmp_path / "other.json"  # the report of another run: this run's refusal replaces it
    other.write_text(json.dumps({**json.loads(published), "output": str(tmp_path / "elsewhere.zarr")}))
    assert run_cli(*args[:-1], other).exit_code == 5
    written = json.loads(other.read_text())
    assert written["status"] == "failed" and "exists; pass --overwrite" in written["error"]


def test_overwrite_keeps_old_store_when_new_one_fails(tmp_path, dask_scheduler):
    from shardmerge.testing.spectra import make_image2d

    _inputs(tmp_path / "in")
    out = tmp_path / "o.zarr"
    assert run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler).exit_code == 0
    make_image2d(tmp_path / "in" / "zz.fits", n_rows=3, n_pix=200, bad_rows={1: "zero"})
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler, "--overwrite")
    assert r.exit_code == 4
    assert zarr.open_group(out, mode="r")["signal/flux_raw"].shape == (3, 200)
    assert run_cli("validate", out).exit_code == 0 and not os.path.exists(f"{out}.tmp")


def test_overwrite_never_replaces_a_folder_shardmerge_did_not_write(tmp_path, dask_scheduler):
    _inputs(tmp_path / "in")
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    r = run_cli("ingest", tmp_path / "in", "-o", precious, "--scheduler", dask_scheduler, "--overwrite")
    assert r.exit_code == 5 and "is not a store written by shardmerge" in r.output
    assert os.listdir(precious) == ["chapter1.tex"]


def test_second_concurrent_writer_fails_naming_the_holder(tmp_path, dask_scheduler):
    _inputs(tmp_path / "in")
    out = tmp_path / "o.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from shardmerge.publish import TargetLock; "
         f"l = TargetLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler)
        assert time.monotonic() - t0 < 10  # at once, not after a wait
        assert r.exit_code == 5
        assert f"pid {holder.pid}" in r.output and "another shardmerge ingest" in r.output
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's lock: the next run goes through
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r


def test_bad_files_fail_by_default_and_are_listed_with_skip(tmp_path, dask_scheduler):
    good = _inputs(tmp_path / "in")
    (tmp_path / "in" / "notfits.fits").write_text("SIMPLE = maybe\n")
    trunc = tmp_path / "in" / "trunc.fits"
    raw = good[0].read_bytes()
    trunc.write_bytes(raw[: len(raw) // 2])
    out = tmp_path / "o.zarr"
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 3, r
    assert "2 input file(s) could not be read" in r.output
    assert "notfits.fits: not a readable FITS file" in r.output and "trunc.fits" in r.output
    assert not out.exists() and not os.path.exists(f"{out}.tmp")

    rep = tmp_path / "rep.json"
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler, "--on-bad-file", "skip",
                "--report", rep)
    assert r.exit_code == 0, r
    assert zarr.open_group(out, mode="r")["signal/flux_raw"].shape == (3, 200)
    skipped = json.loads(rep.read_text())["skipped_files"]
    assert sorted(os.path.basename(s["path"]) for s in skipped) == ["notfits.fits", "trunc.fits"]
    assert all(s["reason"] for s in skipped)


def test_unknown_format_and_wrong_format_flag(tmp_path, dask_scheduler):
    _inputs(tmp_path / "in")
    r = run_cli("ingest", tmp_path / "in", "-o", tmp_path / "o.zarr", "--scheduler", dask_scheduler,
                "--format", "sdss-coadd")
    assert r.exit_code == 3 and "does not have the layout of --format sdss-coadd" in r.output


def test_leftover_tmp_is_swept_and_never_published(tmp_path, dask_scheduler):
    from shardmerge.publish import claim_tmp

    _inputs(tmp_path / "in")
    out = tmp_path / "o.zarr"
    stale = tmp_path / "o.zarr.tmp"
    claim_tmp(str(stale))  # what the merge writer makes first: a crashed run's .tmp is known as ours
    (stale / "junk").write_text("half-written by a crashed run")
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    assert not stale.exists() and not (out / "junk").exists()


def test_missing_input_and_missing_output_folder(tmp_path):
    r = run_cli_process("ingest", tmp_path / "nope", "-o", tmp_path / "o.zarr", "--workers", "0")
    assert r.exit_code == 2 and "nope: no such file or folder" in r.output
    _inputs(tmp_path / "in")
    r = run_cli_process("ingest", tmp_path / "in", "-o", tmp_path / "no" / "dir" / "o.zarr", "--workers", "0")
    assert r.exit_code == 5 and "does not exist" in r.output


def test_bad_datasum_is_named_and_can_be_skipped(tmp_path, dask_scheduler):
    """A flipped byte in a data unit: the scan (on a worker) verifies DATASUM and names the file."""
    from astropy.io import fits

    files = _inputs(tmp_path / "in")
    with fits.open(files[1]) as h:
        start = h.fileinfo(0)["datLoc"]
    raw = bytearray(files[1].read_bytes())
    raw[start + 100] ^= 0x55
    files[1].write_bytes(bytes(raw))
    out = tmp_path / "o.zarr"
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 3, r
    assert f"{files[1]}: HDU 0: DATASUM mismatch" in r.output
    assert not out.exists() and not os.path.exists(f"{out}.tmp")
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler, "--on-bad-file", "skip")
    assert r.exit_code == 0 and zarr.open_group(out, mode="r")["signal/flux_raw"].shape == (2, 200)


def test_shard_task_error_crosses_dask_naming_the_file(tmp_path, dask_scheduler):
    """A file changed between scan and shard: the shard task refuses it on the worker, and the error that
    comes back through Dask is the same class with the same message."""
    import pytest
    from distributed import Client

    from shardmerge.headers import load_header_rules
    from shardmerge.plan import make_plan
    from shardmerge.scan import scan_file
    from shardmerge.shard import write_shard
    from shardmerge.shardstore import write_file_table

    files = _inputs(tmp_path / "in")
    rules = load_header_rules()
    plan = make_plan([scan_file(str(f), None, rules) for f in files])
    os.utime(files[2], ns=(1, 1))
    (tmp_path / "scratch").mkdir()
    context = plan.context(write_file_table(plan, str(tmp_path)))
    with Client(dask_scheduler) as client:
        fut = client.submit(write_shard, plan.shards[0], context, str(tmp_path / "scratch"), rules)
        with pytest.raises(BadFileError, match=r"s2\.fits: changed after the scan"):
            fut.result()
    assert not list((tmp_path / "scratch").glob("*"))  # the attempt removed its partial


def test_zarr_format_2_store(tmp_path, dask_scheduler):
    from tests.integration.independent import assert_store_matches_sources

    _inputs(tmp_path / "in", n=4)
    out = tmp_path / "v2.zarr"
    for extra in ([], ["--overwrite"]):
        r = run_cli("ingest", tmp_path / "in", "-o", out, "--scheduler", dask_scheduler, "--zarr-format", "2",
                    "--chunk-rows", "2", *extra)
        assert r.exit_code == 0, r
    assert (out / ".zattrs").exists() and zarr.open_group(out, mode="r").metadata.zarr_format == 2
    assert "mask_raw" not in zarr.open_group(out, mode="r")["signal"]  # no input has a mask: no mask array
    assert run_cli("validate", out).exit_code == 0
    assert_store_matches_sources(out)
