"""open_store on real SDSS spectra: each `spectrum(i)` equals the file as astropy reads it, and as specutils'
own SDSS reader reads it."""

from __future__ import annotations

import os
import warnings

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits

from shardmerge.reading import open_store
from tests.helpers import run_cli
from tests.realdata.fetch import fetch_or_skip

pytestmark = pytest.mark.realdata

SDSS = ["NGC3073_SDSS_DR18.fits", "NGC3522_SDSS_DR18.fits", "spec-0266-51602-0031.fits"]
SDSS_UNIT = 1e-17 * u.erg / u.cm**2 / u.s / u.AA


@pytest.mark.timeout(180)
def test_real_sdss_spectra_read_back_as_the_files_are(tmp_path, dask_scheduler):
    files = fetch_or_skip(SDSS)
    folder = tmp_path / "real"
    folder.mkdir()
    for name in SDSS:
        os.symlink(files[name], folder / name)
    out = tmp_path / "sdss.zarr"
    r = run_cli("ingest", folder, "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    specutils = pytest.importorskip("specutils")
    spectrum_class = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D

    with open_store(out) as store:
        assert len(store) == 3 and store.shape == (3, 3848)
        for row, name in enumerate(sorted(SDSS)):
            ours = store.spectrum(row)
            assert os.path.basename(ours.meta["source_path"]) == name and ours.meta["format"] == "sdss-coadd"
            with fits.open(files[name]) as h:
                t = h["COADD"].data
                header = h[0].header
                assert len(ours.flux) == len(t)  # the padding to 3848 pixels is gone
                np.testing.assert_array_equal(ours.flux.value, t["flux"])
                np.testing.assert_allclose(ours.spectral_axis.to_value(u.AA), 10.0 ** t["loglam"].astype(np.float64),
                                           rtol=1e-15)
                ivar = t["ivar"].astype(np.float64)
                with np.errstate(divide="ignore"):
                    sigma = np.where(ivar > 0, 1 / np.sqrt(ivar), np.nan)
                np.testing.assert_allclose(ours.uncertainty.array, sigma, rtol=1e-6)
                np.testing.assert_array_equal(ours.mask, (t["and_mask"] != 0) | ~np.isfinite(t["flux"]))
                assert ours.meta["ra"] == pytest.approx(header["PLUG_RA"])
                assert ours.meta["params"]["z"] == float(h["SPECOBJ"].data["Z"][0])
                # the file's own BUNIT: astropy does not know "Ang"; a store that normalises units at ingest
                # says 1e-17 erg / (Angstrom s cm2), one written before keeps the string (an UnrecognizedUnit)
                bunit = header["BUNIT"]
                assert ours.flux.unit == SDSS_UNIT or (isinstance(ours.flux.unit, u.UnrecognizedUnit)
                                                       and ours.flux.unit.name == bunit), (bunit, ours.flux.unit)

            with warnings.catch_warnings():  # specutils' loader warns about the files' own cards
                warnings.simplefilter("ignore")
                theirs = spectrum_class.read(str(files[name]), format="SDSS-III/IV spec")
            np.testing.assert_array_equal(ours.flux.value, theirs.flux.value)
            np.testing.assert_allclose(ours.spectral_axis.to_value(u.AA), theirs.spectral_axis.to_value(u.AA),
                                       rtol=1e-6)  # specutils computes 10**loglam in float32
            their_sigma = theirs.uncertainty.represent_as(type(ours.uncertainty)).array
            np.testing.assert_allclose(ours.uncertainty.array[np.isfinite(ours.uncertainty.array)],
                                       their_sigma[np.isfinite(ours.uncertainty.array)], rtol=1e-6)
            assert theirs.flux.unit == SDSS_UNIT
