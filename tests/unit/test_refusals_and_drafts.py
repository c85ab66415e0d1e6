"""Refusals that say how to proceed, and `shardmerge mapping draft`: for each layout no built-in reader takes
(a table with no unit at all, a 2-D (TDIM) flux column, a table whose header holds the WCS of its array
column, a table of several quantities, an image with an unknown CTYPE1) the refusal names the file, each
HDU with its columns and units, what is ambiguous and the mapping that resolves it; the draft mapping
ingests after the edits its comments ask for, values compared with an astropy reading (Angstrom)."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import BadFileError
from shardmerge.readers import open_fits
from shardmerge.readers.mapping import MappingReader, check_mapping
from shardmerge.readers.survey import MAX_COLUMNS_SHOWN, MAX_HDU_LINES, refusal
from tests.helpers import run_cli

N = 60
RNG = np.random.default_rng(2626)


def _write(path, *hdus):
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(path)
    return path


def unitless(tmp_path):
    cols = [fits.Column("LAM_A", "D", array=np.linspace(400.0, 700.0, N)),
            fits.Column("F", "E", array=RNG.normal(5, 1, N).astype(np.float32)),
            fits.Column("E", "E", array=np.full(N, 0.25, np.float32))]
    return _write(tmp_path / "unitless.fits", fits.BinTableHDU.from_columns(cols, name="SPEC"))


def tdim(tmp_path):
    rows, sub = 2, 3
    cols = [fits.Column("WAVE", f"{N}D", unit="Angstrom", array=np.tile(np.linspace(4000, 5000, N), (rows, 1))),
            fits.Column("FLUX", f"{sub * N}E", dim=f"({N},{sub})", unit="erg/s/cm2/A",
                        array=RNG.normal(1, 0.1, (rows, sub, N)).astype(np.float32))]
    return _write(tmp_path / "tdim.fits", fits.BinTableHDU.from_columns(cols))


def table_wcs(tmp_path):
    t = fits.BinTableHDU.from_columns([fits.Column("FLUX", f"{N}E", unit="erg/s/cm2/A",
                                                   array=RNG.normal(1, 0.1, (4, N)).astype(np.float32))])
    t.header.update(CTYPE1="WAVE", CRVAL1=6000.0, CDELT1=0.5, CRPIX1=1.0, CUNIT1="Angstrom")
    return _write(tmp_path / "tablewcs.fits", t)


def several(tmp_path):
    cols = [fits.Column("WAVE", "D", unit="Angstrom", array=np.linspace(5000, 6000, N)),
            fits.Column("OBJ", "E", unit="erg/s/cm2/A", array=RNG.normal(3, 1, N).astype(np.float32)),
            fits.Column("SKYF", "E", unit="erg/s/cm2/A", array=RNG.normal(1, 1, N).astype(np.float32))]
    return _write(tmp_path / "several.fits", fits.BinTableHDU.from_columns(cols))


def odd_ctype(tmp_path):
    h = fits.PrimaryHDU(RNG.normal(1, 0.1, N).astype(np.float32))
    h.header.update(CTYPE1="FOO", CRVAL1=4000.0, CDELT1=2.0, CRPIX1=1.0, BUNIT="adu")
    h.writeto(tmp_path / "ctype.fits")
    return tmp_path / "ctype.fits"


def bare_cube(tmp_path):
    """A multi-order cube [order, {wave, flux, error}, pixel] with no card saying so (no Spextool keywords)."""
    cube = np.empty((4, 3, N), np.float32)
    for o in range(4):
        cube[o, 0] = np.linspace(1.0 + 0.3 * o, 1.25 + 0.3 * o, N)
        cube[o, 1] = RNG.normal(1, 0.1, N)
        cube[o, 2] = 0.1
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    return tmp_path / "cube.fits"


def _expected_cube(path):
    cube = fits.getdata(path, 0)
    return [cube[o, 0].astype(np.float64) * 1e4 for o in range(4)], [cube[o, 1] for o in range(4)]


def radio(tmp_path):
    """A radio spectrum (ALFALFA's layout): array columns of a frequency and a flux density, no wavelength."""
    cols = [fits.Column("VHELIO", f"{N}D", unit="KM/S", array=np.linspace(-500, 500, N)[None]),
            fits.Column("FREQ", f"{N}D", unit="MHz", array=np.linspace(1420.0, 1415.0, N)[None]),
            fits.Column("FLUXDENS", f"{N}D", unit="mJy", array=RNG.normal(2, 1, (1, N)))]
    return _write(tmp_path / "radio.fits", fits.BinTableHDU.from_columns(cols))


def _expected_radio(path):
    t = fits.getdata(path, 1)
    return [299792458.0e10 / (t["FREQ"][0] * 1e6)], [t["FLUXDENS"][0]]  # lambda = c / nu: falling nu, rising lambda


# (builder, what the refusal must name, the draft's edits {commented line: line}, expected wave/flux)
def _expected_unitless(path):
    t = fits.getdata(path, 1)
    return [t["LAM_A"] * 10.0], [t["F"]]  # the edit says nm


def _expected_tdim(path):
    t = fits.getdata(path, 1)
    return [row for row in t["WAVE"] for _ in range(3)], [cell for row in t["FLUX"] for cell in row]


def _expected_table_wcs(path):
    t = fits.getdata(path, 1)
    return [6000.0 + 0.5 * np.arange(N)] * 4, list(t["FLUX"])


def _expected_several(path):
    t = fits.getdata(path, 1)
    return [t["WAVE"]], [t["SKYF"]]  # the edit picks SKYF


def _expected_ctype(path):
    return [4000.0 + 2.0 * np.arange(N)], [fits.getdata(path, 0)]


CASES = {
    "unitless": (unitless, ["HDU 1 SPEC: table of 60 rows", "LAM_A (D, no unit)", "F (E, no unit)",
                            "no column states a unit", "Angstrom, nm or micron"],
                 {'# unit = "Angstrom"': 'unit = "nm"', '# kind = "sigma"': 'kind = "sigma"'}, _expected_unitless),
    "tdim": (tdim, ["FLUX (180E, TDIM 3 x 60, erg/s/cm2/A)", "WAVE (60D, Angstrom)", "2-D array column",
                    "each row of the cell"], {}, _expected_tdim),
    "table_wcs": (table_wcs, ["FLUX (60E, erg/s/cm2/A)", "CRVAL1=6000.0", "CDELT1=0.5", "wcs = true"], {},
                  _expected_table_wcs),
    "several": (several, ["OBJ (E, erg/s/cm2/A)", "SKYF (E, erg/s/cm2/A)", "several columns could be the flux",
                          "pick [flux] column"], {'# column = "OBJ"': 'column = "SKYF"'}, _expected_several),
    "ctype": (odd_ctype, ["CTYPE1 = 'FOO'", 'wcs = true, unit = "Angstrom"'],
              {'# unit = "Angstrom"': 'unit = "Angstrom"'}, _expected_ctype),
    "radio": (radio, ["FREQ (60D, MHz)", "FREQ (MHz) is a frequency axis", 'column = "FREQ", unit = "MHz"'], {},
              _expected_radio),
    "cube": (bare_cube, ["image NAXIS1=60, NAXIS2=3, NAXIS3=4", "4 planes of 3 rows", 'band = "all", row = 1'],
             {"# row = 1": "row = 1", '# unit = "Angstrom"': 'unit = "um"'}, _expected_cube),
}


def _ingest(tmp_path, path, *extra):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    (d / path.name).symlink_to(path)
    return run_cli("ingest", d, "-o", tmp_path / "out.zarr", "--workers", "0", *extra)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(CASES))
def test_refusal_names_file_what_was_found_what_is_ambiguous_and_the_fix(tmp_path, case):
    build, said, _, _ = CASES[case]
    path = build(tmp_path)
    r = _ingest(tmp_path, path)
    assert r.exit_code == 3, r.output
    assert str(tmp_path / "in" / path.name) in r.output  # the file as given
    for text in said:
        assert text in r.output, (text, r.output)
    assert "--format mapping" in r.output
    assert "shardmerge mapping draft" in r.output
    if case not in ("ctype", "cube"):  # a table refused at detection: every HDU a line: every HDU a line
        assert "HDU 0 (no EXTNAME): no data" in r.output
        assert "What is missing or ambiguous" in r.output


def _draft(tmp_path, path):
    out = tmp_path / "draft.toml"
    r = run_cli("mapping", "draft", path, "-o", out)
    assert r.exit_code == 0, r.output
    return out.read_text()


def _store_values(tmp_path):
    g = zarr.open_group(tmp_path / "out.zarr", mode="r")
    wave, flux = np.asarray(g["signal/wavelength"]), np.asarray(g["signal/flux_raw"])
    return (np.broadcast_to(wave, flux.shape) if wave.ndim == 1 else wave), flux


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", sorted(CASES))
def test_draft_ingests_after_the_edits_its_comments_ask_for(tmp_path, case):
    build, _, edits, expected = CASES[case]
    path = build(tmp_path)
    text = _draft(tmp_path, path)
    assert str(path) in text  # the draft says which file it describes
    for commented in edits:
        assert commented in text.splitlines(), (commented, text)
        key = commented[2:].split(" =")[0]
        assert any(line.startswith(f"# {key}: one of ") and "pick one" in line for line in text.splitlines()), text
    if not edits:  # unambiguous: the draft passes the schema as written, and says so
        assert "Nothing was ambiguous" in text
    else:
        assert "Edit before use" in text
    lines = [edits.get(line, line) for line in text.splitlines()]
    mapping = tmp_path / "m.toml"
    mapping.write_text("\n".join(lines) + "\n")
    check_mapping(str(mapping), tomllib.loads(mapping.read_text()))
    r = _ingest(tmp_path, path, "--format", "mapping", "--mapping", mapping)
    assert r.exit_code == 0, r.output
    wave, flux = _store_values(tmp_path)
    want_wave, want_flux = expected(path)
    assert flux.shape[0] == len(want_flux)
    for row, (w, f) in enumerate(zip(want_wave, want_flux, strict=True)):
        np.testing.assert_allclose(wave[row, : len(w)], np.asarray(w, np.float64), rtol=1e-12)
        np.testing.assert_array_equal(flux[row, : len(f)], np.asarray(f, np.float32))


@pytest.mark.timeout(120)
def test_the_draft_of_a_file_a_built_in_reader_takes_reads_it_as_that_reader_does(tmp_path):
    """An IRAF-style 1-D image (no CUNIT1, axis plausible in Angstrom) with an ERR extension: the draft names
    nothing as ambiguous (the readers settle the unit by IRAF's convention), includes the ERR extension as
    [uncertainty], and its store equals the built-in reader's."""
    from shardmerge.testing.spectra import make_wcs1d

    path = make_wcs1d(tmp_path / "iraf.fits", i=1, n_pix=300, uncertainty="err")
    text = _draft(tmp_path, path)
    assert "Nothing was ambiguous" in text and "could not settle" not in text, text
    assert '[uncertainty]\nhdu = "ERR"\nkind = "sigma"' in text and 'unit = "Angstrom"' in text, text
    mapping = tmp_path / "m.toml"
    mapping.write_text(text)
    values = {}
    for k, how in enumerate((("--format", "mapping", "--mapping", mapping), ())):
        (tmp_path / str(k)).mkdir()
        r = _ingest(tmp_path / str(k), path, *how)
        assert r.exit_code == 0 and "unread-extension" not in r.output, r.output
        g = zarr.open_group(tmp_path / str(k) / "out.zarr", mode="r")
        values[how] = [np.asarray(g[a]) for a in ("signal/wavelength", "signal/flux_raw", "signal/uncertainty_raw")]
    for drafted, built_in in zip(*values.values(), strict=True):
        np.testing.assert_array_equal(drafted, built_in)
    assert not np.isnan(values[()][2]).all()


@pytest.mark.parametrize(("extensions", "drafted"), [
    ((("INVVAR", 4.0),), ("INVVAR", "ivar")), ((("INV_VAR", 4.0),), ("INV_VAR", "ivar")),
    ((("STAT", 0.25),), ("STAT", "var")), ((("SKY_ERR", 9.0), ("ERR", 0.5)), ("ERR", "sigma"))])
def test_the_draft_takes_the_uncertainty_extension_the_built_in_reader_takes(tmp_path, extensions, drafted):
    """The draft names the uncertainty by the image readers' own rule (wcs.uncertainty_kind): INVVAR is an
    inverse variance, STAT (MUSE) a variance, SKY_ERR the sky's error and not the flux's."""
    image = fits.PrimaryHDU(RNG.normal(1, 0.1, N).astype(np.float32))
    image.header.update(CRVAL1=5000.0, CDELT1=1.0, CRPIX1=1.0, CTYPE1="LINEAR")
    hdus = [fits.ImageHDU(np.full(N, v, np.float32), name=name) for name, v in extensions]
    path = tmp_path / "img.fits"
    fits.HDUList([image, *hdus]).writeto(path)
    text = _draft(tmp_path, path)
    assert f'[uncertainty]\nhdu = "{drafted[0]}"\nkind = "{drafted[1]}"' in text, text


@pytest.mark.timeout(60)
def test_an_ambiguous_key_left_commented_is_refused_not_guessed(tmp_path):
    path = unitless(tmp_path)
    mapping = tmp_path / "m.toml"
    mapping.write_text(_draft(tmp_path, path))  # the wavelength unit left commented out
    r = _ingest(tmp_path, path, "--format", "mapping", "--mapping", mapping)
    assert r.exit_code == 3, r.output
    assert "wavelength unit" in r.output and "set unit" in r.output


@pytest.mark.timeout(60)
def test_draft_to_stdout_and_refusals_of_draft(tmp_path):
    path = several(tmp_path)
    r = run_cli("mapping", "draft", path)
    assert r.exit_code == 0 and "[flux]" in r.stdout and "[wavelength]" in r.stdout
    not_fits = tmp_path / "notes.fits"
    not_fits.write_text("just some text, not FITS\n" * 200)
    r = run_cli("mapping", "draft", not_fits)
    assert r.exit_code == 2 and str(not_fits) in r.output and "not a FITS file" in r.output
    r = run_cli("mapping", "draft", tmp_path / "missing.fits")
    assert r.exit_code == 2 and "missing.fits" in r.output
    existing = tmp_path / "keep.toml"
    existing.write_text("# my edits\n")
    r = run_cli("mapping", "draft", path, "-o", existing)
    assert r.exit_code == 2 and "not replaced" in r.output
    assert existing.read_text() == "# my edits\n"


@pytest.mark.timeout(60)
def test_refusal_is_bounded(tmp_path):
    cols = [fits.Column(f"Q{k}", "E", array=np.zeros(3, np.float32)) for k in range(100)]
    tables = [fits.BinTableHDU.from_columns(cols, name=f"T{k}") for k in range(40)]
    path = _write(tmp_path / "wide.fits", *tables)
    with open_fits(str(path), headers_only=True) as hdul:
        text = refusal(str(path), hdul)
    assert f"and {41 - MAX_HDU_LINES} more HDUs" in text
    assert f"and {100 - MAX_COLUMNS_SHOWN} more" in text
    assert "Q99" not in text
    assert len(text) < 6000
    assert len(text.splitlines()) < MAX_HDU_LINES + 20


@pytest.mark.timeout(60)
def test_mapping_reads_every_plane_of_a_multi_order_cube(tmp_path):
    orders, n = 4, 50
    cube = np.empty((orders, 3, n), np.float32)
    for o in range(orders):
        cube[o, 0] = np.linspace(1.0 + o * 0.2, 1.2 + o * 0.2, n)  # micron
        cube[o, 1] = RNG.normal(1, 0.1, n)
        cube[o, 2] = 0.05
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    doc = {"flux": {"hdu": 0, "band": "all", "row": 1, "unit": "W/m2/um"},
           "wavelength": {"hdu": 0, "band": "all", "row": 0, "unit": "um"},
           "uncertainty": {"hdu": 0, "band": "all", "row": 2, "kind": "sigma"}}
    check_mapping("m.toml", doc)
    reader = MappingReader(doc)
    with open_fits(str(tmp_path / "cube.fits")) as hdul:
        layout = reader.layout("cube.fits", hdul)
        block = reader.read("cube.fits", hdul, layout, 0, layout.n_spectra)
    assert layout.n_spectra == orders
    for o in range(orders):
        np.testing.assert_allclose(layout.grids[layout.grid_of[o]], cube[o, 0].astype(np.float64) * 1e4)
        np.testing.assert_array_equal(block.flux[o], cube[o, 1])
        np.testing.assert_allclose(block.uncertainty[o], cube[o, 2])
    flat = fits.HDUList([fits.PrimaryHDU(cube[0])])  # band = "all" on a 2-D image: said, not guessed
    with pytest.raises(BadFileError, match='band = "all" needs a 3-D image'):
        MappingReader({**doc, "flux": {"hdu": 0, "band": "all"}}).layout("flat.fits", flat)


@pytest.mark.timeout(60)
def test_table_wcs_in_the_array_column_form_and_a_table_without_column(tmp_path):
    t = fits.BinTableHDU.from_columns([fits.Column("ID", "J", array=np.arange(2)),
                                       fits.Column("FLUX", f"{N}E", array=np.ones((2, N), np.float32))])
    t.header.update({"1CRVL2": 7000.0, "1CDLT2": 1.5, "1CRPX2": 1.0, "1CUNI2": "Angstrom", "1CTYP2": "WAVE"})
    path = _write(tmp_path / "colwcs.fits", t)
    reader = MappingReader({"flux": {"hdu": 1, "column": "FLUX"}, "wavelength": {"wcs": True}})
    with open_fits(str(path)) as hdul:
        layout = reader.layout(str(path), hdul)
    assert layout.n_spectra == 2
    np.testing.assert_allclose(layout.grids[0], 7000.0 + 1.5 * np.arange(N))
    reader = MappingReader({"flux": {"hdu": 1}, "wavelength": {"wcs": True}})
    with open_fits(str(path)) as hdul, pytest.raises(BadFileError, match="is a table: name its column"):
        reader.layout(str(path), hdul)


def test_band_all_passes_the_schema_and_other_strings_do_not():
    check_mapping("m.toml", {"flux": {"hdu": 0, "band": "all"}, "wavelength": {"wcs": True}})
    from shardmerge.errors import MappingError

    with pytest.raises(MappingError, match='band: expected a plane index .* or "all"'):
        check_mapping("m.toml", {"flux": {"hdu": 0, "band": "every"}, "wavelength": {"wcs": True}})
