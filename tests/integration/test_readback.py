"""Reading a published store back: `shardmerge inspect` (and its plot), xarray's open_datatree and plain zarr,
with no shardmerge code on the reading side."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import zarr

from tests.helpers import run_cli


@pytest.fixture
def store(tmp_path, mixed_corpus, dask_scheduler):
    out = tmp_path / "survey.zarr"
    r = run_cli("ingest", mixed_corpus, "-o", out, "--scheduler", dask_scheduler, "--chunk-rows", "32")
    assert r.exit_code == 0, r
    return out


def test_inspect_summarizes_and_plots(store, tmp_path):
    r = run_cli("inspect", store, "--json")
    assert r.exit_code == 0, r
    summary = json.loads(r.output)
    assert summary["shape"] == [136, 4000]
    assert summary["formats"] == {"image-2d": 120, "sdss-coadd": 6, "wcs-1d": 10}
    assert summary["files"] == 19
    assert summary["arrays"]["signal/flux_raw"]["chunks"] == [32, 4000]
    assert summary["arrays"]["signal/flux_raw"]["codecs"] == ["BloscCodec"]
    assert summary["provenance"]["ingest_pipeline"].startswith("shardmerge")
    text = run_cli("inspect", store).output
    assert "spectra     136 x 4000 pixels" in text and "sources     19 files" in text

    png = tmp_path / "few.png"
    r = run_cli("inspect", store, "--plot", png, "--plot-spectra", "4")
    assert r.exit_code == 0 and "spectra at rows 0, 45, 90, 135" in r.output, r
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_xarray_open_datatree_reads_every_group(store):
    xr = pytest.importorskip("xarray")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated metadata and dimension names: no fallback warnings
        tree = xr.open_datatree(store, engine="zarr")
    signal = tree["signal"].ds
    assert dict(signal.sizes) == {"spectrum": 136, "pixel": 4000}
    root = zarr.open_group(store, mode="r")
    np.testing.assert_array_equal(signal["flux_raw"].values, root["signal/flux_raw"][:])
    np.testing.assert_array_equal(signal["wavelength"].values, root["signal/wavelength"][:])
    meta = tree["metadata"].ds
    assert meta["spec_id"].dims == ("spectrum",)
    assert str(meta["spec_id"].values[0]) == str(root["metadata/spec_id"][0])
    assert tree.attrs["ingest_pipeline"].startswith("shardmerge")
    tree.close()


def test_plain_zarr_in_a_fresh_interpreter(store):
    """What the docs show (docs/schema.md, "Reading a store back"): zarr alone, no shardmerge import."""
    code = (
        "import zarr, sys; g = zarr.open_group(sys.argv[1], mode='r'); f = g['signal/flux_raw']; "
        "print(f.shape, f.attrs['units_column'], g['signal/wavelength'].attrs['units'], "
        "str(g['metadata/source_path'][0]).endswith('.fits'))"
    )
    out = subprocess.run([sys.executable, "-W", "error", "-c", code, str(store)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "(136, 4000) metadata/flux_unit Angstrom True"
