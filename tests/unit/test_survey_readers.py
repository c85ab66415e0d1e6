"""Each survey layout, synthetic to its published data model: detected from its headers, and read to exactly
the values the maker wrote (wavelength in Angstrom ascending, flux, 1-sigma, mask)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from shardmerge.config import FormatChoice, LayoutRequest
from shardmerge.errors import BadFileError, InputError, PlanError
from shardmerge.headers import load_header_rules
from shardmerge.plan import make_plan
from shardmerge.readers import detect, get_reader, open_fits
from shardmerge.readers.mapping import mapping_ref
from shardmerge.scan import scan_file
from shardmerge.testing import surveys as ss

CASES = {
    "harps-s1d": (lambda p: ss.make_harps_s1d(p, n_pix=20_000), "wcs-1d"),
    "espresso-s1d": (ss.make_espresso_s1d, "espresso-s1d"),
    "eso-sdp-nm": (ss.make_eso_sdp, "eso-sdp"),
    "eso-sdp-contnorm": (lambda p: ss.make_eso_sdp(p, unit="angstrom", contnorm=True), "eso-sdp"),
    "iraf-multispec-linear": (ss.make_iraf_multispec, "iraf-multispec"),
    "iraf-multispec-log": (lambda p: ss.make_iraf_multispec(p, dtype=1), "iraf-multispec"),
    "iraf-1d-dcflag": (ss.make_iraf_1d_loglinear, "wcs-1d"),
    "apstar": (ss.make_apstar, "apogee-apstar"),
    "lamost-lrs-old": (lambda p: ss.make_lamost_lrs(p, dr8=False), "lamost"),
    "lamost-lrs-dr8": (ss.make_lamost_lrs, "lamost"),
    "lamost-mrs": (ss.make_lamost_mrs, "lamost"),
    "sdss-spplate": (ss.make_spplate, "sdss-spplate"),
    "sdss-spspec": (ss.make_spspec, "sdss-spspec"),
    "harps-e2ds": (ss.make_harps_e2ds, "harps-e2ds"),
    "jwst-spec1d-beside-2d-images": (ss.make_jwst_spec1d, "table-1d"),
    "calspec-row-per-pixel": (ss.make_calspec_table, "table-1d"),
    "iraf-equispec-bands": (ss.make_iraf_equispec_bands, "iraf-equispec"),
    "iraf-equispec-bands-log": (lambda p: ss.make_iraf_equispec_bands(p, n_ap=1, log=True), "iraf-equispec"),
    "muse-data-stat": (ss.make_muse_stat, "wcs-1d"),
}


def read_all(path):
    with open_fits(str(path)) as hdul:
        reader = detect(str(path), hdul)
        layout = reader.layout(str(path), hdul)
        block = reader.read(str(path), hdul, layout, 0, layout.n_spectra)
        meta = reader.row_metadata(hdul, layout, 0, layout.n_spectra)
    return reader, layout, block, meta


@pytest.mark.parametrize("case", sorted(CASES))
def test_detected_and_read_exactly(tmp_path, case):
    maker, expected = CASES[case]
    path, truth = maker(tmp_path / f"{case}.fits")
    reader, layout, block, meta = read_all(path)
    assert reader.name == expected
    assert layout.n_spectra == len(truth)
    for i, t in enumerate(truth):
        wave = layout.grids[int(layout.grid_of[i])]
        n = t["wave"].shape[0]
        assert wave.shape == (n,)
        np.testing.assert_allclose(wave, t["wave"], rtol=1e-12)
        assert np.all(np.diff(wave) > 0)
        np.testing.assert_array_equal(block.flux[i, :n], np.asarray(t["flux"], dtype=np.float32))
        assert np.all(np.isnan(block.flux[i, n:]))
        if t["sigma"] is None:
            assert np.all(np.isnan(block.uncertainty[i]))
        else:
            np.testing.assert_allclose(block.uncertainty[i, :n], t["sigma"], rtol=1e-6, equal_nan=True)
        if t["mask"] is None:
            assert block.mask is None and not layout.mask_convention
        else:
            assert layout.mask_convention and block.mask.dtype == np.uint32
            np.testing.assert_array_equal(block.mask[i, :n], t["mask"])
        if "continuum" in t:
            np.testing.assert_array_equal(block.continuum[i, :n], t["continuum"])
            assert block.continuum_method.startswith("source")
        if "normalized" in t:
            np.testing.assert_array_equal(block.normalized_flux[i, :n], t["normalized"])
        if "ra" in t:
            assert meta[i]["ra"] == pytest.approx(t["ra"]) and meta[i]["objtype"] == t["objtype"]
        if "hdu" in t:
            assert meta[i]["lamost_hdu"] == t["hdu"]
        if "order" in t:
            assert meta[i]["order"] == t["order"]


def test_harps_keeps_a_few_reusable_header_cards(tmp_path):
    path, _ = ss.make_harps_s1d(tmp_path / "HARPS.2019-03-01T00:00:00.000_s1d_A.fits")
    scan = scan_file(str(path), None, load_header_rules())
    assert scan.n_pix_max == 313_000 and scan.flux_unit == "1"
    assert scan.flux_unit_source == "Relative Flux"
    assert len(scan.header_keys) < 30, scan.header_keys  # of ~3050 cards
    assert not any("DRS_CAL" in k or "INS_TEMP" in k or "DET_CHIP" in k for k in scan.header_keys)
    assert make_plan([scan], LayoutRequest(chunk_rows=256)).chunks_2d == (256, 4096)  # high-resolution
    assert make_plan([scan]).chunks_2d == (1, 4096)  # one spectrum: chunks of exactly its rows, not 256


def test_multispec_nonlinear_dispersion_is_refused_naming_the_aperture(tmp_path):
    path, _ = ss.make_iraf_multispec(tmp_path / "ms.fits", dtype=2)
    with pytest.raises(BadFileError, match=r"ms\.fits: spec1 has a non-linear dispersion \(dtype 2"):
        read_all(path)


def test_apstar_rows_are_labelled_and_the_placeholder_row_left_out(tmp_path):
    path, truth = ss.make_apstar(tmp_path / "apStar-a.fits", n_visits=3)
    _, layout, _, meta = read_all(path)
    assert [m["apogee_row"] for m in meta] == ["combined", "combined-1", "visit-1", "visit-2", "visit-3"]
    with fits.open(path, mode="update") as h:  # a single-visit file with its all-zero placeholder row
        h[0].header["NVISITS"] = 1
        for k in (1, 2, 3):
            h[k].data[1:] = 0
    reader, layout, block, meta = read_all(path)
    assert layout.n_spectra == 1 and layout.dropped == 4 and list(layout.source_index) == [0]


def test_aspcapstar_joins_its_apstar_and_is_refused_alone(tmp_path):
    ap, _ = ss.make_apstar(tmp_path / "apStar-x.fits", apogee_id="2M1", n_visits=2)
    asp, truth = ss.make_aspcapstar(tmp_path / "aspcapStar-x.fits", apogee_id="2M1")
    rules = load_header_rules()
    scans = [scan_file(str(p), None, rules) for p in (ap, asp)]
    assert scans[1].format == "apogee-aspcapstar" and scans[1].companion
    plan = make_plan(scans)
    assert plan.n_spec == 4 and plan.has_normalized
    assert plan.segments(plan.shards[0])[0].companions[0].path == str(asp)
    assert dict(plan.files_per_format) == {"apogee-apstar": 1, "apogee-aspcapstar": 1}
    with pytest.raises(PlanError, match=r"aspcapStar-x\.fits: a apogee-aspcapstar file .* no file among the inputs"):
        make_plan(scans[1:] + [scan_file(str(ss.make_apstar(tmp_path / "apStar-y.fits", apogee_id="2M9")[0]),
                                         None, rules)])


def test_mapping_reads_a_layout_no_reader_knows(tmp_path):
    n = 500
    wave_nm = np.linspace(400.0, 700.0, n)
    flux = np.stack([np.arange(n, dtype=np.float32) + k for k in range(3)])
    ivar = np.full_like(flux, 4.0)
    qual = np.zeros(flux.shape, dtype=np.int16)
    qual[:, 10] = 8
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(flux, name="SCI"), fits.ImageHDU(ivar, name="WHT"),
                         fits.BinTableHDU.from_columns([fits.Column("LAMBDA", "D", array=wave_nm)], name="AXIS"),
                         fits.ImageHDU(qual, name="DQ")])
    data = tmp_path / "odd.fits"
    hdul.writeto(data)
    assert pytest.raises(BadFileError, scan_file, str(data), None, load_header_rules())  # not auto-detected
    mapping = tmp_path / "odd.toml"
    mapping.write_text('[flux]\nhdu = "SCI"\nunit = "adu"\n[wavelength]\nhdu = "AXIS"\ncolumn = "LAMBDA"\n'
                       'unit = "nm"\n[uncertainty]\nhdu = "WHT"\nkind = "ivar"\n[mask]\nhdu = "DQ"\n'
                       'convention = "instrument DQ bits"\n')
    choice = FormatChoice("mapping", mapping_ref(str(mapping)))
    scan = scan_file(str(data), choice, load_header_rules())
    assert scan.n_spectra == 3 and scan.flux_unit == "adu" and scan.mask_convention == "instrument DQ bits"
    assert scan.format == "mapping"  # the store says which reader; the root attrs say which mapping file
    reader = get_reader("mapping", choice.mapping)
    with open_fits(str(data)) as h:
        layout = reader.layout(str(data), h)
        block = reader.read(str(data), h, layout, 1, 2)
    np.testing.assert_allclose(layout.grids[0], wave_nm * 10)
    np.testing.assert_array_equal(block.flux, flux[1:])
    np.testing.assert_allclose(block.uncertainty, 0.5)
    assert block.mask[0, 10] == 8

    mapping.write_text('[flux]\nhdu = "SCI"\n[wavelength]\nhdu = "AXIS"\ncolumn = "LAMBDA"\n')
    with pytest.raises(InputError, match="changed during the run"):
        get_reader("mapping", choice.mapping)
    with pytest.raises(BadFileError, match="wavelength unit '' is not recognised"):
        scan_file(str(data), FormatChoice("mapping", mapping_ref(str(mapping))), load_header_rules())
    mapping.write_text('[flux]\nhdu = 1\n[colour]\nhdu = 2\n')
    with pytest.raises(InputError, match=r"needs a \[wavelength\] table"):
        mapping_ref(str(mapping))


@pytest.mark.parametrize(("unit", "ok"), [("nm", True), ("um", True), ("angstrom", True), ("parsec", False)])
def test_eso_sdp_wavelength_units(tmp_path, unit, ok):
    path, truth = ss.make_eso_sdp(tmp_path / "sdp.fits", unit="nm" if unit == "parsec" else unit)
    if not ok:
        with fits.open(path, mode="update") as h:
            h[1].header["TUNIT1"] = "parsec"
        with pytest.raises(BadFileError, match=r"sdp\.fits: wavelength column unit TUNIT1 = 'parsec'"):
            read_all(path)
        return
    _, layout, _, _ = read_all(path)
    np.testing.assert_allclose(layout.grids[0], truth[0]["wave"], rtol=1e-12)
