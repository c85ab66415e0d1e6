"""Check 18: the store's rows against index.parquet and against what the sources announced at scan time
(root attr `input_spectra`). A good store passes, at the gate and in `validate`; a store whose index or rows
were tampered with after the ingest, though consistent with itself, fails naming the numbers."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
from astropy.io import fits
from numpy import full, ones

from shardmerge.provenance import counts_digest
from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli

CHECK = "FAIL 18 row counts agree with what the sources announced: "


def _exposures(path, n: int = 3) -> None:
    """Three SCI exposures (EXTVER 1..3) in one file: three rows."""
    hdus = [fits.PrimaryHDU()]
    for v in range(1, n + 1):
        h = fits.Header({"CRVAL1": 4000.0, "CDELT1": 1.0, "CRPIX1": 1.0, "CUNIT1": "Angstrom", "EXTVER": v})
        hdus.append(fits.ImageHDU(full(256, float(v), dtype="f4"), h, "SCI"))
        hdus.append(fits.ImageHDU(ones(256, dtype="f4"), fits.Header({"EXTVER": v}), "ERR"))
    fits.HDUList(hdus).writeto(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("rowcounts")
    (d / "in").mkdir()
    for i in range(2):
        make_wcs1d(d / "in" / f"s{i}.fits", i=i, n_pix=256, seed=i)
    _exposures(d / "in" / "x_exposures.fits")
    out, rep = d / "good.zarr", d / "report.json"
    r = run_cli("ingest", d / "in", "-o", out, "--workers", "0", "--chunk-rows", "2", "--report", rep)
    assert r.exit_code == 0, r
    assert json.loads(rep.read_text())["checks"]["18 row counts agree with what the sources announced"] == "pass"
    return out, d / "in"


@pytest.fixture
def copy(store, tmp_path):
    dst = tmp_path / "copy.zarr"
    shutil.copytree(store[0], dst)
    return dst


def _validate(path) -> tuple[int, list[str]]:
    r = run_cli("validate", path)
    return r.exit_code, [line for line in r.output.splitlines() if line.startswith(CHECK)]


def _rewrite_index(store, fn) -> None:
    path = store / "index.parquet"
    table = pq.read_table(path)
    pq.write_table(fn(table), path)


def _set_attr(store, key, value) -> None:
    g = zarr.open_group(store, mode="r+", use_consolidated=False)
    g.attrs[key] = value


def test_the_announced_counts_are_recorded_and_a_good_store_passes(store):
    out, inputs = store
    said = zarr.open_group(out, mode="r").attrs["input_spectra"]
    paths = sorted(str(p) for p in inputs.iterdir())
    assert said["total"] == 5 and said["files"] == 3 and said["dropped"] == 0
    assert said["per_file"] == dict(zip(paths, [1, 1, 3], strict=True))
    assert said["per_file_sha256"] == counts_digest([1, 1, 3])
    code, lines = _validate(out)
    assert (code, lines) == (0, [])


def test_an_index_missing_a_row_fails_naming_the_counts(copy):
    _rewrite_index(copy, lambda t: t.slice(0, t.num_rows - 1))
    code, lines = _validate(copy)
    assert code != 0
    assert f"{CHECK}signal/flux_raw has 5 rows, index.parquet 4" in lines
    assert any(line.endswith("x_exposures.fits: announced 3, index.parquet has 2") for line in lines), lines


def test_rows_moved_between_files_in_the_index_fail_naming_both(copy):
    def move(t: pa.Table) -> pa.Table:
        paths = t.column("source_path").to_pylist()
        paths[-1] = paths[0]  # an exposure's row credited to another file: the totals still agree
        return t.set_column(t.schema.get_field_index("source_path"), "source_path", pa.array(paths))

    _rewrite_index(copy, move)
    code, lines = _validate(copy)
    assert code != 0
    assert any(line.endswith("s0.fits: announced 1, index.parquet has 2") for line in lines), lines
    assert any(line.endswith("x_exposures.fits: announced 3, index.parquet has 2") for line in lines), lines


def test_fewer_rows_than_the_sources_announced_fail(copy):
    said = dict(zarr.open_group(copy, mode="r").attrs["input_spectra"])
    _set_attr(copy, "input_spectra", {**said, "total": 7})  # as if two spectra never reached the store
    code, lines = _validate(copy)
    assert code != 0
    assert f"{CHECK}the sources announced 7 spectra in 3 file(s) (root attr input_spectra), the store holds 5 " \
           "rows (-2)" in lines


def test_without_per_file_paths_the_digest_still_catches_moved_rows(copy):
    said = dict(zarr.open_group(copy, mode="r").attrs["input_spectra"])
    del said["per_file"]  # as a store of more than ANNOUNCED_PER_FILE_MAX files records it
    _set_attr(copy, "input_spectra", said)
    assert _validate(copy)[1] == []
    _rewrite_index(copy, lambda t: t.set_column(t.schema.get_field_index("source_path"), "source_path",
                                                pa.array(t.column("source_path").to_pylist()[1:2] * t.num_rows)))
    code, lines = _validate(copy)
    assert code != 0
    assert lines == [f"{CHECK}index.parquet's rows per file differ from what the sources announced: 1 file(s) "
                     "there, 3 announced, and the per-file counts' digest differs"]


def test_a_store_that_records_nothing_checks_the_index_alone(copy):
    g = zarr.open_group(copy, mode="r+", use_consolidated=False)
    del g.attrs["input_spectra"]  # a store from before the attr, or another tool's
    assert _validate(copy)[1] == []
    _rewrite_index(copy, lambda t: t.slice(0, 3))
    code, lines = _validate(copy)
    assert code != 0 and lines == [f"{CHECK}signal/flux_raw has 5 rows, index.parquet 3"]
