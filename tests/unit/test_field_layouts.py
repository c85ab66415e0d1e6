"""What real archives do that used to be stored wrong or refused: each is now stored faithfully or refused
with a message that names the file, the ambiguity and the option that resolves it."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from shardmerge.config import FormatChoice
from shardmerge.errors import BadFileError
from shardmerge.headers import load_header_rules
from shardmerge.readers import get_reader, open_fits
from shardmerge.readers.mapping import mapping_ref
from shardmerge.scan import scan_file
from shardmerge.testing import surveys as ss
from shardmerge.units import wavelength_factor
from tests.helpers import verified_notes

RULES = load_header_rules()


def read_with(path, choice):
    """choice: a reader's name, or a FormatChoice (a mapping)."""
    reader = get_reader(choice) if isinstance(choice, str) else get_reader(choice.name, choice.mapping)
    with open_fits(str(path)) as hdul:
        layout = reader.layout(str(path), hdul)
        return layout, reader.read(str(path), hdul, layout, 0, layout.n_spectra)


def mapping(tmp_path, text: str) -> FormatChoice:
    m = tmp_path / f"m{len(list(tmp_path.glob('m*.toml')))}.toml"  # a new file each time: parsing is cached
    m.write_text(text)
    return FormatChoice("mapping", mapping_ref(str(m)))


def test_an_undeclared_log10_axis_is_refused_then_read_through_a_mapping(tmp_path):
    p = ss.make_undeclared_log_1d(tmp_path / "spec.fits")
    with pytest.raises(BadFileError, match=r"spec\.fits: ambiguous wavelength axis: CRVAL1 = 3\.7.*"
                                           r"as log10\(Angstrom\) it would span 5011\.9-.*--format mapping"):
        scan_file(str(p), None, RULES)
    name = mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\nlog10 = true\n')
    layout, _ = read_with(p, name)
    np.testing.assert_allclose(layout.grids[0], 10.0 ** (3.7 + 1e-4 * np.arange(2000)), rtol=1e-12)


def test_mapping_log10_and_unit_replace_the_header_instead_of_compounding(tmp_path):
    """log10 = true on a DC-FLAG = 1 file is one exponent, not two; unit = "nm" on CUNIT1 = nm is one factor."""
    p, truth = ss.make_iraf_1d_loglinear(tmp_path / "log.fits")
    layout, _ = read_with(p, mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\nlog10 = true\n'))
    np.testing.assert_allclose(layout.grids[0], truth[0]["wave"], rtol=1e-12)

    nm = tmp_path / "nm.fits"
    hdu = fits.PrimaryHDU(np.ones(100, dtype=np.float32))
    hdu.header.update({"CRVAL1": 530.34, "CDELT1": 0.01, "CRPIX1": 1.0, "CUNIT1": "nm"})
    hdu.writeto(nm)
    for text in ('[flux]\nhdu = 0\n[wavelength]\nwcs = true\nunit = "nm"\n',
                 '[flux]\nhdu = 0\n[wavelength]\nwcs = true\n'):
        layout, _ = read_with(nm, mapping(tmp_path, text))
        assert layout.grids[0][0] == pytest.approx(5303.4)  # not 53034


@pytest.mark.parametrize(("unit", "factor"), [("10**-1 nm", 1.0), ("0.1 nm", 1.0), ("Angstrom", 1.0), ("nm", 10.0),
                                              ("um", 1e4), ("micron", 1e4), ("cm", 1e8), ("ANGSTROMS", 1.0),
                                              ("Jy", None), ("parsec", None), ("pixel", None)])
def test_wavelength_units_are_parsed_by_astropy(unit, factor):
    assert wavelength_factor(unit) == (pytest.approx(factor) if factor else None)


def test_negative_sigma_sentinels_become_nan(tmp_path):
    """popler writes -1e32 where a pixel has no information: never stored as an uncertainty."""
    p = tmp_path / "rows.fits"
    data = np.array([[1.0, 2.0, 3.0, 4.0], [0.1, -1e32, 0.3, -1.0]], dtype=np.float32)
    hdu = fits.PrimaryHDU(data)
    hdu.header.update({"CRVAL1": 4000.0, "CDELT1": 1.0, "CRPIX1": 1.0})
    hdu.writeto(p)
    name = mapping(tmp_path, '[flux]\nhdu = 0\nrow = 0\n[uncertainty]\nhdu = 0\nrow = 1\nkind = "sigma"\n'
                             '[wavelength]\nwcs = true\n')
    _, block = read_with(p, name)
    np.testing.assert_array_equal(block.uncertainty, [[np.float32(0.1), np.nan, np.float32(0.3), np.nan]])


def test_rows_that_are_different_quantities_are_refused(tmp_path):
    p = tmp_path / "popler-like.fits"
    hdu = fits.PrimaryHDU(np.ones((5, 50), dtype=np.float32))
    hdu.header.update({"CRVAL1": 3.48, "CDELT1": 3.6e-6, "CRPIX1": 1.0, "CTYPE1": "LOGLIN", "DC-FLAG": 1})
    for k, label in enumerate(("Normalized flux spectrum", "Normalized error", "Norm. expected fluctuation",
                               "Continuum", "Status"), start=1):
        hdu.header[f"ARRAY{k}"] = label
    hdu.writeto(p)
    with pytest.raises(BadFileError, match=r"popler-like\.fits: the image's rows are different quantities "
                                           r"\(ARRAY1 = 'Normalized flux spectrum', ARRAY2 = 'Normalized error'.*"
                                           r"--format mapping"):
        scan_file(str(p), None, RULES)


def test_a_one_aperture_extraction_with_bands_as_rows_is_one_spectrum(tmp_path):
    p, truth = ss.make_iraf_equispec_bands(tmp_path / "bands.fits", n_ap=1)
    with fits.open(p) as h:  # IRAF drops the degenerate aperture axis: rows are the 4 bands
        data, hdr = h[0].data[:, 0, :], h[0].header.copy()
    for key in ("NAXIS", "NAXIS1", "NAXIS2", "NAXIS3"):
        del hdr[key]
    hdr["WCSDIM"] = 2
    fits.PrimaryHDU(data, header=hdr).writeto(tmp_path / "rows.fits")
    scan = scan_file(str(tmp_path / "rows.fits"), None, RULES)
    assert (scan.format, scan.n_spectra) == ("iraf-equispec", 1)
    layout, block = read_with(tmp_path / "rows.fits", "iraf-equispec")
    np.testing.assert_array_equal(block.flux[0], truth[0]["flux"])
    np.testing.assert_allclose(block.uncertainty[0], truth[0]["sigma"])


def test_an_unnamed_extension_of_the_flux_shape_is_said_not_dropped_silently(tmp_path):
    """linetools' SDSS sample: HDU 1-3 hold sigma, log wavelength and a mask, with no EXTNAME."""
    p = tmp_path / "unnamed.fits"
    hdr = fits.Header({"CRVAL1": 3.5507, "CD1_1": 1e-4, "CRPIX1": 1.0, "CTYPE1": "LINEAR", "DC-FLAG": 1})
    fits.HDUList([fits.PrimaryHDU(np.ones(100, dtype=np.float32), header=hdr),
                  fits.ImageHDU(np.full(100, 0.1, dtype=np.float32)),
                  fits.ImageHDU(np.zeros(100, dtype=np.int16), name="MASK")]).writeto(p)
    scan = scan_file(str(p), None, RULES)
    assert scan.notes == ("unread-extension: HDU 1 (no EXTNAME, EXTVER 1; image 100) has the flux's shape but nothing "
                          "says what it holds: not read (if it is an uncertainty or a wavelength, describe the file "
                          "with --format mapping)",)  # the integer MASK of its EXTVER is read: its mask_raw
    assert scan.mask_convention == "MASK extension"
    with pytest.raises(BadFileError, match="--strict unread-extension"):
        scan_file(str(p), None, RULES, frozenset({"unread-extension"}))


def test_harps_e2ds_as_the_archive_serves_it(tmp_path):
    p, truth = ss.make_harps_e2ds(tmp_path / "HARPS.2010-01-01T00:00:00.000_e2ds_A.fits", n_orders=5, n_pix=300)
    scan = scan_file(str(p), None, RULES)
    assert (scan.format, scan.n_spectra, scan.metadata_keys) == ("harps-e2ds", 5, ("order",))
    assert verified_notes(p)[0].startswith("placeholder-datasum: HDU 0:")
    with fits.open(p, mode="update") as h:
        del h[0].header["HIERARCH ESO DRS CAL TH COEFF LL6"]
    with pytest.raises(BadFileError, match=r"order 1: wavelength coefficient card\(s\) ESO DRS CAL TH COEFF LL6"):
        scan_file(str(p), None, RULES)


def test_a_table_without_a_wavelength_unit_is_refused(tmp_path):
    p = tmp_path / "nounit.fits"
    cols = [fits.Column("WAVE", "6D", array=[np.linspace(917, 1005, 6)]), fits.Column("FLUX", "6D", array=[np.ones(6)])]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(p)
    with pytest.raises(BadFileError, match=r"nounit\.fits: wavelength column 'WAVE' has no unit.*917-1005.*"
                                           r"unit = \"Angstrom\""):
        scan_file(str(p), None, RULES)


def test_a_mapping_addresses_a_plane_of_a_3d_image(tmp_path):
    p, truth = ss.make_iraf_equispec_bands(tmp_path / "bands.fits", n_ap=2)
    name = mapping(tmp_path, '[flux]\nhdu = 0\nband = 0\n[uncertainty]\nhdu = 0\nband = 3\nkind = "sigma"\n'
                             '[wavelength]\nwcs = true\n')
    layout, block = read_with(p, name)
    assert layout.n_spectra == 2
    for a in range(2):
        np.testing.assert_array_equal(block.flux[a], truth[a]["flux"])
        np.testing.assert_allclose(block.uncertainty[a], truth[a]["sigma"])
    with pytest.raises(BadFileError, match=r"3-D image \(4, 2, 1500\): say which plane with band = N"):
        read_with(p, mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\n'))


def test_a_wavelength_that_steps_back_is_refused_at_the_scan(tmp_path):
    p = tmp_path / "back.fits"
    wave = np.linspace(4000.0, 5000.0, 50)
    wave[20] = wave[19] - 1.0
    fits.HDUList([fits.PrimaryHDU(np.ones(50, dtype=np.float32)),
                  fits.ImageHDU(wave, name="WAVELENGTH", header=fits.Header({"BUNIT": "Angstrom"}))]).writeto(p)
    with pytest.raises(BadFileError, match=r"back\.fits: wavelength grid is not strictly increasing: pixel 19 .* "
                                           r"describe the file with --format mapping"):
        scan_file(str(p), None, RULES)


def test_a_mapping_unit_that_is_no_wavelength_is_refused_naming_the_key(tmp_path):
    p = tmp_path / "x.fits"
    hdu = fits.PrimaryHDU(np.ones(10, dtype=np.float32))
    hdu.header.update({"CRVAL1": 4000.0, "CDELT1": 1.0})
    hdu.writeto(p)
    choice = mapping(tmp_path, '[flux]\nhdu = 0\n[wavelength]\nwcs = true\nunit = "Jy"\n')
    with pytest.raises(BadFileError, match=r"x\.fits: the mapping's \[wavelength\] unit = 'Jy' is not a wavelength"):
        scan_file(str(p), choice, RULES)
