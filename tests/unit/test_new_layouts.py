"""Layouts that used to be refused though the file says what it holds: the IRTF Spextool image convention
(single order and multi-order cubes) and tables whose columns are found by unit and UCD (Euclid SIR 1-D
spectra, a `flux density` column). Files are built here from the published data models; values are
compared with an astropy reading of the same file, wavelengths in Angstrom."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import BadFileError
from shardmerge.headers import load_header_rules
from shardmerge.readers import detect, get_reader, open_fits
from shardmerge.readers.columns import find_roles, is_flux_density_unit
from shardmerge.scan import scan_file
from tests.helpers import run_cli

RULES = load_header_rules()
RNG = np.random.default_rng(26)


def read(path):
    with open_fits(str(path)) as hdul:
        reader = detect(str(path), hdul)
        layout = reader.layout(str(path), hdul)
        block = reader.read(str(path), hdul, layout, 0, layout.n_spectra)
        meta = reader.row_metadata(hdul, layout, 0, layout.n_spectra)
        return reader.name, layout, block, meta


def ingest(tmp_path, *paths, ok=True):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    for p in paths:
        (d / p.name).symlink_to(p)
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", d, "-o", out, "--workers", "0", "--report", rep)
    if not ok:
        assert r.exit_code == 3, r.output
        return r.output
    assert r.exit_code == 0, r.output
    assert run_cli("validate", out).exit_code == 0
    return zarr.open_group(out, mode="r"), json.loads(rep.read_text())


# --- Spextool ------------------------------------------------------------------------------------------

def make_spextool(path, lengths=(120,), rows=3, naps=1, orders=None, xunits="um", yunits="Wm-2um-1",
                  extra=None, empty=()):
    """A Spextool spectral image: (orders x apertures, rows, pixels), each plane NaN-padded past its own
    length; `empty` planes all NaN. One plane is written as a 2-D (rows, pixels) image."""
    n_pix = max(lengths)
    planes = len(lengths)
    data = np.full((planes, rows, n_pix), np.nan, dtype=np.float32)
    for p, n in enumerate(lengths):
        if p in empty:
            continue
        start = 0.9 + 0.3 * p
        data[p, 0, :n] = start + 1e-3 * np.arange(n)  # microns, increasing
        data[p, 1, :n] = RNG.normal(1e-14, 1e-15, n)
        data[p, 2, :n] = np.abs(RNG.normal(1e-16, 1e-17, n))
        if rows == 4:
            data[p, 3, :n] = RNG.integers(0, 3, n)
    hdu = fits.PrimaryHDU(data[0] if planes == 1 else data)
    norders = planes // naps
    hdu.header.update({"NAPS": naps, "NORDERS": norders,
                       "ORDERS": orders or ",".join(str(3 + k) for k in range(norders)),
                       "XUNITS": xunits, "YUNITS": yunits, "INSTR": "SpeX", "OBJECT": "2MASS J0539-0059"})
    hdu.header["HISTORY"] = "the wavelength is in array[*,0,i], the flux in array[*,1,i], the error in array[*,2,i]"
    for k, v in (extra or {}).items():
        if v is None:
            del hdu.header[k]
        else:
            hdu.header[k] = v
    hdu.writeto(path)
    return data


def test_a_single_order_spextool_image_is_one_spectrum_in_angstrom(tmp_path):
    p = tmp_path / "spex_prism.fits"
    data = make_spextool(p)
    name, layout, block, meta = read(p)
    assert name == "spextool"
    assert layout.n_spectra == 1 and layout.flux_unit == "W m-2 um-1"
    np.testing.assert_allclose(layout.grids[0], data[0, 0].astype(np.float64) * 1e4, rtol=1e-12)
    np.testing.assert_array_equal(block.flux[0], data[0, 1])
    np.testing.assert_array_equal(block.uncertainty[0], data[0, 2])
    assert block.mask is None and not layout.mask_convention
    assert (meta[0]["order"], meta[0]["aperture"]) == ("3", "1")
    assert meta[0]["object"] == "2MASS J0539-0059"


def test_a_multi_order_cube_is_one_row_per_order_with_padding_trimmed_and_flags_as_mask(tmp_path):
    p = tmp_path / "sxd.fits"
    lengths = (200, 200, 150, 90, 200)
    data = make_spextool(p, lengths, rows=4, empty=(3,))  # order 6 (plane 3) holds nothing
    g, _ = ingest(tmp_path, p)
    assert g["signal/flux_raw"].shape[0] == 4
    assert list(g["metadata/order"][:]) == ["3", "4", "5", "7"]
    wave, flux = g["signal/wavelength"], g["signal/flux_raw"]
    unc, mask = g["signal/uncertainty_raw"], g["signal/mask_raw"]
    for row, plane in enumerate((0, 1, 2, 4)):
        n = lengths[plane]
        np.testing.assert_allclose(wave[row, :n], data[plane, 0, :n].astype(np.float64) * 1e4, rtol=1e-12)
        assert np.all(np.isnan(wave[row, n:]))
        np.testing.assert_array_equal(flux[row, :n], data[plane, 1, :n])
        np.testing.assert_array_equal(unc[row, :n], data[plane, 2, :n])
        np.testing.assert_array_equal(mask[row, :n], data[plane, 3, :n].astype(np.uint32))
    assert g["signal/flux_raw"].attrs["units"] == "W / (um m2)"


def test_apertures_within_orders_are_labelled(tmp_path):
    p = tmp_path / "two_aps.fits"
    make_spextool(p, (100, 100, 100, 100), naps=2, orders="5,6")
    _, layout, _, meta = read(p)
    assert [(m["order"], m["aperture"]) for m in meta] == [("5", "1"), ("5", "2"), ("6", "1"), ("6", "2")]
    assert layout.n_spectra == 4


@pytest.mark.parametrize(("extra", "message"), [
    ({"NORDERS": 3}, r"NORDERS = 3 x NAPS = 1 spectra, the image holds 2: which plane is which order is ambiguous"),
    ({"ORDERS": "3,4,5"}, r"ORDERS = '3,4,5' names 3 orders, NORDERS = 2"),
    ({"XUNITS": "pixels"}, r"XUNITS = 'pixels' is not a wavelength unit"),
])
def test_inconsistent_spextool_cards_are_refused_naming_them(tmp_path, extra, message):
    p = tmp_path / "bad.fits"
    make_spextool(p, (50, 50), extra=extra)
    with pytest.raises(BadFileError, match=r"bad\.fits: .*" + message):
        scan_file(str(p), None, RULES)


def test_nan_inside_a_wavelength_row_is_refused_not_taken_for_padding(tmp_path):
    p = tmp_path / "hole.fits"
    data = make_spextool(p, (60,))
    data[0, 0, 20] = np.nan
    fits.PrimaryHDU(data[0], header=fits.getheader(p)).writeto(p, overwrite=True)
    with pytest.raises(BadFileError, match=r"hole\.fits: plane 0: the wavelength row is NaN at pixel 20, inside "
                                           r"pixels 0-59"):
        scan_file(str(p), None, RULES)


def test_spextool_does_not_claim_what_other_readers_own(tmp_path):
    bare = tmp_path / "bare.fits"  # three rows, no XUNITS: no convention to take units from
    fits.PrimaryHDU(np.ones((3, 50), dtype=np.float32)).writeto(bare)
    with fits.open(bare) as hdul:
        assert not get_reader("spextool").identify(hdul)
    wcs = tmp_path / "wcs.fits"  # a linear WCS on axis 1 and stray XUNITS, no Spextool cards: image-2d's
    hdu = fits.PrimaryHDU(np.ones((3, 50), dtype=np.float32))
    hdu.header.update({"CRVAL1": 4000.0, "CDELT1": 1.0, "CRPIX1": 1.0, "CUNIT1": "Angstrom", "XUNITS": "Angstrom",
                       "YUNITS": "adu"})
    hdu.writeto(wcs)
    with open_fits(str(wcs)) as hdul:
        assert detect(str(wcs), hdul).name == "image-2d"


# --- tables: columns by unit and UCD ---------------------------------------------------------------------

FLAM = "erg/(s cm2 Angstrom)"


def sir_table(object_id, kind, n=300, unit=FLAM, fscale=1e-16, wave0=12000.0, wave_unit="Angstrom"):
    """One SIR 1-D spectrum table as the Euclid data model writes it."""
    wave = wave0 + 13.4 * np.arange(n)
    cols = [fits.Column("WAVELENGTH", "E", unit=wave_unit, array=wave.astype(np.float32)),
            fits.Column("SIGNAL", "E", unit=unit, array=RNG.normal(1.0, 0.2, n).astype(np.float32)),
            fits.Column("QUALITY", "E", array=RNG.uniform(0, 1, n).astype(np.float32)),
            fits.Column("VAR", "E", unit="erg2/(s2 cm4 Angstrom2)",
                        array=RNG.uniform(0.01, 0.05, n).astype(np.float32)),
            fits.Column("NDITH", "I", array=np.full(n, 4, dtype=np.int16)),
            fits.Column("MASK", "J", array=RNG.choice([0, 1, 2, 64, 65], n).astype(np.int32))]
    name = f"{object_id}_COMBINED1D_SIGNAL" if kind == "combined" else f"{object_id}_DITH1D_{kind}_SIGNAL"
    hdu = fits.BinTableHDU.from_columns(cols, name=name)
    hdu.header["FSCALE"] = fscale
    return hdu


def make_sir(path, tables):
    fits.HDUList([fits.PrimaryHDU(), *tables]).writeto(path)
    return path


def test_every_euclid_sir_table_is_a_row_with_fscale_in_the_unit(tmp_path):
    p = make_sir(tmp_path / "EUC_SIR_W-COMBSPEC.fits", [
        sir_table("2689918641685825137", "combined"), sir_table("2689918641685825137", "1"),
        sir_table("2690000000000000001", "combined")])
    g, _ = ingest(tmp_path, p)
    assert g["signal/flux_raw"].shape[0] == 3
    assert list(g["metadata/object_id"][:]) == ["2689918641685825137", "2689918641685825137", "2690000000000000001"]
    assert list(g["metadata/sir_spectrum"][:]) == ["combined", "dither 1", "combined"]
    assert list(g["metadata/sir_hdu"][:])[1] == "2 2689918641685825137_DITH1D_1_SIGNAL"
    assert g["signal/flux_raw"].attrs["units"] == "1e-16 erg / (Angstrom s cm2)"
    with fits.open(p) as h:
        for row in range(3):
            t = h[row + 1].data
            n = len(t)
            np.testing.assert_allclose(np.asarray(g["signal/wavelength"])[:n] if g["signal/wavelength"].ndim == 1
                                       else g["signal/wavelength"][row, :n], t["WAVELENGTH"].astype(np.float64))
            np.testing.assert_array_equal(g["signal/flux_raw"][row, :n], t["SIGNAL"])
            np.testing.assert_allclose(g["signal/uncertainty_raw"][row, :n], np.sqrt(t["VAR"].astype(np.float64)),
                                       rtol=1e-6)
            np.testing.assert_array_equal(g["signal/mask_raw"][row, :n], t["MASK"].astype(np.uint32))


def test_sir_tables_of_different_fscale_are_refused_naming_them(tmp_path):
    p = make_sir(tmp_path / "mixed.fits", [sir_table("1", "combined"), sir_table("2", "combined", fscale=1e-17)])
    with pytest.raises(BadFileError, match=r"mixed\.fits: the SIR tables' flux units differ \(.*FSCALE 1e-17.*"
                                           r"FSCALE 1e-16\)"):
        scan_file(str(p), None, RULES)


def test_a_lone_sir_table_without_the_extname_is_found_by_its_units(tmp_path):
    hdu = sir_table("1", "combined")
    hdu.header["EXTNAME"] = "SPECTRUM"
    p = make_sir(tmp_path / "one.fits", [hdu])
    name, layout, block, _ = read(p)
    assert name == "table-1d"
    assert layout.state["parts"][0][1] == {"wave": "WAVELENGTH", "flux": "SIGNAL", "var": "VAR", "mask": "MASK"}
    t = fits.getdata(p, 1)
    np.testing.assert_array_equal(block.flux[0], t["SIGNAL"])
    np.testing.assert_allclose(block.uncertainty[0], np.sqrt(t["VAR"].astype(np.float64)), rtol=1e-6)
    np.testing.assert_array_equal(block.mask[0], t["MASK"].astype(np.uint32))


def test_a_flux_density_column_of_any_name_is_the_flux_and_its_error_is_found_by_unit(tmp_path):
    n = 200
    wave = np.linspace(1.0, 2.5, n)
    flux, err = RNG.normal(5.0, 1.0, n), np.abs(RNG.normal(0.3, 0.05, n))
    cols = [fits.Column("lam_obs", "D", unit="um", array=wave),
            fits.Column("flux density", "E", unit="mJy", array=flux.astype(np.float32)),
            fits.Column("flux density error", "E", unit="mJy", array=err.astype(np.float32)),
            fits.Column("snr", "E", array=(flux / err).astype(np.float32))]
    p = tmp_path / "fd.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(p)
    name, layout, block, _ = read(p)
    assert name == "table-1d"
    assert layout.state["parts"][0][1] == {"wave": "lam_obs", "flux": "flux density", "sigma": "flux density error"}
    np.testing.assert_allclose(layout.grids[0], wave * 1e4, rtol=1e-12)
    np.testing.assert_array_equal(block.flux[0], flux.astype(np.float32))
    np.testing.assert_array_equal(block.uncertainty[0], err.astype(np.float32))


def _table(cols):
    return fits.BinTableHDU.from_columns([fits.Column(n, "E", unit=u, array=np.ones(10, dtype=np.float32))
                                          for n, u in cols])


def test_jwst_like_columns_keep_flux_error_over_variance_parts():
    hdu = _table([("WAVELENGTH", "um"), ("FLUX", "Jy"), ("FLUX_ERROR", "Jy"), ("FLUX_VAR_POISSON", "Jy2"),
                  ("FLUX_VAR_RNOISE", "Jy2"), ("SURF_BRIGHT", "MJy/sr"), ("BACKGROUND", "MJy/sr")])
    assert find_roles(hdu) == {"wave": "WAVELENGTH", "flux": "FLUX", "sigma": "FLUX_ERROR"}


def test_variance_and_inverse_variance_are_told_by_unit():
    assert find_roles(_table([("w", "nm"), ("f", FLAM), ("v", "erg2 s-2 cm-4 Angstrom-2")]))["var"] == "v"
    assert find_roles(_table([("w", "nm"), ("f", FLAM), ("iv", "erg-2 s2 cm4 Angstrom2")]))["ivar"] == "iv"


def test_two_unnamed_flux_density_columns_are_ambiguous_and_not_guessed():
    assert find_roles(_table([("w", "Angstrom"), ("a", FLAM), ("b", FLAM)])) is None


def test_flux_density_units_are_told_by_physical_type():
    for unit in (FLAM, "Jy", "W m-2 um-1", "photon/(s cm2 Angstrom)", "1e-17 erg/s/cm^2/Ang", "FLAM"):
        assert is_flux_density_unit(unit), unit
    for unit in ("", "Angstrom", "ct/s", "MJy/sr", "Relative Flux", "nonsense"):
        assert not is_flux_density_unit(unit), unit
