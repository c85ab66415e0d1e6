"""Spectral-axis conventions of real archives (issue 26): frequency and velocity axes converted to wavelength,
'WAVE-LOG' in its two readings, a stale CUNIT1 beside IRAF's WAT1 unit, string-valued BSCALE/BZERO. Each
file is built from the published convention; wavelengths are compared with an independent astropy reading
(astropy.wcs, astropy.units equivalencies) in Angstrom, and the stored values bit for bit with the plain
IEEE arithmetic they are defined by."""

from __future__ import annotations

import json
import warnings

import astropy.units as u
import numpy as np
import pytest
import zarr
from astropy.io import fits
from astropy.wcs import WCS

from shardmerge.config import FormatChoice
from shardmerge.errors import BadFileError
from shardmerge.headers import load_header_rules
from shardmerge.readers import get_reader, open_fits
from shardmerge.readers.mapping import mapping_ref
from shardmerge.reading import open_store
from shardmerge.scan import scan_file
from tests.helpers import run_cli

RULES = load_header_rules()
C_AA = 2.99792458e18


def read_with(path, choice):
    reader = get_reader(choice) if isinstance(choice, str) else get_reader(choice.name, choice.mapping)
    with open_fits(str(path)) as hdul:
        layout = reader.layout(str(path), hdul)
        return layout, reader.read(str(path), hdul, layout, 0, layout.n_spectra)


def mapping(tmp_path, text: str) -> FormatChoice:
    m = tmp_path / f"m{len(list(tmp_path.glob('m*.toml')))}.toml"
    m.write_text(text)
    return FormatChoice("mapping", mapping_ref(str(m)))


def image(path, cards: dict, n_pix: int = 400, data: np.ndarray | None = None, extra: list | None = None):
    flux = np.random.default_rng(1).normal(1.0, 0.1, n_pix).astype(np.float32) if data is None else data
    hdu = fits.PrimaryHDU(flux)
    for k, v in cards.items():
        hdu.header[k] = v
    fits.HDUList([hdu, *(extra or [])]).writeto(path)
    return path, flux


def astropy_wavelength(path, equivalencies=None) -> np.ndarray:
    """Axis 1 as astropy.wcs (wcslib) reads it, in SI, then to Angstrom with astropy.units."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = fits.getheader(path)
        w = WCS(header, naxis=1)
    world = w.pixel_to_world_values(np.arange(header["NAXIS1"]))
    unit = u.Unit(w.wcs.cunit[0])
    return (world * unit).to(u.AA, equivalencies=equivalencies or u.spectral()).value


# --- frequency axes ---------------------------------------------------------------------------------------

def test_a_frequency_axis_is_converted_to_wavelength_and_its_pixels_reversed(tmp_path):
    """CTYPE1 = 'FREQ' (a sub-mm line, GHz, frequency increasing): lambda = c/nu in Angstrom, increasing,
    the flux reversed with it and kept per frequency as in the source; said in the scan's notes."""
    p, flux = image(tmp_path / "freq.fits", {"CTYPE1": "FREQ", "CUNIT1": "GHz", "CRVAL1": 230.538, "CDELT1": 0.0005,
                                             "CRPIX1": 200.0, "BUNIT": "Jy", "RESTFRQ": 230.538e9})
    scan = scan_file(str(p), None, RULES)
    assert scan.format == "wcs-1d" and scan.flux_unit == "Jy"
    (note,) = [n for n in scan.notes if n.startswith("frequency-axis:")]
    assert "lambda = c/nu" in note and "pixels reversed" in note and "flux kept as in the source" in note
    layout, block = read_with(p, "wcs-1d")
    wave = layout.grids[0]
    expected = astropy_wavelength(p)[::-1]
    np.testing.assert_allclose(wave, expected, rtol=1e-14)
    assert np.all(np.diff(wave) > 0)
    # bit for bit: c / (nu * 1e9), two correctly rounded IEEE operations, whatever the CPU
    nu = [230.538 + (k + 1 - 200.0) * 0.0005 for k in range(400)]
    assert wave.tobytes() == np.array([C_AA / (x * 1e9) for x in nu][::-1]).tobytes()
    np.testing.assert_array_equal(block.flux[0], flux[::-1])


def test_a_decreasing_frequency_axis_keeps_its_pixel_order(tmp_path):
    p, flux = image(tmp_path / "down.fits", {"CTYPE1": "FREQ-LSR", "CRVAL1": 1.420405752e9, "CDELT1": -2.0e4,
                                             "CRPIX1": 1.0})
    layout, block = read_with(p, "wcs-1d")
    np.testing.assert_allclose(layout.grids[0], astropy_wavelength(p), rtol=1e-14)  # CUNIT1 absent: Hz
    assert "pixel order kept" in layout.notes[0][1]
    np.testing.assert_array_equal(block.flux[0], flux)


def test_a_frequency_axis_ingests_reversed_and_the_report_says_so(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    n = 300
    sigma = np.full(n, 0.05, dtype=np.float32)
    sigma[:10] = 0.5  # the low-frequency end, which becomes the long-wavelength end
    err = fits.ImageHDU(sigma, name="ERR")
    p, flux = image(folder / "radio.fits", {"CTYPE1": "FREQ", "CUNIT1": "MHz", "CRVAL1": 1420.0, "CDELT1": 0.01,
                                            "CRPIX1": 1.0, "BUNIT": "K"}, n_pix=n, extra=[err])
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", folder, "-o", out, "--workers", "0", "--report", rep)
    assert r.exit_code == 0, r
    with open_store(out) as store:
        row = store[0]
        np.testing.assert_allclose(row.wavelength, astropy_wavelength(p)[::-1], rtol=1e-14)
        np.testing.assert_array_equal(row.flux, flux[::-1])
        np.testing.assert_array_equal(row.uncertainty, sigma[::-1])
    report = json.loads(rep.read_text())
    (odd,) = report["odd_files"]
    assert any(x.startswith("frequency-axis:") and "MHz" in x for x in odd["notes"])
    assert zarr.open_group(out, mode="r").attrs["input_oddities"]["frequency-axis"]["files"] == 1

    r = run_cli("ingest", folder, "-o", tmp_path / "strict.zarr", "--workers", "0", "--strict", "frequency-axis")
    assert r.exit_code == 3 and "refused: --strict frequency-axis" in r.output, r


@pytest.mark.parametrize(("ctype", "doppler"), [("VRAD", u.doppler_radio), ("VOPT-LSR", u.doppler_optical)])
def test_a_velocity_axis_with_a_rest_frequency_is_read_as_wavelength(tmp_path, ctype, doppler):
    rest = 115.2712018e9  # CO 1-0
    p, _ = image(tmp_path / "v.fits", {"CTYPE1": ctype, "CUNIT1": "km/s", "CRVAL1": -50.0, "CDELT1": 0.25,
                                       "CRPIX1": 1.0, "RESTFRQ": rest})
    layout, _ = read_with(p, "wcs-1d")
    v = (-50.0 + 0.25 * np.arange(400)) * u.km / u.s
    expected = v.to(u.AA, equivalencies=doppler(rest * u.Hz)).value
    expected = expected if expected[0] < expected[-1] else expected[::-1]
    np.testing.assert_allclose(layout.grids[0], expected, rtol=1e-13)
    assert "RESTFRQ = 115271201800 Hz" in layout.notes[0][1]


def test_a_velocity_axis_without_a_rest_frequency_and_other_spectral_types_are_refused_saying_why(tmp_path):
    p, _ = image(tmp_path / "norest.fits", {"CTYPE1": "VRAD", "CRVAL1": 0.0, "CDELT1": 1000.0, "CRPIX1": 1.0})
    with pytest.raises(BadFileError, match=r"norest\.fits: CTYPE1 = 'VRAD': axis 1 is a velocity, and without a "
                                           r"rest frequency \(RESTFRQ"):
        scan_file(str(p), None, RULES)
    p, _ = image(tmp_path / "aips.fits", {"CTYPE1": "VELO-LSR", "CRVAL1": 0.0, "CDELT1": 1000.0, "CRPIX1": 1.0})
    with pytest.raises(BadFileError, match=r"CTYPE1 = 'VELO-LSR': axis 1 is a velocity, not a wavelength or a "
                                           r"frequency.*VRAD, VOPT with RESTFRQ"):
        scan_file(str(p), None, RULES)
    p, _ = image(tmp_path / "log.fits", {"CTYPE1": "FREQ-LOG", "CRVAL1": 1e9, "CDELT1": 1e5, "CRPIX1": 1.0})
    with pytest.raises(BadFileError, match=r"CTYPE1 = 'FREQ-LOG' is a non-linear spectral axis"):
        scan_file(str(p), None, RULES)
    p, _ = image(tmp_path / "zero.fits", {"CTYPE1": "FREQ", "CRVAL1": 0.0, "CDELT1": 1e5, "CRPIX1": 1.0})
    with pytest.raises(BadFileError, match=r"non-positive or non-finite wavelength \(it runs through zero"):
        scan_file(str(p), None, RULES)


def test_a_mapping_reads_a_frequency_column_and_a_frequency_wcs(tmp_path):
    """unit = "GHz" in [wavelength] says the values are frequencies: a table column (increasing, so every
    role's pixels are reversed), or axis 1 of an image whose CTYPE1 says nothing."""
    n = 50
    nu = np.linspace(100.0, 101.0, n)
    flux = np.arange(n, dtype=np.float32)
    ivar = np.linspace(1.0, 4.0, n).astype(np.float32)
    cols = [fits.Column("NU", "D", array=nu), fits.Column("F", "E", array=flux), fits.Column("IVAR", "E", array=ivar)]
    p = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(p)
    m = mapping(tmp_path, '[flux]\nhdu = 1\ncolumn = "F"\n[wavelength]\nhdu = 1\ncolumn = "NU"\nunit = "GHz"\n'
                          '[uncertainty]\nhdu = 1\ncolumn = "IVAR"\nkind = "ivar"\n')
    layout, block = read_with(p, m)
    np.testing.assert_allclose(layout.grids[0], (nu * u.GHz).to(u.AA, u.spectral()).value[::-1], rtol=1e-14)
    np.testing.assert_array_equal(block.flux[0], flux[::-1])
    np.testing.assert_array_equal(block.uncertainty[0], (1 / np.sqrt(ivar.astype(np.float64)))[::-1].astype(np.float32))
    assert layout.notes[0][0] == "frequency-axis"

    p2, flux2 = image(tmp_path / "lin.fits", {"CTYPE1": "LINEAR", "CRVAL1": 1420.0, "CDELT1": 0.01, "CRPIX1": 1.0})
    layout, block = read_with(p2, mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\nunit = "MHz"\n'))
    nu2 = (1420.0 + 0.01 * np.arange(400)) * u.MHz
    np.testing.assert_allclose(layout.grids[0], nu2.to(u.AA, u.spectral()).value[::-1], rtol=1e-14)
    np.testing.assert_array_equal(block.flux[0], flux2[::-1])


# --- WAVE-LOG ---------------------------------------------------------------------------------------------

def test_wave_log_with_a_log10_crval_is_read_as_log10_angstrom(tmp_path):
    """MaNGA/MaStar templates: CTYPE1 = 'WAVE-LOG', CRVAL1 = 3.5589 (log10 of 3622 A), CDELT1 = 1e-4."""
    p, _ = image(tmp_path / "mastar.fits", {"CTYPE1": "WAVE-LOG", "CRVAL1": 3.5589, "CDELT1": 1e-4, "CRPIX1": 1.0},
                 n_pix=4563)
    scan = scan_file(str(p), None, RULES)
    assert any(n.startswith("wave-log10: CTYPE1 = 'WAVE-LOG' with CRVAL1 = 3.5589") for n in scan.notes)
    layout, _ = read_with(p, "wcs-1d")
    np.testing.assert_allclose(layout.grids[0], 10.0 ** (3.5589 + 1e-4 * np.arange(4563)), rtol=1e-13)
    assert 3600 < layout.grids[0][0] < 3650 and 10300 < layout.grids[0][-1] < 10400


def test_wave_log_with_a_wavelength_crval_is_the_fits_logarithmic_axis(tmp_path):
    p, _ = image(tmp_path / "fitslog.fits", {"CTYPE1": "WAVE-LOG", "CUNIT1": "Angstrom", "CRVAL1": 5000.0,
                                             "CDELT1": 0.5, "CRPIX1": 100.0})
    layout, _ = read_with(p, "wcs-1d")
    np.testing.assert_allclose(layout.grids[0], astropy_wavelength(p), rtol=1e-13)  # wcslib's -LOG
    assert not layout.notes


def test_wave_log_that_fits_neither_reading_is_refused_naming_both_and_the_mapping(tmp_path):
    p, _ = image(tmp_path / "odd.fits", {"CTYPE1": "WAVE-LOG", "CRVAL1": 7.5, "CDELT1": 1e-4, "CRPIX1": 1.0})
    with pytest.raises(BadFileError, match=r"odd\.fits: CTYPE1 = 'WAVE-LOG' with CRVAL1 = 7\.5 has two readings.*"
                                           r"FITS's logarithmic axis.*log10\(wavelength\).*log10 = true.*log10 = "
                                           r"false"):
        scan_file(str(p), None, RULES)
    layout, _ = read_with(p, mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\nlog10 = true\n'
                                               'unit = "nm"\n'))
    np.testing.assert_allclose(layout.grids[0], 10 * 10.0 ** (7.5 + 1e-4 * np.arange(400)) / 1e9 * 1e9, rtol=1e-13)
    # log10 = false: FITS's logarithmic reading, as wcslib computes it
    p2, _ = image(tmp_path / "fl.fits", {"CTYPE1": "WAVE-LOG", "CUNIT1": "nm", "CRVAL1": 500.0, "CDELT1": 0.05,
                                         "CRPIX1": 1.0})
    layout, _ = read_with(p2, mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\nlog10 = false\n'))
    np.testing.assert_allclose(layout.grids[0], astropy_wavelength(p2), rtol=1e-13)


# --- IRAF: a stale CUNIT1 beside WAT1_001 -------------------------------------------------------------------

@pytest.mark.parametrize("stale", ["deg", -999, "-999"])
def test_an_iraf_wat_unit_overrides_a_stale_celestial_cunit1(tmp_path, stale):
    cards = {"CTYPE1": "LINEAR", "CUNIT1": stale, "CRVAL1": 3800.0, "CDELT1": 1.5, "CRPIX1": 1.0, "DC-FLAG": 0,
             "WCSDIM": 1, "WAT0_001": "system=equispec", "WAT1_001": "wtype=linear label=Wavelength units=angstroms"}
    p, flux = image(tmp_path / "iraf.fits", cards)
    scan = scan_file(str(p), None, RULES)
    (note,) = [n for n in scan.notes if n.startswith("stale-axis-unit:")]
    assert f"CUNIT1 = {stale!r} is no wavelength unit" in note and "units=angstroms" in note and "overridden" in note
    layout, block = read_with(p, "wcs-1d")
    np.testing.assert_array_equal(layout.grids[0], 3800.0 + np.arange(400) * 1.5)
    np.testing.assert_array_equal(block.flux[0], flux)


def test_wat_units_in_nanometres_and_a_cunit1_that_disagrees(tmp_path):
    wat = "wtype=linear label=Wavelength units=nanometers"
    p, _ = image(tmp_path / "nm.fits", {"CRVAL1": 380.0, "CDELT1": 0.1, "CRPIX1": 1.0, "WAT1_001": wat})
    layout, _ = read_with(p, "wcs-1d")
    np.testing.assert_allclose(layout.grids[0], (380.0 + 0.1 * np.arange(400)) * 10.0, rtol=1e-15)
    p, _ = image(tmp_path / "both.fits", {"CRVAL1": 380.0, "CDELT1": 0.1, "CRPIX1": 1.0, "CUNIT1": "Angstrom",
                                          "WAT1_001": wat})
    # each unit's reading shown (400 px: 380.0-419.9), and both choices named, so the range can decide
    with pytest.raises(BadFileError, match=r"both\.fits: CUNIT1 = 'Angstrom' and IRAF's WAT1_001 units=nanometers "
                                           r"disagree about the wavelength unit, read in Angstrom axis 1 spans "
                                           r"380-419\.9 A, in nanometers axis 1 spans 3800-4199 A: .*unit = "
                                           r"\"Angstrom\" or unit = \"nanometers\""):
        scan_file(str(p), None, RULES)


# --- string BSCALE / BZERO ----------------------------------------------------------------------------------

def _string_scaled(path, bscale: str, bzero: str, raw: np.ndarray):
    """An int16 image whose BSCALE and BZERO cards are strings (as some archive tools write them)."""
    fits.PrimaryHDU(raw).writeto(path)
    with fits.open(path, mode="update") as hdul:
        h = hdul[0].header
        h.update({"CRVAL1": 4000.0, "CDELT1": 1.0, "CRPIX1": 1.0, "BUNIT": "adu"})
        h["BSCALE"] = bscale
        h["BZERO"] = bzero
    return path


def test_string_bscale_and_bzero_are_read_as_the_numbers_they_spell(tmp_path):
    raw = np.array([-32768, -1, 0, 1, 32767] * 20, dtype=np.int16)
    p = _string_scaled(tmp_path / "str.fits", "1", "32768", raw)
    expected = raw.astype(np.int64) + 32768  # what the numeric cards mean: the unsigned convention
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(p) as hdul, pytest.raises(TypeError):  # astropy alone: a bare numpy UFuncTypeError
            _ = hdul[0].data
    scan = scan_file(str(p), None, RULES)
    assert any(n.startswith("string-scaling: HDU 0: BSCALE = '1' is a string") for n in scan.notes)
    assert any("BZERO = '32768'" in n and "32768" in n for n in scan.notes)
    _, block = read_with(p, "wcs-1d")
    np.testing.assert_array_equal(block.flux[0], expected.astype(np.float32))
    _, block = read_with(p, mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\n'))
    np.testing.assert_array_equal(block.flux[0], expected.astype(np.float32))
    p2 = _string_scaled(tmp_path / "half.fits", "0.5", "1.0D1", raw)  # a Fortran exponent
    _, block = read_with(p2, "wcs-1d")
    np.testing.assert_array_equal(block.flux[0], (raw * np.float32(0.5) + np.float32(10.0)).astype(np.float32))


def test_a_string_bscale_that_spells_no_number_is_refused_naming_the_card(tmp_path):
    p = _string_scaled(tmp_path / "bad.fits", "one", "0", np.arange(10, dtype=np.int16))
    with pytest.raises(BadFileError, match=r"bad\.fits: HDU 0: BSCALE = 'one' is a string that spells no number"):
        scan_file(str(p), None, RULES)
    with pytest.raises(BadFileError, match=r"BSCALE = 'one'"):
        read_with(p, "wcs-1d")
