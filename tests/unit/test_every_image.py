"""Every science image a file holds is stored: files of repeated exposures (EXTNAME `SCI`, EXTVER 1..n, each
with the `ERR` and `DQ` of its EXTVER, as HST/JWST calibrated products carry them) for each image reader
(wcs-1d, image-2d, image-arrays, iraf-equispec, iraf-multispec). Rows == spectra the file holds, each saying
its HDU and its row there; values equal to astropy's own reading of the file; what cannot be paired, or
units that differ, refuse the file naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import BadFileError
from shardmerge.headers import HeaderRules
from shardmerge.readers import get_reader, open_fits
from shardmerge.scan import scan_file
from shardmerge.testing import surveys as ss
from tests.helpers import run_cli

RULES = HeaderRules((), ())
N_PIX = 40


def _wcs(crval: float = 4000.0, extver: int = 1, unit: str = "erg/s/cm2/Angstrom") -> fits.Header:
    return fits.Header({"CRVAL1": crval, "CDELT1": 2.0, "CRPIX1": 1.0, "CUNIT1": "Angstrom", "CTYPE1": "WAVE",
                        "EXTVER": extver, "BUNIT": unit})


def _exposures(path, shape: tuple[int, ...], n: int = 3, *, crvals=None, err=True, dq=True, units=None,
               skip_err: int | None = None) -> None:
    """A primary and, per exposure v = 1..n, SCI (with a WCS), ERR and DQ images of EXTVER v, grouped by kind
    (all SCI, then all ERR, then all DQ), as STScI pipelines write them."""
    rng = np.random.default_rng(7)
    sci, errs, dqs = [], [], []
    for v in range(1, n + 1):
        crval = crvals[v - 1] if crvals else 4000.0
        unit = units[v - 1] if units else "erg/s/cm2/Angstrom"
        sci.append(fits.ImageHDU(rng.normal(10.0 * v, 1.0, shape).astype(np.float32), _wcs(crval, v, unit), "SCI"))
        if err and v != skip_err:
            errs.append(fits.ImageHDU(np.full(shape, 0.1 * v, dtype=np.float32), fits.Header({"EXTVER": v}), "ERR"))
        if dq:
            flags = (rng.random(shape) < 0.2).astype(np.int16) * (2 ** (v % 4))
            dqs.append(fits.ImageHDU(flags, fits.Header({"EXTVER": v}), "DQ"))
    fits.HDUList([fits.PrimaryHDU(), *sci, *errs, *dqs]).writeto(path)


def _by_astropy(path) -> dict[int, dict[str, np.ndarray]]:
    """{EXTVER: flux, err, dq (rows, pixels), crval} as astropy reads them, by EXTNAME and EXTVER."""
    out = {}
    with fits.open(path) as h:
        for hdu in h[1:]:
            if hdu.name == "SCI":
                v = hdu.header["EXTVER"]
                out[v] = {"flux": np.atleast_2d(hdu.data), "crval": hdu.header["CRVAL1"]}
                for name in ("ERR", "DQ"):
                    if (name, v) in h:
                        out[v][name] = np.atleast_2d(h[name, v].data)
    return out


def _read(path, name: str):
    reader = get_reader(name)
    with open_fits(str(path)) as hdul:
        layout = reader.layout(str(path), hdul)
        return layout, reader.read(str(path), hdul, layout, 0, layout.n_spectra), reader.row_metadata(
            hdul, layout, 0, layout.n_spectra)


@pytest.mark.parametrize(("name", "shape"), [("wcs-1d", (N_PIX,)), ("image-2d", (2, N_PIX))])
def test_every_sci_exposure_is_stored_with_its_err_and_dq(tmp_path, name, shape):
    p = tmp_path / "exposures.fits"
    _exposures(p, shape, crvals=[4000.0, 4000.0, 4100.0])  # the third exposure has a grid of its own
    truth = _by_astropy(p)
    rows = 1 if len(shape) == 1 else shape[0]
    scan = scan_file(str(p), None, RULES)
    assert (scan.format, scan.n_spectra, scan.mask_convention) == (name, 3 * rows, "DQ extension")
    assert scan.notes == ()  # every SCI, ERR and DQ is read: nothing reported unread
    assert set(scan.metadata_keys) >= {"source_extname", "source_extver", "source_hdu_row"}
    layout, block, meta = _read(p, name)
    assert len(layout.grids) == 2
    for k in range(layout.n_spectra):
        v, r = k // rows + 1, k % rows
        assert (layout.hdu_of(k), int(layout.source_rows[k])) == (v, r)  # SCI v is HDU v
        assert (meta[k]["source_extname"], meta[k]["source_extver"], meta[k]["source_hdu_row"]) == ("SCI", str(v),
                                                                                                   str(r))
        np.testing.assert_array_equal(block.flux[k], truth[v]["flux"][r])
        np.testing.assert_array_equal(block.uncertainty[k], truth[v]["ERR"][r])
        np.testing.assert_array_equal(block.mask[k], truth[v]["DQ"][r].astype(np.uint32))
        np.testing.assert_allclose(layout.grids[layout.grid_of[k]], truth[v]["crval"] + 2.0 * np.arange(N_PIX))


def test_a_single_sci_image_reads_as_before_with_its_dq(tmp_path):
    p = tmp_path / "one.fits"
    _exposures(p, (N_PIX,), n=1)
    truth = _by_astropy(p)
    layout, block, meta = _read(p, "wcs-1d")
    assert layout.n_spectra == 1 and not layout.spans_hdus and "source_extver" not in meta[0]
    np.testing.assert_array_equal(block.flux[0], truth[1]["flux"][0])
    np.testing.assert_array_equal(block.uncertainty[0], truth[1]["ERR"][0])
    np.testing.assert_array_equal(block.mask[0], truth[1]["DQ"][0])


@pytest.mark.timeout(120)
def test_an_ingest_stores_every_exposure_and_validates(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    _exposures(d / "exposures.fits", (N_PIX,), crvals=[4000.0, 4000.0, 4100.0])
    truth = _by_astropy(d / "exposures.fits")
    with fits.open(d / "exposures.fits") as h:  # a second file with two images of other kinds: left unread
        fits.HDUList([fits.PrimaryHDU(), h[1].copy(), fits.ImageHDU(np.ones(7, np.float32), name="RAW"),
                      fits.ImageHDU(np.ones(9, np.float32), name="SKY")]).writeto(d / "other.fits")
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", d, "-o", out, "--workers", "0", "--report", rep)
    assert r.exit_code == 0, r
    report = json.loads(rep.read_text())
    assert report["unread_per_file"] == {str(d / "other.fits"): 2}  # the run report counts them per file
    assert [(e["hdu"], e["extname"]) for e in report["unread"]] == [(2, "RAW"), (3, "SKY")]
    assert run_cli("validate", out).exit_code == 0
    g = zarr.open_group(out, mode="r")
    assert g["signal/flux_raw"].shape[0] == 4  # exposures.fits's three, other.fits's one
    assert list(g["metadata/source_extver"][:3]) == ["1", "2", "3"]
    np.testing.assert_array_equal(g["metadata/source_hdu"][:], [1, 2, 3, 1])
    for k in range(3):
        np.testing.assert_array_equal(g["signal/flux_raw"][k, :N_PIX], truth[k + 1]["flux"][0])
        np.testing.assert_array_equal(g["signal/mask_raw"][k, :N_PIX], truth[k + 1]["DQ"][0])


def test_an_err_for_some_exposures_only_refuses_naming_them(tmp_path):
    p = tmp_path / "unpaired.fits"
    _exposures(p, (N_PIX,), skip_err=2)
    with pytest.raises(BadFileError, match=r"2 of its 3 science images have an uncertainty.*HDU 2 \(SCI, EXTVER 2\)"):
        scan_file(str(p), None, RULES)


def test_exposures_in_different_units_refuse_naming_them(tmp_path):
    p = tmp_path / "units.fits"
    _exposures(p, (N_PIX,), units=["erg/s/cm2/Angstrom", "erg/s/cm2/Angstrom", "Jy"])
    with pytest.raises(BadFileError, match=r"different units .*'Jy' in HDU 3"):
        scan_file(str(p), None, RULES)


def test_a_sci_image_the_reader_cannot_read_refuses_the_file(tmp_path):
    p = tmp_path / "nowcs.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones(N_PIX, dtype=np.float32), _wcs(), "SCI"),
                  fits.ImageHDU(np.ones(N_PIX, dtype=np.float32), fits.Header({"EXTVER": 2}), "SCI")]).writeto(p)
    with pytest.raises(BadFileError, match=r"HDU 2 \(SCI, EXTVER 2\) is a SCI image like HDU 1"):
        scan_file(str(p), None, RULES)


def test_image_arrays_pairs_wavelength_error_and_dq_by_extver(tmp_path):
    p = tmp_path / "arrays.fits"
    rng = np.random.default_rng(3)
    hdus = [fits.PrimaryHDU()]
    for kind in ("FLUX", "WAVELENGTH", "ERROR", "DQ"):
        for v in (1, 2):
            if kind == "FLUX":
                data = rng.normal(5.0 * v, 1.0, (2, N_PIX)).astype(np.float32)
            elif kind == "WAVELENGTH":
                data = 5000.0 + 1000.0 * v + np.arange(N_PIX, dtype=np.float64)
            elif kind == "ERROR":
                data = np.full((2, N_PIX), 0.5 * v, dtype=np.float32)
            else:
                data = (rng.random((2, N_PIX)) < 0.3).astype(np.int32) * v
            header = fits.Header({"EXTVER": v, **({"BUNIT": "Angstrom"} if kind == "WAVELENGTH" else {})})
            hdus.append(fits.ImageHDU(data, header, kind))
    fits.HDUList(hdus).writeto(p)
    scan = scan_file(str(p), None, RULES)
    assert (scan.format, scan.n_spectra, scan.notes) == ("image-arrays", 4, ())
    layout, block, meta = _read(p, "image-arrays")
    with fits.open(p) as h:
        for k in range(4):
            v, r = k // 2 + 1, k % 2
            assert (meta[k]["source_extver"], meta[k]["source_hdu_row"]) == (str(v), str(r))
            np.testing.assert_array_equal(block.flux[k], h["FLUX", v].data[r])
            np.testing.assert_array_equal(block.uncertainty[k], h["ERROR", v].data[r])
            np.testing.assert_array_equal(block.mask[k], h["DQ", v].data[r])
            np.testing.assert_array_equal(layout.grids[layout.grid_of[k]], h["WAVELENGTH", v].data)


def test_image_arrays_refuses_a_flux_without_its_wavelength(tmp_path):
    p = tmp_path / "nowave.fits"
    wave, wave3 = fits.Header({"EXTVER": 1, "BUNIT": "Angstrom"}), fits.Header({"EXTVER": 3, "BUNIT": "Angstrom"})
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones(N_PIX, np.float32), fits.Header({"EXTVER": 1}), "FLUX"),
                  fits.ImageHDU(np.ones(N_PIX, np.float32), fits.Header({"EXTVER": 2}), "FLUX"),
                  fits.ImageHDU(np.arange(N_PIX, dtype=np.float64) + 4000, wave, "WAVELENGTH"),
                  fits.ImageHDU(np.arange(N_PIX, dtype=np.float64) + 5000, wave3, "WAVELENGTH")]).writeto(p)
    with pytest.raises(BadFileError, match=r"0 WAVELENGTH images have the EXTVER of flux image HDU 2"):
        scan_file(str(p), None, RULES)


def _as_extensions(made: str, path, scale=(1.0, 2.0)) -> None:
    """The primary image of a generated IRAF file as SPEC EXTVER 1, 2 (the second's values scaled)."""
    with fits.open(made) as h:
        data, header = h[0].data, h[0].header
        hdus = [fits.PrimaryHDU()]
        for v, s in enumerate(scale, start=1):
            hdr = header.copy()
            hdr["EXTVER"] = v
            hdus.append(fits.ImageHDU((data * s).astype(np.float32), hdr, "SPEC"))
        fits.HDUList(hdus).writeto(path)


@pytest.mark.parametrize("name", ["iraf-equispec", "iraf-multispec"])
def test_iraf_images_of_every_extver_are_stored(tmp_path, name):
    made = tmp_path / "made.fits"
    if name == "iraf-equispec":
        ss.make_iraf_equispec_bands(made, n_ap=2, n_pix=300)
    else:
        ss.make_iraf_multispec(made, n_ap=2, n_pix=400)
    p = tmp_path / "two.fits"
    _as_extensions(str(made), p)
    scan = scan_file(str(p), None, RULES)
    assert (scan.format, scan.n_spectra) == (name, 4)
    layout, block, meta = _read(p, name)
    sigma_band = 3 if name == "iraf-equispec" else 1
    with fits.open(p) as h:
        for k in range(4):
            v, a = k // 2 + 1, k % 2
            assert (layout.hdu_of(k), meta[k]["source_extver"], meta[k]["source_hdu_row"]) == (v, str(v), str(a))
            n = layout.n_pix(k)
            np.testing.assert_array_equal(block.flux[k, :n], h["SPEC", v].data[0, a, :n])
            np.testing.assert_array_equal(block.uncertainty[k, :n], h["SPEC", v].data[sigma_band, a, :n])
        assert np.all(np.isnan(block.flux[1, layout.n_pix(1):]))  # multispec: the short aperture stays padded
