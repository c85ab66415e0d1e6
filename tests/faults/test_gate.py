"""The validation gate: bad data never reaches OUT; damaged stores fail `validate`, which names the fault."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from shardmerge.testing.spectra import make_image2d, make_wcs1d
from tests.helpers import run_cli


@pytest.mark.parametrize(("kind", "label"), [("nan", "all-NaN"), ("zero", "all-zero")])
def test_empty_flux_row_is_refused(tmp_path, dask_scheduler, kind, label):
    d = tmp_path / "in"
    make_wcs1d(d / "a.fits", n_pix=300)
    bad = make_image2d(d / "b_plate.fits", n_rows=6, n_pix=300, bad_rows={4: kind})
    out = tmp_path / "out.zarr"
    r = run_cli("ingest", d, "-o", out, "--scheduler", dask_scheduler, "--chunk-rows", "2")
    assert r.exit_code == 4, r
    # global row 5 is spectrum 4 of the plate (a.fits sorts first and holds row 0)
    assert f"signal/flux_raw row 5 is {label} (source {bad} spectrum 4)" in r.output
    assert not out.exists() and not os.path.exists(f"{out}.tmp")


@pytest.fixture(scope="module")
def published(tmp_path_factory, dask_scheduler):
    d = tmp_path_factory.mktemp("gate")
    for i in range(5):
        make_wcs1d(d / "in" / f"s{i}.fits", i=i, n_pix=256, seed=i)
    out = d / "good.zarr"
    r = run_cli("ingest", d / "in", "-o", out, "--scheduler", dask_scheduler, "--chunk-rows", "2")
    assert r.exit_code == 0, r
    return out


def _copy(published, tmp_path):
    dst = tmp_path / "copy.zarr"
    shutil.copytree(published, dst)
    return dst


@pytest.mark.parametrize("mode", ["full decode", "shard statistics + sampled decode"])
def test_gate_uses_shard_statistics_with_a_sampled_decode(tmp_path, dask_scheduler, mode):
    """The merge copied every flux chunk raw and checked it against its shard's checksum, so check 6 may
    take the shards' row statistics; without raw copies (Zarr v2 here) it decodes everything."""
    d = tmp_path / "in"
    make_wcs1d(d / "a.fits", n_pix=300)
    make_image2d(d / "b_plate.fits", n_rows=40, n_pix=300, bad_rows={33: "zero"})
    extra = ["--zarr-format", "2"] if mode == "full decode" else []
    rep = tmp_path / "r.json"
    r = run_cli("ingest", d, "-o", tmp_path / "o.zarr", "--scheduler", dask_scheduler, "--chunk-rows", "2",
                "--report", rep, *extra)
    assert r.exit_code == 4 and "signal/flux_raw row 34 is all-zero" in r.output, r
    assert json.loads(rep.read_text())["gate_flux_rows"] == mode


def test_shard_statistics_that_disagree_with_the_data_fail_the_gate(published):
    from shardmerge.validate import Expectation, failures, run_checks

    honest = run_checks(str(published), Expectation(5, 256, flux_rows={"all_nan": [], "all_zero": []}))
    assert failures(honest) == []
    lying = run_checks(str(published), Expectation(5, 256, flux_rows={"all_nan": [], "all_zero": [1]}))
    assert any("shard statistics list all_zero rows [1] in the sampled chunk rows, decoding finds []" in f
               for f in failures(lying))


def test_published_store_passes(published):
    r = run_cli("validate", published)
    assert r.exit_code == 0 and "17/18 checks passed, 1 skipped" in r.output


def test_missing_units_attr_fails(published, tmp_path):
    store = _copy(published, tmp_path)
    meta = store / "signal" / "uncertainty_raw" / "zarr.json"
    doc = json.loads(meta.read_text())
    del doc["attributes"]["units"]
    meta.write_text(json.dumps(doc))
    r = run_cli("validate", store)
    assert r.exit_code == 4
    assert "FAIL 7 units attrs on spectral arrays: signal/uncertainty_raw has no 'units' attr" in r.output


def test_short_index_fails(published, tmp_path):
    store = _copy(published, tmp_path)
    table = pq.read_table(store / "index.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), store / "index.parquet")
    r = run_cli("validate", store)
    assert r.exit_code == 4
    assert "FAIL 9 index.parquet has N_spec rows: index.parquet has 4 rows, N_spec is 5" in r.output


def test_missing_chunk_fails(published, tmp_path):
    store = _copy(published, tmp_path)
    os.unlink(store / "signal" / "flux_raw" / "c" / "1" / "0")
    r = run_cli("validate", store)
    assert r.exit_code == 4
    assert "FAIL 10 every chunk exists: signal/flux_raw: chunk(s) (1, 0) missing or empty (of 3)" in r.output
    # the lost rows read back as fill value (NaN) without any error: the row check sees them too
    assert "signal/flux_raw row 2 is all-NaN" in r.output


def test_missing_provenance_and_group_fail(published, tmp_path):
    store = _copy(published, tmp_path)
    meta = store / "zarr.json"
    doc = json.loads(meta.read_text())
    del doc["attributes"]["git_commit"]
    meta.write_text(json.dumps(doc))
    shutil.rmtree(store / "params")
    r = run_cli("validate", store)
    assert r.exit_code == 4
    assert "root attr 'git_commit' is missing or empty" in r.output
    assert "group 'params' is missing" in r.output


def test_validate_on_a_non_store(tmp_path):
    r = run_cli("validate", tmp_path / "nothing.zarr")
    assert r.exit_code == 2 and "no such file or folder" in r.output


@pytest.mark.parametrize(("edit", "message"), [
    ("repeat", "signal/wavelength (shared by every row) does not increase strictly"),
    ("nan", "signal/wavelength row 0 is not finite where the flux has values (source "),
])
def test_a_wavelength_that_is_not_a_grid_fails(published, tmp_path, edit, message):
    """Check 12: what a misread file leaves behind (a grid that does not increase, NaN under real flux)."""
    import numpy as np
    import zarr

    store = _copy(published, tmp_path)
    wave = zarr.open_group(store, mode="r+")["signal/wavelength"]
    values = np.asarray(wave[:])
    assert values.ndim == 1
    values[10] = values[9] if edit == "repeat" else np.nan
    wave[:] = values
    r = run_cli("validate", store)
    assert r.exit_code == 4
    assert f"FAIL 12 wavelength finite and increasing where there is flux: {message}" in r.output, r.output


def test_a_wavelength_that_steps_back_between_pixel_chunks_is_caught():
    """Check 12 reads chunk-sized slabs: the order must hold across their boundaries, NaN padding skipped."""
    import numpy as np

    from shardmerge.validate import _not_increasing

    first = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, np.nan], [np.nan, np.nan, np.nan]])
    bad, last = _not_increasing(first, np.full(3, -np.inf))
    assert not bad.any() and list(last[:2]) == [3.0, 2.0] and last[2] == -np.inf
    bad, _ = _not_increasing(np.array([[2.5, 4.0], [np.nan, 2.5], [7.0, 8.0]]), last)
    assert list(bad) == [True, False, False]  # row 0 steps back from 3.0 to 2.5 at the boundary
