"""XIDL flux/error pairs (`NAME_f.fits` + `NAME_e.fits`, `_nF`/`_nE`): the error file is its flux file's
uncertainty, not a spectrum of its own (it was stored as a second science row, in flux units, and the flux
row had no uncertainty). Only an error file on the flux file's grid attaches; names that merely end in
`_e` without a flux file beside them are ordinary spectra."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.readers.wcs1d import xidl_pair
from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(120)

N_PIX = 500


def _pair(folder, stem="q0100", flux_suffix="_f", error_suffix="_e", error_crval=4000.0, gz=False):
    flux = make_wcs1d(folder / f"{stem}{flux_suffix}.fits", i=1, n_pix=N_PIX, uncertainty=None, seed=1)
    sigma = np.linspace(0.1, 0.5, N_PIX).astype(np.float32)
    error = make_wcs1d(folder / f"{stem}{error_suffix}.fits", i=1, n_pix=N_PIX, uncertainty=None,
                       crval=error_crval, flux=sigma)
    if gz:
        with open(error, "rb") as src, gzip.open(f"{error}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        error.unlink()
    return flux, sigma


def _ingest(tmp_path, folder):
    out, report = tmp_path / "out.zarr", tmp_path / "r.json"
    r = run_cli("ingest", folder, "-o", out, "--workers", "0", "--scratch", tmp_path / "s", "--report", report)
    return r, out, report


@pytest.mark.parametrize(("flux_suffix", "error_suffix", "gz"),
                         [("_f", "_e", False), ("_F", "_E", False), ("_nF", "_nE", False), ("_f", "_e", True)])
def test_an_error_file_is_the_uncertainty_of_its_flux_file(tmp_path, flux_suffix, error_suffix, gz):
    folder = tmp_path / "in"
    folder.mkdir()
    flux_path, sigma = _pair(folder, flux_suffix=flux_suffix, error_suffix=error_suffix, gz=gz)
    make_wcs1d(folder / "other.fits", i=2, n_pix=N_PIX, uncertainty="err", seed=2)  # an ordinary neighbour
    r, out, report = _ingest(tmp_path, folder)
    assert r.exit_code == 0, r.output
    g = zarr.open_group(out, mode="r")
    names = [str(p).rsplit("/", 1)[1] for p in g["metadata/source_path"][:]]
    assert sorted(names) == sorted([flux_path.name, "other.fits"])  # the error file has no row
    row = names.index(flux_path.name)
    np.testing.assert_array_equal(g["signal/flux_raw"][row, :N_PIX], fits.getdata(flux_path).astype(np.float32))
    np.testing.assert_array_equal(g["signal/uncertainty_raw"][row, :N_PIX], sigma)
    assert json.loads(report.read_text())["counts"]["spectra"] == 2


def test_an_error_file_on_another_grid_is_refused_naming_it(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _pair(folder, error_crval=4100.0)
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code != 0 and not out.exists()
    assert "q0100_e.fits: its wavelength grid is not that of" in r.output and "uncertainty_raw" in r.output


def test_names_that_only_look_like_a_pair_are_ordinary_spectra(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_wcs1d(folder / "star_e.fits", i=1, n_pix=N_PIX, seed=1)  # no star_f.fits beside it
    make_wcs1d(folder / "galaxy_f.fits", i=2, n_pix=N_PIX, seed=2)  # no galaxy_e.fits
    assert xidl_pair(str(folder / "star_e.fits")) is None and xidl_pair(str(folder / "galaxy_f.fits")) is None
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code == 0, r.output
    assert zarr.open_group(out, mode="r")["signal/flux_raw"].shape[0] == 2


def test_an_error_file_given_without_its_flux_file_is_refused_saying_so(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _pair(folder)
    r = run_cli("ingest", folder / "q0100_e.fits", "-o", tmp_path / "out.zarr", "--workers", "0",
                "--scratch", tmp_path / "s")
    assert r.exit_code != 0 and not (tmp_path / "out.zarr").exists()
    assert "q0100_e.fits" in r.output and "no file among the inputs has that key" in r.output, r.output
