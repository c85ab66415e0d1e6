"""Real ESO, APOGEE and DESI files (fetched at test time, pinned by SHA-256, read in place): each ingests
into a store that passes `validate`, with flux, wavelength, uncertainty and mask equal to a reading of the
file with astropy alone; all of them together, with the SDSS files, make one valid store."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from astropy.io import fits

from tests.helpers import run_cli
from tests.realdata.fetch import FILES, fetch_or_skip

pytestmark = pytest.mark.realdata

ESO = ["legac_M19_56670_v3.0.fits"]
APOGEE = ["apStar-dr17-2M17335483-2753043.fits", "apStar-dr17-2M19485057+5005279.fits",
          "apVisit-r13-5095-55844-128.fits", "apVisit-r13-9518-57729-104.fits"]
DESI = ["coadd-5-169-thru20210419.fits", "coadd-sv3-dark-26065.fits", "spectra-5-169-thru20210419.fits",
        "spectra-sv3-dark-26065.fits", "coadd-4-80613-thru20210324.fits", "coadd-special-dark-27247.fits"]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return fetch_or_skip(ESO + APOGEE + DESI)


def _ingest(tmp_path, files, dask_scheduler, name="real"):
    d = tmp_path / name
    d.mkdir()
    for f in files:
        os.symlink(f, d / f.name)
    out, rep = tmp_path / f"{name}.zarr", tmp_path / f"{name}.json"
    r = run_cli("ingest", d, "-o", out, "--scheduler", dask_scheduler, "--report", rep)
    assert r.exit_code == 0, r
    assert run_cli("validate", out).exit_code == 0
    return zarr.open_group(out, mode="r"), json.loads(rep.read_text())


def _rows(g):
    return [os.path.basename(str(p)) for p in g["metadata/source_path"][:]], g["metadata/source_row"][:]


def test_eso_sdp_legac(tmp_path, real, dask_scheduler):
    g, _ = _ingest(tmp_path, [real[n] for n in ESO], dask_scheduler)
    assert str(g["metadata/format"][0]) == "eso-sdp"
    with fits.open(real[ESO[0]]) as h:
        d = h[1].data
        wave, flux, err, qual = (np.asarray(d[c][0]) for c in ("WAVE", "FLUX", "ERR", "QUAL"))
    n = wave.size
    np.testing.assert_array_equal(g["signal/wavelength"][:n], wave.astype(np.float64))  # TUNIT angstrom
    np.testing.assert_array_equal(g["signal/flux_raw"][0, :n], flux.astype(np.float32))
    np.testing.assert_array_equal(g["signal/uncertainty_raw"][0, :n], err.astype(np.float32))
    np.testing.assert_array_equal(g["signal/mask_raw"][0, :n], qual)
    assert g["signal/mask_raw"].attrs["source_conventions"] == ["ESO SDP QUAL"]
    assert g["signal/flux_raw"].attrs["units"] == "1e-19 erg / (Angstrom s cm2)"
    assert g["signal/flux_raw"].attrs["units_source"] == "10**(-19).erg.cm**(-2).s**(-1).angstrom**(-1)"


def test_eso_sdp_per_pixel_columns_no_role_takes_are_named_in_the_report(tmp_path, dask_scheduler):
    """X-shooter XQ-100: FLUX, ERR_FLUX and CONTINUUM are read; the telluric-corrected FLUX_TELL_CORR and
    ERR_FLUX_TELL_CORR are not stored, and the report's `unread` says so (they were dropped silently)."""
    from tests.realdata.fetch import ESO_EXTRA_FILES

    path = fetch_or_skip(list(ESO_EXTRA_FILES))["XShooter_XQ100.fits.gz"]
    g, report = _ingest(tmp_path, [path], dask_scheduler, name="xq100")
    assert str(g["metadata/format"][0]) == "eso-sdp"
    with fits.open(path) as h:
        d = h[1].data
        flux, err, cont = (np.asarray(d[c][0]) for c in ("FLUX", "ERR_FLUX", "CONTINUUM"))
    np.testing.assert_array_equal(g["signal/flux_raw"][0, : flux.size], flux.astype(np.float32))
    np.testing.assert_array_equal(g["signal/uncertainty_raw"][0, : err.size], err.astype(np.float32))
    np.testing.assert_array_equal(g["continuum/continuum_model"][0, : cont.size], cont.astype(np.float32))
    (unread,) = report["unread"]
    assert (unread["hdu"], unread["extname"]) == (1, "SPECTRUM")
    assert unread["what"] == "columns FLUX_TELL_CORR, ERR_FLUX_TELL_CORR, 9771 values a row as FLUX"


def test_apogee_apstar_and_apvisit(tmp_path, real, dask_scheduler):
    g, report = _ingest(tmp_path, [real[n] for n in APOGEE], dask_scheduler)
    names, srows = _rows(g)
    assert report["counts"]["spectra_dropped_no_data"] == 1  # the single-visit apStar's placeholder row
    wave2d = g["signal/wavelength"]
    seen = set()
    for row, (name, s) in enumerate(zip(names, srows, strict=True)):
        with fits.open(real[name]) as h:
            if name.startswith("apStar"):
                hd = h[1].header
                n = hd["NAXIS1"]
                wave = 10.0 ** (hd["CRVAL1"] + (np.arange(1, n + 1) - hd["CRPIX1"]) * hd["CDELT1"])
                flux, err, mask = h[1].data[s], h[2].data[s], h[3].data[s]
            else:
                order = np.argsort(h[4].data.ravel())
                wave = h[4].data.ravel()[order]
                flux, err, mask = (h[k].data.ravel()[order] for k in (1, 2, 3))
                n = wave.size
                assert s == 0 and np.all(np.diff(wave) > 0)
        np.testing.assert_allclose(wave2d[row, :n], wave, rtol=1e-12)
        np.testing.assert_array_equal(g["signal/flux_raw"][row, :n], flux.astype(np.float32))
        np.testing.assert_array_equal(g["signal/uncertainty_raw"][row, :n], err.astype(np.float32))
        np.testing.assert_array_equal(g["signal/mask_raw"][row, :n], mask)
        seen.add((name, int(s)))
    assert len(seen) == 5 + 1 + 2
    labels = [str(x) for x in g["metadata/apogee_row"][:]]
    assert labels.count("combined") == 2 and labels.count("visit") == 2 and "visit-3" in labels


def test_desi_coadd_and_spectra(tmp_path, real, dask_scheduler):
    g, report = _ingest(tmp_path, [real[n] for n in DESI], dask_scheduler)
    names, srows = _rows(g)
    arms = [str(a) for a in g["metadata/arm"][:]]
    wave2d = g["signal/wavelength"]
    dropped = 0
    for name in DESI:
        with fits.open(real[name]) as h:
            fm = h["FIBERMAP"].data
            for target in range(len(fm)):
                for a, arm in enumerate("BRZ"):
                    ivar = h[f"{arm}_IVAR"].data[target]
                    hits = [r for r, (n, s) in enumerate(zip(names, srows, strict=True))
                            if n == name and s == target * 3 + a]
                    if not np.any(ivar > 0):
                        assert hits == []  # no data at all: left out
                        dropped += 1
                        continue
                    (row,) = hits
                    wave = h[f"{arm}_WAVELENGTH"].data
                    n = wave.size
                    assert arms[row] == arm
                    assert str(g["metadata/fibermap_targetid"][row]) == str(int(fm["TARGETID"][target]))
                    assert float(g["metadata/ra"][row]) == float(fm["TARGET_RA"][target])
                    np.testing.assert_array_equal(wave2d[row, :n], wave.astype(np.float64))
                    np.testing.assert_array_equal(g["signal/flux_raw"][row, :n],
                                                  h[f"{arm}_FLUX"].data[target].astype(np.float32))
                    with np.errstate(divide="ignore"):
                        sigma = np.where(ivar > 0, 1 / np.sqrt(ivar), np.nan).astype(np.float32)
                    np.testing.assert_allclose(g["signal/uncertainty_raw"][row, :n], sigma, rtol=1e-6,
                                               equal_nan=True)
                    np.testing.assert_array_equal(g["signal/mask_raw"][row, :n], h[f"{arm}_MASK"].data[target])
    assert report["counts"]["spectra_dropped_no_data"] == dropped
    assert g["signal/flux_raw"].shape[0] + dropped == sum(3 * len(fits.getdata(real[n], "FIBERMAP")) for n in DESI)


def test_every_real_format_in_one_store(tmp_path, real, dask_scheduler):
    everything = {**real, **fetch_or_skip(["NGC3073_SDSS_DR18.fits", "NGC3522_SDSS_DR18.fits",
                                            "spec-0266-51602-0031.fits", "NGC4550_SAURON.fits"])}
    assert set(everything) <= set(FILES)
    g, report = _ingest(tmp_path, list(everything.values()), dask_scheduler, name="all")
    formats = {str(f) for f in g["metadata/format"][:]}
    assert formats == {"eso-sdp", "apogee-apstar", "apogee-apvisit", "desi", "sdss-coadd", "wcs-1d"}
    assert report["plan"]["formats"]["desi"]["files"] == 6
    params = g["params"]
    names, _ = _rows(g)
    r = names.index("NGC3522_SDSS_DR18.fits")
    assert float(params["z"][r]) == pytest.approx(0.0040180134, rel=1e-6)
    assert str(g["metadata/class"][r]) == "GALAXY"
