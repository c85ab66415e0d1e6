"""`shardmerge validate` on hostile stores: every chunk of every array decoded, links leaving the store refused
and never followed, consolidated metadata checked against the arrays, and shapes the chunk files cannot hold
refused before anything is allocated. Each store is a small real one, copied and then damaged by the test."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from numcodecs import Blosc

from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli, run_cli_process

LINKS = "FAIL 13 no link leaves the store, only files and folders: "
SHAPES = "FAIL 14 shapes and chunks fit the chunk files present: "
CONSOLIDATED = "FAIL 15 consolidated metadata agrees with the arrays: "
DECODES = "FAIL 16 every chunk decodes to its shape: "
NOT_RUN = "check(s) not run: "


@pytest.fixture(scope="module", params=[3, 2], ids=["zarr3", "zarr2"])
def store(request, tmp_path_factory, dask_scheduler):
    d = tmp_path_factory.mktemp(f"hostile-v{request.param}")
    for i in range(5):
        make_wcs1d(d / "in" / f"s{i}.fits", i=i, n_pix=256, seed=i)
    out = d / "good.zarr"
    r = run_cli("ingest", d / "in", "-o", out, "--scheduler", dask_scheduler, "--chunk-rows", "2",
                "--zarr-format", str(request.param))
    assert r.exit_code == 0, r
    return out


@pytest.fixture
def copy(store, tmp_path):
    dst = tmp_path / "store" / "copy.zarr"
    shutil.copytree(store, dst)
    return dst


def _v3(store) -> bool:
    return (store / "zarr.json").exists()


def _chunk(store, array: str, *coords: int):
    """The file of chunk `coords` of `array` (Zarr v3: c/i/j; v2 here: i.j)."""
    if _v3(store):
        return store.joinpath(*array.split("/"), "c", *map(str, coords))
    return store.joinpath(*array.split("/"), ".".join(map(str, coords)))


def _meta(store, array: str):
    return store.joinpath(*array.split("/"), "zarr.json" if _v3(store) else ".zarray")

# garbage chunk bytes, the same every run: random bytes decide which error a codec raises on them (Blosc says
# "error during blosc decompression" for most, SystemError for some), and a test must not depend on luck
def garbage(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def _edit_json(path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _validate(store):
    r = run_cli("validate", store, "--quiet")
    assert r.exit_code == 4, r  # validate exits 4 (as the gate, GateError) on any failed check
    return r.output


def test_the_real_store_passes_every_check(store):
    r = run_cli("validate", store)
    assert r.exit_code == 0 and "17/18 checks passed, 1 skipped" in r.output, r


# ---- 1. every chunk of every array is decoded ------------------------------------------------------------

def test_a_garbage_chunk_in_a_row_wise_array_is_named(copy):
    _chunk(copy, "metadata/ra", 0).write_bytes(garbage(600))
    out = _validate(copy)
    assert f"{DECODES}metadata/ra chunk (0,) does not decode: RuntimeError: error during blosc decompression" in out
    assert "16/18 checks passed, 1 failed, 1 skipped" in out  # nothing else reads metadata/ra's values


def test_a_garbage_chunk_in_a_string_array_and_in_a_2d_array_are_named(copy):
    _chunk(copy, "metadata/source_path", 0).write_bytes(garbage(300))
    _chunk(copy, "signal/uncertainty_raw", 1, 0).write_bytes(garbage(300))
    out = _validate(copy)
    assert f"{DECODES}metadata/source_path chunk (0,) does not decode: " in out
    assert f"{DECODES}signal/uncertainty_raw chunk (1, 0) does not decode: " in out


def test_a_chunk_of_the_wrong_decoded_size_is_named(copy):
    """A well-formed Blosc frame holding 10 values where the chunk holds 5 rows: decodes, to the wrong size."""
    _chunk(copy, "metadata/dec", 0).write_bytes(Blosc(cname="zstd").encode(np.zeros(10, "<f8").tobytes()))
    out = _validate(copy)
    assert f"{DECODES}metadata/dec chunk (0,) does not decode: ValueError: cannot reshape array of size 10 " \
           "into shape (5,)" in out, out


def test_the_gate_decodes_what_the_merge_did_not_checksum(copy):
    """The ingest's gate: a file matching the crc32 the merge recorded is not decoded again (the merge
    encoded it), a file the merge did not record is."""
    from shardmerge.durable import file_checksum
    from shardmerge.validate import Expectation, failures, run_checks

    bad = _chunk(copy, "metadata/ra", 0)
    bad.write_bytes(garbage(600))
    sums = {os.path.relpath(os.path.join(d, n), copy): file_checksum(os.path.join(d, n))
            for d, _, names in os.walk(copy) for n in names}
    rel = os.path.relpath(bad, copy)
    del sums[rel]
    found = failures(run_checks(str(copy), Expectation(5, 256, checksums=sums)))
    assert found == ["16 every chunk decodes to its shape: metadata/ra chunk (0,) does not decode: "
                     "RuntimeError: error during blosc decompression: -1"], found


# ---- 2. links leaving the store ----------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_a_link_to_a_fifo_outside_is_refused_and_never_followed(copy, tmp_path):
    """Opening the FIFO would block forever: validate ending at all shows it never followed the link."""
    fifo = tmp_path / "outside-fifo"
    os.mkfifo(fifo)
    chunk = _chunk(copy, "metadata/ra", 0)
    chunk.unlink()
    chunk.symlink_to(fifo)
    out = _validate(copy)
    assert f"{LINKS}{os.path.relpath(chunk, copy)} is a link to {fifo}, outside the store" in out
    assert f"{NOT_RUN}the store has entries that checking would follow or block on (check 13)" in out


def test_links_to_a_folder_and_a_file_outside_are_each_named(copy, tmp_path):
    """Even links to exact copies of what they replace: the store would hold what is not in it."""
    outside = tmp_path / "elsewhere"
    shutil.move(copy / "params", outside)
    (copy / "params").symlink_to(outside, target_is_directory=True)
    index = copy / "index.parquet"
    shutil.move(index, tmp_path / "index.parquet")
    index.symlink_to(tmp_path / "index.parquet")
    out = _validate(copy)
    assert f"{LINKS}params is a link to {outside}, outside the store" in out
    assert f"{LINKS}index.parquet is a link to {tmp_path / 'index.parquet'}, outside the store" in out


def test_a_relative_link_out_of_the_store_and_a_cycle_are_refused(copy):
    (copy / "signal" / "up").symlink_to(os.path.join("..", "..", ".."), target_is_directory=True)
    (copy / "metadata" / "loop").symlink_to("..", target_is_directory=True)
    out = _validate(copy)
    assert f"{LINKS}signal/up is a link to {copy.parent.parent}, outside the store" in out
    assert f"{LINKS}metadata/loop is a link to {copy}, a folder that holds it (a cycle)" in out


@pytest.mark.timeout(60)
def test_a_fifo_inside_the_store_is_refused_without_opening_it(copy):
    chunk = _chunk(copy, "signal/flux_raw", 0, 0)
    chunk.unlink()
    os.mkfifo(chunk)
    out = _validate(copy)
    assert f"{LINKS}{os.path.relpath(chunk, copy)} is not a file or folder (mode prw" in out


def test_a_link_that_stays_inside_the_store_is_allowed(copy):
    """A hard link or a link within the store reads what the store holds: both are accepted."""
    a, b = _chunk(copy, "metadata/ra", 0), _chunk(copy, "metadata/dec", 0)
    shutil.copy(a, copy / "spare-ra-chunk")
    a.unlink()
    a.symlink_to(os.path.relpath(copy / "spare-ra-chunk", a.parent))
    b.unlink()
    os.link(copy / "spare-ra-chunk", b)  # a hard link: not detectable as leaving, allowed
    out = run_cli("validate", copy, "--quiet").output
    assert LINKS not in out and SHAPES not in out
    # metadata/dec now holds metadata/ra's values: they decode (same dtype, same shape), nothing else can say
    assert "17/18 checks passed, 1 skipped" in out, out


# ---- 3. consolidated metadata that lies ------------------------------------------------------------------

def _lie(copy, array: str, edit) -> None:
    if _v3(copy):
        _edit_json(copy / "zarr.json", lambda d: edit(d["consolidated_metadata"]["metadata"][array]))
    else:
        _edit_json(copy / ".zmetadata", lambda d: edit(d["metadata"][f"{array}/.zarray"]))


def test_consolidated_metadata_that_disagrees_with_an_array_is_named(copy):
    v3 = _v3(copy)

    def shape_and_dtype(doc):
        doc["shape"] = [7, 256]
        doc["data_type" if v3 else "dtype"] = "float64" if v3 else "<f8"

    _lie(copy, "signal/flux_raw", shape_and_dtype)
    out = _validate(copy)
    rel = os.path.relpath(_meta(copy, "signal/flux_raw"), copy)
    where = "the root's consolidated metadata" if v3 else ".zmetadata"
    assert f"{CONSOLIDATED}{rel}: {where} has shape [7, 256], the node's own metadata [5, 256]" in out, out
    own = "'float32'" if v3 else "'<f4'"
    assert f"{CONSOLIDATED}{rel}: {where} has dtype {'float64' if v3 else '<f8'!r}, the node's own metadata {own}" \
           in out, out
    assert "16/18 checks passed, 1 failed, 1 skipped" in out


def test_consolidated_chunks_and_attrs_that_lie_and_a_missing_entry_are_named(copy):
    v3 = _v3(copy)
    if v3:
        def edit(d):
            meta = d["consolidated_metadata"]["metadata"]
            meta["signal/wavelength"]["attributes"]["units"] = "nm"
            meta["metadata/ra"]["chunk_grid"]["configuration"]["chunk_shape"] = [1]
            del meta["metadata/dec"]
        _edit_json(copy / "zarr.json", edit)
    else:
        def edit(d):
            meta = d["metadata"]
            meta["signal/wavelength/.zattrs"]["units"] = "nm"
            meta["metadata/ra/.zarray"]["chunks"] = [1]
            del meta["metadata/dec/.zarray"]
        _edit_json(copy / ".zmetadata", edit)
    out = _validate(copy)
    where = "the root's consolidated metadata" if v3 else ".zmetadata"
    wave = "signal/wavelength/" + ("zarr.json" if v3 else ".zattrs")
    assert f"{CONSOLIDATED}{wave}: {where} has attrs ['units'] as ['nm'], the node's own metadata ['Angstrom']" \
           in out, out
    chunks = "{'name': 'regular', 'configuration': {'chunk_shape': [1]}}" if v3 else "[1]"
    assert f"{CONSOLIDATED}{os.path.relpath(_meta(copy, 'metadata/ra'), copy)}: {where} has chunks {chunks}" in out
    assert f"{CONSOLIDATED}{os.path.relpath(_meta(copy, 'metadata/dec'), copy)} is in the store but not in " \
           f"{where}" in out


def test_consolidated_metadata_naming_an_array_the_store_lacks_is_named(copy):
    shutil.rmtree(copy / "metadata" / "ra")
    out = _validate(copy)
    rel = os.path.relpath(_meta(copy, "metadata/ra"), copy)
    where = "the root's consolidated metadata" if _v3(copy) else ".zmetadata"
    assert f"{CONSOLIDATED}{where} lists {rel}, which the store does not have" in out, out


# ---- 4. shapes the chunk files cannot hold ---------------------------------------------------------------

@pytest.mark.timeout(60)
def test_a_shape_of_2_34_is_refused_at_once_in_bounded_memory(copy):
    """Before: 60 s and 2.9 GB, looping over 2**32 chunk keys. Now the grid is counted in Python ints."""
    _edit_json(_meta(copy, "signal/flux_raw"), lambda d: d.__setitem__("shape", [2**34, 256]))
    t0 = time.perf_counter()
    out = _validate(copy)
    assert time.perf_counter() - t0 < 1.0
    n_files = sum(len(names) for _, _, names in os.walk(copy))
    assert f"{SHAPES}signal/flux_raw: shape ({2**34}, 256) in storage files of (2, 256) needs {2**33} chunk " \
           f"files, the whole store holds {n_files} files" in out, out
    assert f"{NOT_RUN}the metadata claims more than the store's files can hold (check 14)" in out
    # as a real process: its own peak RSS (wait4), not this test process's
    proc = subprocess.Popen([sys.executable, "-m", "shardmerge", "validate", str(copy), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 4 and usage.ru_maxrss < 400 * 1024, usage.ru_maxrss  # KiB: python+zarr ~150 MiB


def test_a_gigantic_chunk_shape_is_refused_without_allocating_it(copy):
    def huge(d):
        if "chunk_grid" in d:
            d["chunk_grid"]["configuration"]["chunk_shape"] = [2**40]
        else:
            d["chunks"] = [2**40]

    _edit_json(_meta(copy, "metadata/mjd"), huge)
    out = _validate(copy)
    assert f"{SHAPES}metadata/mjd: chunk shape ({2**40},) decodes to {2**43} bytes, more than validate decodes " \
           f"(268435456 bytes a chunk)" in out, out


# ---- 5. readers during an overwrite -------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    """Two corpora of the same layout (5 spectra x 256 pixels) and different values and source paths: a
    store of one, overwritten by the other, keeps its shape and chunks, so a stale reader fails silently."""
    d = tmp_path_factory.mktemp("overwrite")
    for name, seed in (("a", 0), ("b", 100)):
        for i in range(5):
            make_wcs1d(d / name / f"{name}{i}.fits", i=i, n_pix=256, seed=seed + i)
    return d / "a", d / "b"


def _overwrite(corpus, out) -> None:
    """A second, real ingest with --overwrite, as its own process."""
    r = run_cli_process("ingest", corpus, "-o", out, "--overwrite", "--workers", "0", "--chunk-rows", "2")
    assert r.exit_code == 0, r


def _reader(between=lambda: None):
    """Open the store as zarr and xarray do (consolidated metadata), read the index, then the flux;
    `between` runs between the two reads, on the first call only."""
    calls = []

    def read(path):
        import pyarrow.parquet as pq
        import zarr

        root = zarr.open_group(path, mode="r")
        sources = pq.read_table(os.path.join(path, "index.parquet")).column("source_path").to_pylist()
        if not calls:
            between()
        calls.append(path)
        return sources, np.asarray(root["signal/flux_raw"][:])

    return read, calls


@pytest.mark.timeout(300)
def test_a_reader_across_an_overwrite_mixes_stores_unless_it_reads_consistently(tmp_path, two_corpora,
                                                                                dask_scheduler):
    from shardmerge.store import read_consistent, store_identity

    a, b = two_corpora
    out = tmp_path / "out.zarr"
    r = run_cli("ingest", a, "-o", out, "--scheduler", dask_scheduler, "--chunk-rows", "2")
    assert r.exit_code == 0, r
    a_sources, a_flux = _reader()[0](str(out))
    assert all(s.startswith(str(a)) for s in a_sources)
    first = store_identity(str(out))
    assert first[2] is not None and len(first[2]) == 32  # the merge's per-publish uuid

    naive, _ = _reader(lambda: _overwrite(b, out))
    stale_sources, new_flux = naive(str(out))
    b_sources, b_flux = _reader()[0](str(out))
    assert store_identity(str(out))[2] != first[2]
    # the naive reader: a's index, b's flux rows under it, and no error
    assert stale_sources == a_sources and np.array_equal(new_flux, b_flux, equal_nan=True)
    assert not np.array_equal(new_flux, a_flux, equal_nan=True)

    careful, calls = _reader(lambda: _overwrite(a, out))
    sources, flux = read_consistent(str(out), careful)
    assert len(calls) == 2  # the first read saw the overwrite and was discarded
    assert all(s.startswith(str(a)) for s in sources) and len(sources) == flux.shape[0] == 5
    again_sources, again_flux = _reader()[0](str(out))
    assert sources == again_sources and np.array_equal(flux, again_flux, equal_nan=True)


def test_read_consistent_gives_up_naming_the_store_when_every_attempt_is_overwritten(copy, tmp_path):
    """A byte-for-byte copy renamed onto the path (same store_id) is still another store: a new inode."""
    from shardmerge.errors import StoreChangedError
    from shardmerge.store import read_consistent

    def swap():
        spare = tmp_path / "spare.zarr"
        shutil.copytree(copy, spare)
        os.rename(copy, tmp_path / "gone.zarr")
        os.rename(spare, copy)

    read, calls = _reader(swap)
    with pytest.raises(StoreChangedError, match=f"{copy} was overwritten during each of 1 attempts to read it"):
        read_consistent(str(copy), read, attempts=1)
    assert len(calls) == 1
