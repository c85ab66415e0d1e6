"""A gzip'd multi-spectrum file split between shards is inflated once per run, whatever the number of shards
holding its rows (issue 28, issue 24): the first shard task inflates it to scratch, the others read that
copy. Counted by the run report's bytes.inflated (every GzipSource's inflated bytes, summed over the shard
tasks' manifests), never by timing. The store is the plain file's, the CHECKSUM/DATASUM verdict is the
plain file's, a file changed between runs is inflated anew, and a copy that would not fit on scratch is not
made (the tasks stream, as before, and the log says so)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from shardmerge.readers import inflate
from tests.helpers import run_cli
from tests.storecmp import chunk_files

ROWS, N_PIX = 768, 512
SHARDING = ("--shard-rows", "256", "--chunk-rows", "128")  # 3 shards hold the image's rows


def _image(path: Path, seed: int, damage: bool = False) -> Path:
    """A 2-D multi-spectrum image (ROWS spectra x N_PIX, linear WCS) with CHECKSUM/DATASUM; `damage`: one
    data byte changed after the sums were written."""
    rng = np.random.default_rng(seed)
    hdu = fits.PrimaryHDU(rng.normal(10, 1, (ROWS, N_PIX)).astype(">f4"))
    hdu.header.update({"CRVAL1": 4000.0, "CDELT1": 1.0, "CRPIX1": 1.0, "CTYPE1": "WAVE", "CUNIT1": "Angstrom",
                       "BUNIT": "erg/s/cm2/Angstrom"})
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, checksum=True, overwrite=True)
    if damage:
        with open(path, "r+b") as f:
            f.seek(2880 * 3 + 1000)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x10]))
    return path


def _ingest(src: Path, out: Path, scratch: Path, scheduler: str | None, *extra: str) -> dict:
    report = out.with_suffix(".report.json")
    where = ("--scheduler", scheduler) if scheduler else ("--workers", "0")
    r = run_cli("ingest", src, "-o", out, "--scratch", scratch, *where, *SHARDING, "--report", report, *extra)
    assert r.exit_code == 0, r
    return {**json.loads(report.read_text()), "cli_output": r.output}


def _same_store(a: Path, b: Path) -> None:
    fa, fb = chunk_files(a), chunk_files(b)
    assert sorted(fa) == sorted(fb)
    differ = [k for k in fa if fa[k] != fb[k]]
    assert not differ, differ


def _plain_then_gzipped(src: Path, seed: int, out: Path, scratch: Path, scheduler: str | None) -> bytes:
    """Ingest `src` (one file, the store's source_path) plain into `out`, then gzip it in place; its bytes."""
    _image(src, seed)
    data = src.read_bytes()
    _ingest(src.parent, out, scratch, scheduler)
    src.write_bytes(gzip.compress(data, compresslevel=1))
    return data


@pytest.mark.timeout(240)
def test_a_gzip_image_in_three_shards_is_inflated_once_and_stores_as_the_plain_file(tmp_path, dask_scheduler):
    src, scratch = tmp_path / "data" / "img.fits", tmp_path / "s"
    data = _plain_then_gzipped(src, 1, tmp_path / "plain.zarr", scratch, dask_scheduler)
    report = _ingest(src.parent, tmp_path / "gz.zarr", scratch, dask_scheduler, "--keep-scratch")
    assert report["counts"]["shards_total"] >= 3
    # once: the copy's bytes, inflated by one task. Streamed, each of the 3 tasks inflated the file in its
    # structure pass and again up to its rows' end: more than 4x
    assert report["bytes"]["inflated"] == len(data), (report["bytes"], len(data))
    _same_store(tmp_path / "plain.zarr", tmp_path / "gz.zarr")
    copies = list(scratch.rglob(f"{inflate.INFLATED_DIR}/*.fits"))
    assert len(copies) == 1 and copies[0].read_bytes() == data

    # the same file changed between runs (same name, other values): inflated anew, the old copy gone
    data = _plain_then_gzipped(src, 2, tmp_path / "plain2.zarr", scratch, dask_scheduler)
    report = _ingest(src.parent, tmp_path / "gz.zarr", scratch, dask_scheduler, "--keep-scratch", "--overwrite")
    assert report["bytes"]["inflated"] == len(data), report["bytes"]
    _same_store(tmp_path / "plain2.zarr", tmp_path / "gz.zarr")
    copies = list(scratch.rglob(f"{inflate.INFLATED_DIR}/*.fits"))
    assert len(copies) == 1 and copies[0].read_bytes() == data

    # unchanged, rerun: its shards are reused, nothing is inflated
    report = _ingest(src.parent, tmp_path / "gz.zarr", scratch, dask_scheduler, "--overwrite")
    assert report["bytes"]["inflated"] == 0 and report["counts"]["shards_reused"] >= 3, report


@pytest.mark.timeout(240)
def test_the_checksum_verdict_of_a_split_gzip_file_is_the_plain_files(tmp_path, dask_scheduler):
    """A DATASUM that does not match: the gzip'd file split over 3 shards, read through its inflated copy, is
    refused for the same reason as the plain file."""
    src = _image(tmp_path / "data" / "img.fits", seed=3, damage=True)
    verdicts = []
    for _ in ("plain", "gzip'd"):
        r = run_cli("ingest", src.parent, "-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s",
                    "--scheduler", dask_scheduler, *SHARDING)
        assert r.exit_code != 0 and "DATASUM" in r.output, r
        verdicts.append((r.exit_code, r.output[r.output.index("shardmerge: error"):]))
        src.write_bytes(gzip.compress(src.read_bytes()))
    assert verdicts[0] == verdicts[1]


@pytest.mark.timeout(240)
def test_a_copy_that_would_not_fit_on_scratch_is_not_made(tmp_path, monkeypatch):
    """Scratch that cannot hold the inflated file beside its reserve: each task streams the file, as before
    (more inflated than the file), the log says so, and the store is the same."""
    src = tmp_path / "data" / "img.fits"
    data = _plain_then_gzipped(src, 4, tmp_path / "plain.zarr", tmp_path / "s", None)
    monkeypatch.setattr(inflate, "SCRATCH_RESERVE_BYTES", 1 << 62)  # inline: the tasks run in this process
    report = _ingest(src.parent, tmp_path / "gz.zarr", tmp_path / "s", None, "--keep-scratch")
    assert report["bytes"]["inflated"] > 2 * len(data), report["bytes"]
    assert "read as a stream" in report["cli_output"] and "leave less than" in report["cli_output"], report
    assert not list((tmp_path / "s").rglob(f"{inflate.INFLATED_DIR}/*.fits"))
    assert not list((tmp_path / "s").rglob(f"{inflate.INFLATED_DIR}/*.partial"))
    _same_store(tmp_path / "plain.zarr", tmp_path / "gz.zarr")


@pytest.mark.timeout(240)
def test_node_local_scratch_holds_the_copy_where_the_workers_read_it(tmp_path, dask_scheduler):
    """--scratch-kind node-local: the copy is made on the node scratch of the worker that first needs it (its
    own disk, `shardstore.node_scratch`), where the node's other tasks read it; it goes with that scratch.
    The session's two workers share one node, so one copy serves all three shards."""
    src, scratch = tmp_path / "data" / "img.fits", tmp_path / "s"
    data = _plain_then_gzipped(src, 5, tmp_path / "plain.zarr", scratch, dask_scheduler)
    report = _ingest(src.parent, tmp_path / "gz.zarr", scratch, dask_scheduler, "--scratch-kind", "node-local")
    assert report["scratch_kind"] == "node-local" and report["counts"]["shards_total"] >= 3
    assert report["bytes"]["inflated"] == len(data), report["bytes"]
    _same_store(tmp_path / "plain.zarr", tmp_path / "gz.zarr")
    assert not list(scratch.rglob(f"{inflate.INFLATED_DIR}/*.fits"))  # never on the driver's scratch


@pytest.mark.timeout(60)
def test_tasks_opening_one_gzip_file_at_once_inflate_it_once(tmp_path):
    """Eight threads (Dask worker threads: each a task with its own `inflating_once`) open the same gzip'd
    file together: one inflates it, the others wait on its lock and read the copy; every one sees the
    file's bytes, and a fresh stat identity (the file rewritten) makes a new copy, the old one swept."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    src = _image(tmp_path / "img.fits", seed=6)
    data = src.read_bytes()
    src.write_bytes(gzip.compress(data, compresslevel=1))
    scratch = tmp_path / "s"
    scratch.mkdir()
    start = Barrier(8)

    def task(_: int) -> tuple[bytes, inflate.Inflations]:
        start.wait()
        return _one_task(scratch, src)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(task, range(8)))
    assert all(got == data for got, _ in results)
    counts = [c for _, c in results]
    assert sum(c.inflated_bytes for c in counts) == len(data)
    assert sum(c.copies_made for c in counts) == 1 and sum(c.copies_read for c in counts) == 7
    first = list((scratch / inflate.INFLATED_DIR).glob("*.fits"))
    assert len(first) == 1

    src.write_bytes(gzip.compress(data, compresslevel=9))  # a new inode and ctime: another identity
    got, counted = _one_task(scratch, src)
    assert got == data and counted.copies_made == 1
    assert [p.name for p in (scratch / inflate.INFLATED_DIR).glob("*.fits")] != [first[0].name]
    assert len(list((scratch / inflate.INFLATED_DIR).glob("*.fits"))) == 1


def _one_task(scratch: Path, src: Path) -> tuple[bytes, inflate.Inflations]:
    with inflate.inflating_once(str(scratch)) as counted:
        source = inflate.open_gzip(str(src), record=True)
        try:
            return source.read(0, source.size), counted
        finally:
            source.close()
