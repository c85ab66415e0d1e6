"""Every spectrum a file holds is stored, one row each, saying which HDU (index, EXTNAME, EXTVER) and which
row of it the spectrum came from; data that no reader consumed is said in the run report (`unread`), and
`--strict unread-extension` refuses the file. Files built from the published data models (HST STIS `x1d`:
one `SCI` BINTABLE per exposure, EXTVER 1..n, rows SPORDER/NELEM/WAVELENGTH/FLUX/ERROR/DQ)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import BadFileError
from shardmerge.headers import HeaderRules
from shardmerge.readers.oddities import parse_unread, unread_entries, unread_note
from shardmerge.scan import scan_file
from shardmerge.testing.surveys import make_lamost_mrs
from tests.helpers import run_cli

RULES = HeaderRules((), ())
N_PIX = 64


def _sci(rows: int, extver: int, seed: int, flux_unit: str = "erg/s/cm**2/Angstrom",
         name: str = "SCI") -> tuple[fits.BinTableHDU, list[dict]]:
    """One x1d SCI table: a row per spectral order, array columns of N_PIX."""
    rng = np.random.default_rng(seed)
    wave = np.stack([1150.0 + 100.0 * r + 0.05 * extver + np.arange(N_PIX) * 0.5 for r in range(rows)])
    flux = rng.normal(1e-14, 1e-15, (rows, N_PIX)).astype(np.float32)
    err = np.abs(rng.normal(1e-16, 1e-17, (rows, N_PIX))).astype(np.float32)
    cols = [fits.Column("SPORDER", "1I", array=np.arange(rows) + 1),
            fits.Column("NELEM", "1I", array=np.full(rows, N_PIX)),
            fits.Column("WAVELENGTH", f"{N_PIX}D", unit="Angstroms", array=wave),
            fits.Column("FLUX", f"{N_PIX}E", unit=flux_unit, array=flux),
            fits.Column("ERROR", f"{N_PIX}E", unit=flux_unit, array=err),
            fits.Column("DQ", f"{N_PIX}I", array=np.zeros((rows, N_PIX), dtype=np.int16))]
    hdu = fits.BinTableHDU.from_columns(cols, name=name)
    hdu.header["EXTVER"] = extver
    hdu.header["EXPTIME"] = 100.0 * extver
    return hdu, [{"wave": wave[r], "flux": flux[r], "sigma": err[r], "extver": extver, "row": r} for r in range(rows)]


def _x1d(path, rows=(2, 3, 1), extra=()) -> list[dict]:
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "HST", "INSTRUME": "STIS", "TARGNAME": "SYNTH", "NEXTEND": len(rows)})
    hdus, truth = [primary], []
    for v, n in enumerate(rows, start=1):
        hdu, t = _sci(n, v, seed=v)
        hdus.append(hdu)
        truth += [{**x, "hdu": len(hdus) - 1} for x in t]
    fits.HDUList([*hdus, *extra]).writeto(path)
    return truth


def _ingest(tmp_path, *files, extra=(), ok=True):
    d = tmp_path / "in"
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", d, "-o", out, "--workers", "0", "--report", rep, "--overwrite", *extra)
    if not ok:
        return r, None, json.loads(rep.read_text()) if rep.exists() else None
    assert r.exit_code == 0, r
    assert run_cli("validate", out).exit_code == 0
    return r, zarr.open_group(out, mode="r"), json.loads(rep.read_text())


@pytest.mark.timeout(120)
def test_every_exposure_of_an_x1d_is_stored_with_its_hdu_and_row(tmp_path):
    (tmp_path / "in").mkdir()
    truth = _x1d(tmp_path / "in" / "o1_x1d.fits")
    _, g, report = _ingest(tmp_path)
    n = len(truth)
    assert g["signal/flux_raw"].shape[0] == n == 6  # 2 + 3 + 1: every SCI table, not only the first
    np.testing.assert_array_equal(g["metadata/source_hdu"][:], [t["hdu"] for t in truth])
    np.testing.assert_array_equal(g["metadata/source_row"][:], np.arange(n))  # the spectrum's index in the file
    assert list(g["metadata/source_hdu_row"][:]) == [str(t["row"]) for t in truth]
    assert list(g["metadata/source_extname"][:]) == ["SCI"] * n
    assert list(g["metadata/source_extver"][:]) == [str(t["extver"]) for t in truth]
    np.testing.assert_array_equal(g["metadata/exptime"][:], [100.0 * t["extver"] for t in truth])  # its own HDU's
    wave = g["signal/wavelength"]
    for row, t in enumerate(truth):
        np.testing.assert_array_equal(wave[row, :N_PIX] if wave.ndim == 2 else wave[:N_PIX], t["wave"])
        np.testing.assert_array_equal(g["signal/flux_raw"][row, :N_PIX], t["flux"])
        np.testing.assert_array_equal(g["signal/uncertainty_raw"][row, :N_PIX], t["sigma"])
    assert report["unread"] == []


def test_one_table_file_keeps_its_metadata_columns(tmp_path):
    """A single SCI table: no source_extname columns (nothing to tell apart), rows as before."""
    p = tmp_path / "one.fits"
    _x1d(p, rows=(3,))
    scan = scan_file(str(p), None, RULES)
    assert (scan.format, scan.n_spectra, scan.notes) == ("table-1d", 3, ())
    assert "source_extname" not in scan.metadata_keys


def test_tables_of_different_flux_units_are_refused_naming_them(tmp_path):
    p = tmp_path / "mixed.fits"
    a, _ = _sci(2, 1, 1)
    b, _ = _sci(2, 2, 2, flux_unit="Jy")
    fits.HDUList([fits.PrimaryHDU(), a, b]).writeto(p)
    with pytest.raises(BadFileError, match=r"different units .*'Jy' in HDU 2"):
        scan_file(str(p), None, RULES)


@pytest.mark.timeout(120)
def test_a_table_of_another_kind_is_reported_unread_and_refused_under_strict(tmp_path):
    (tmp_path / "in").mkdir()
    other, _ = _sci(2, 1, 9, name="BKG")
    _x1d(tmp_path / "in" / "o2_x1d.fits", rows=(1, 1), extra=(other,))
    _, g, report = _ingest(tmp_path)
    assert g["signal/flux_raw"].shape[0] == 2
    (entry,) = report["unread"]
    assert entry["path"].endswith("o2_x1d.fits")
    assert (entry["hdu"], entry["extname"], entry["extver"], entry["what"]) == (3, "BKG", 1, "table of 2 rows")
    assert "not stored" in entry["why"]
    r, _, _ = _ingest(tmp_path, extra=("--strict", "unread-extension"), ok=False)
    assert r.exit_code != 0
    assert "HDU 3" in r.output and "BKG" in r.output and "--strict unread-extension" in r.output


def test_a_second_science_image_is_stored_and_another_kind_reported(tmp_path):
    """wcs-1d stores every SCI image (EXTVER 1..n: tests/unit/test_every_image.py); an image of another kind
    is data no reader consumed: said, per HDU."""
    p = tmp_path / "two_sci.fits"
    hdr = fits.Header({"CRVAL1": 4000.0, "CDELT1": 1.0, "CRPIX1": 1.0, "CUNIT1": "Angstrom", "EXTVER": 1})
    second = hdr.copy()
    second["EXTVER"] = 2
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones(50, dtype=np.float32), header=hdr, name="SCI"),
                  fits.ImageHDU(np.full(50, 2.0, dtype=np.float32), header=second, name="SCI"),
                  fits.ImageHDU(np.full(60, 3.0, dtype=np.float32), name="RAW"),
                  fits.ImageHDU(np.zeros((0,), dtype=np.float32), name="EMPTY")]).writeto(p)
    scan = scan_file(str(p), None, RULES)
    assert scan.n_spectra == 2
    (entry,) = unread_entries(str(p), scan.notes)  # the empty HDU holds no data: not reported
    assert (entry["hdu"], entry["extname"], entry["extver"], entry["what"]) == (3, "RAW", 1, "image 60")
    with pytest.raises(BadFileError, match="--strict unread-extension"):
        scan_file(str(p), None, RULES, frozenset({"unread-extension"}))


@pytest.mark.timeout(120)
def test_lamost_mrs_rows_name_their_own_table(tmp_path):
    (tmp_path / "in").mkdir()
    _, truth = make_lamost_mrs(tmp_path / "in" / "mrs.fits", n_epochs=1, n_pix=200)
    _, g, report = _ingest(tmp_path)
    assert g["signal/flux_raw"].shape[0] == len(truth) == 4
    np.testing.assert_array_equal(g["metadata/source_hdu"][:], [1, 2, 3, 4])  # was 1 for every row
    assert list(g["metadata/source_extname"][:]) == [t["hdu"] for t in truth]
    assert list(g["metadata/source_hdu_row"][:]) == ["0"] * 4
    assert report["unread"] == []


@pytest.mark.parametrize("name", ["SCI", "", 'we"ird) name', "ÄNDERUNG"])
def test_unread_notes_read_back(name):
    text = unread_note(7, name, 3, "table of 2 rows (x)", "not stored")
    assert parse_unread(text) == {"hdu": 7, "extname": name, "extver": 3, "what": "table of 2 rows [x]",
                                  "why": "not stored"}
    assert unread_entries("f", [f"unread-extension: {text}", "fits-warning: x"]) == [
        {"path": "f", "hdu": 7, "extname": name, "extver": 3, "what": "table of 2 rows [x]", "why": "not stored"}]
