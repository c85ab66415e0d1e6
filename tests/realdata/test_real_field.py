"""Real files that bend the FITS rules the way archives do (fetched at test time, pinned by SHA-256, read
in place). Each is either stored faithfully (values equal to a reading with astropy alone, wavelength in
Angstrom) or refused with a message naming the file, the ambiguity and the option that resolves it; where
the option is a mapping file, the mapped ingest is checked too."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.units import normalise_flux_unit
from tests.helpers import run_cli
from tests.realdata.fetch import fetch_or_skip

pytestmark = pytest.mark.realdata

NAMES = ["popler_sample.fits", "spec_example_2.fits", "specexample1.fits", "NGC4151sic2a.fits",
         "SDSSJ220248.31+123656.3.fits", "Spectrum_lines.fits", "Spectrum_Variance.fits",
         "grw_70d5824_stisnic_005.fits", "k93_4500_0_5_rn_box.fits", "qso_template.fits", "ngc1068_template.fits"]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return fetch_or_skip(NAMES)


def _ingest(tmp_path, path, *extra, ok=True):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    link = d / path.name
    if not link.exists():
        os.symlink(path, link)
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", link, "-o", out, "--workers", "0", "--report", rep, "--overwrite", *extra)
    if not ok:
        assert r.exit_code == 3, r
        assert not out.exists()
        return r.output
    assert r.exit_code == 0, r
    assert run_cli("validate", out).exit_code == 0
    return zarr.open_group(out, mode="r"), json.loads(rep.read_text())


def _mapping(tmp_path, text):
    m = tmp_path / "mapping.toml"
    m.write_text(text)
    return ("--format", "mapping", "--mapping", str(m))


def _check(g, row, wave, flux, sigma=None):
    n = wave.size
    w = g["signal/wavelength"]
    np.testing.assert_allclose(w[:n] if w.ndim == 1 else w[row, :n], wave, rtol=1e-12)
    np.testing.assert_array_equal(g["signal/flux_raw"][row, :n], np.asarray(flux).astype(np.float32))
    unc = g["signal/uncertainty_raw"][row, :n]
    if sigma is None:
        assert np.all(np.isnan(unc))
    else:
        np.testing.assert_allclose(unc, np.asarray(sigma, dtype=np.float32), rtol=1e-6, equal_nan=True)


def _wcs(h, n):
    cdelt = h.get("CDELT1", h.get("CD1_1"))
    return h["CRVAL1"] + (np.arange(1, n + 1) - h.get("CRPIX1", 1.0)) * cdelt


def test_muse_data_and_stat_variance(tmp_path, real):
    """MPDAF: STAT is the variance; it used to be ignored, leaving an all-NaN uncertainty."""
    g, _ = _ingest(tmp_path, real["Spectrum_lines.fits"])
    with fits.open(real["Spectrum_lines.fits"]) as h:
        flux, var = h["DATA"].data, h["STAT"].data.astype(np.float64)
        wave = _wcs(h["DATA"].header, flux.size)  # CUNIT1 Angstrom
    _check(g, 0, wave, flux, np.sqrt(var))
    assert not np.all(np.isnan(g["signal/uncertainty_raw"][0]))


@pytest.mark.parametrize("name", ["grw_70d5824_stisnic_005.fits", "k93_4500_0_5_rn_box.fits", "qso_template.fits",
                                  "ngc1068_template.fits"])
def test_tables_with_one_row_per_pixel(tmp_path, real, name):
    """CALSPEC (STATERROR is the 1-sigma), a Kurucz model and STScI templates: auto-detected by column name."""
    g, _ = _ingest(tmp_path, real[name])
    assert str(g["metadata/format"][0]) == "table-1d"
    with fits.open(real[name]) as h:
        d, cols = h[1].data, h[1].columns
        assert str(cols["WAVELENGTH"].unit).lower() in ("angstrom", "angstroms")
        sigma = d["STATERROR"] if "STATERROR" in cols.names else None
        _check(g, 0, np.asarray(d["WAVELENGTH"], dtype=np.float64), d["FLUX"], sigma)
        assert g["signal/flux_raw"].attrs["units_source"] == str(cols["FLUX"].unit)
        assert g["signal/flux_raw"].attrs["units"] == normalise_flux_unit(str(cols["FLUX"].unit))[0]


@pytest.mark.parametrize("name", ["spec_example_2.fits", "specexample1.fits"])
def test_flux_and_wavelength_images(tmp_path, real, name):
    """linetools: FLUX primary, ERROR and WAVELENGTH images (unit in a UNITS JSON card), CONTINUUM."""
    g, _ = _ingest(tmp_path, real[name])
    assert str(g["metadata/format"][0]) == "image-arrays"
    with fits.open(real[name]) as h:
        assert json.loads(h[0].header["UNITS"])["wave"] == "Angstrom"
        _check(g, 0, h["WAVELENGTH"].data.astype(np.float64), h["FLUX"].data, h["ERROR"].data)
        if "CONTINUUM" in h:
            np.testing.assert_array_equal(g["continuum/continuum_model"][0], h["CONTINUUM"].data.astype(np.float32))
            assert str(g["continuum/method"][0]) == "source (CONTINUUM extension)"


def test_rows_of_different_quantities_are_refused_then_mapped(tmp_path, real):
    """popler: 9 rows = normalized flux, its error (-1e32 = no information), ..., continuum, status, chi2."""
    path = real["popler_sample.fits"]
    out = _ingest(tmp_path, path, ok=False)
    link = tmp_path / "in" / path.name
    assert f"{link}: the image's rows are different quantities (ARRAY1 = 'Normalized flux spectrum'" in out
    assert "--format mapping" in out
    g, _ = _ingest(tmp_path, path, *_mapping(tmp_path, '[flux]\nhdu = 0\nrow = 0\n[uncertainty]\nhdu = 0\nrow = 1\n'
                                                         'kind = "sigma"\n[continuum]\nhdu = 0\nrow = 3\n'
                                                         '[wavelength]\nwcs = true\n'))
    assert str(g["metadata/format"][0]) == "mapping"  # which reader; which mapping file is in the root attrs
    assert g.attrs["mapping_file"] == str(tmp_path / "mapping.toml") and len(g.attrs["mapping_sha256"]) == 12
    with fits.open(path) as h:
        data, hdr = h[0].data, h[0].header
        assert hdr["CTYPE1"] == "LOGLIN" and hdr["DC-FLAG"] == 1
        wave = 10.0 ** _wcs(hdr, data.shape[1])
        sigma = np.where(data[1] < 0, np.nan, data[1])  # -1e32: "No info. in pixel if <0.0"
        _check(g, 0, wave, data[0], sigma)
        np.testing.assert_array_equal(g["continuum/continuum_model"][0], data[3].astype(np.float32))
    assert np.isnan(g["signal/uncertainty_raw"][0]).sum() == np.sum(data[1] < 0) > 0


def test_a_table_without_units_is_refused_then_mapped(tmp_path, real):
    """FUSE NGC 4151: 917-1005 with no unit anywhere (far-UV Angstrom, or near-IR nm?)."""
    path = real["NGC4151sic2a.fits"]
    out = _ingest(tmp_path, path, ok=False)
    assert f"{tmp_path / 'in' / path.name}: wavelength column 'WAVE' has no unit" in out and 'unit = "Angstrom"' in out
    g, _ = _ingest(tmp_path, path, *_mapping(tmp_path, '[flux]\nhdu = 1\ncolumn = "FLUX"\n[wavelength]\nhdu = 1\n'
                                                         'column = "WAVE"\nunit = "Angstrom"\n[uncertainty]\n'
                                                         'hdu = 1\ncolumn = "ERROR"\nkind = "sigma"\n'))
    with fits.open(path) as h:
        d = h[1].data
        _check(g, 0, np.asarray(d["WAVE"][0], dtype=np.float64), d["FLUX"][0], d["ERROR"][0])


def test_unnamed_extensions_are_said_then_mapped(tmp_path, real):
    """linetools' SDSS spectrum: DC-FLAG 1-D flux, then unnamed sigma, log10 wavelength and mask HDUs.
    Auto-detected, the flux is stored and the report says which HDUs were not read; the mapping reads all."""
    path = real["SDSSJ220248.31+123656.3.fits"]
    g, report = _ingest(tmp_path, path)
    notes = report["odd_files"][0]["notes"]
    assert [n.split(" has ")[0] for n in notes] == [f"unread-extension: HDU {k} (no EXTNAME, EXTVER 1; image 4646)"
                                                      for k in (1, 2, 3)]
    assert g.attrs["input_oddities"]["unread-extension"]["files"] == 1
    with fits.open(path) as h:
        flux, sig, logw = h[0].data, h[1].data, h[2].data.astype(np.float64)
        np.testing.assert_allclose(10.0 ** _wcs(h[0].header, flux.size), 10.0**logw, rtol=1e-6)
        _check(g, 0, 10.0 ** _wcs(h[0].header, flux.size), flux)
    g, _ = _ingest(tmp_path, path, *_mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nhdu = 2\nlog10 = true\n'
                                                         'unit = "Angstrom"\n[uncertainty]\nhdu = 1\nkind = "sigma"\n'))
    _check(g, 0, 10.0**logw, flux, sig)


def test_a_data_unit_that_fails_its_datasum_is_refused_not_its_blank_warning(tmp_path, real):
    """MPDAF's IRAF-made sample: BLANK on a float image (a warning, accepted) and a data unit that no longer
    matches its DATASUM (real damage by the policy: refused, whatever --strict says)."""
    path = real["Spectrum_Variance.fits"]
    out = _ingest(tmp_path, path, ok=False)
    assert f"{tmp_path / 'in' / path.name}: HDU 0: DATASUM mismatch" in out and "BLANK" not in out
