"""A mapping file whose value has the wrong TOML type is refused before any work (exit 2), naming the file,
the table, the key, the type it needs and the value found; never read as some other value (issue 24:
`log10 = "false"` was taken as true and the wavelength stored as 10**x)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import InputError
from shardmerge.readers.mapping import mapping_ref
from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(120)

GOOD = '[flux]\nhdu = 0\n[wavelength]\nhdu = 1\nunit = "Angstrom"\n'

# (table, key = value appended, what the error must say it needs, how it must show the value)
WRONG = [
    ("wavelength", 'log10 = "false"', "a boolean", 'string "false"'),
    ("wavelength", "log10 = 0", "a boolean", "integer 0"),
    ("flux", "hdu = true", "an HDU index", "boolean true"),
    ("flux", "hdu = -1", "an HDU index", "integer -1"),
    ("flux", "hdu = 1.0", "an HDU index", "float 1.0"),
    ("flux", 'row = "0"', "a row index", 'string "0"'),
    ("flux", "row = false", "a row index", "boolean false"),
    ("flux", "band = [0]", "a plane index", "an array"),
    ("flux", "column = 3", "a column name", "integer 3"),
    ("flux", 'column = ""', "a column name", 'string ""'),
    ("flux", "unit = 1e-17", "a unit", "float 1e-17"),
    ("wavelength", 'wcs = "yes"', "a boolean", 'string "yes"'),
    ("uncertainty", 'kind = "sd"', 'one of the strings "sigma", "ivar", "var"', 'string "sd"'),
    ("uncertainty", "kind = 1", 'one of the strings "sigma", "ivar", "var"', "integer 1"),
    ("mask", "convention = true", "a description", "boolean true"),
    ("continuum", "method = 2", "a description", "integer 2"),
]


def _text_with(table: str, line: str) -> str:
    """GOOD with `line` in [table] (the optional tables made with an hdu first)."""
    if line.startswith("hdu =") and table == "flux":
        return GOOD.replace("hdu = 0\n", f"{line}\n", 1)
    if table in ("flux", "wavelength"):
        return GOOD.replace(f"[{table}]\n", f"[{table}]\n{line}\n", 1)
    return GOOD + f"[{table}]\nhdu = 0\n{line}\n"


@pytest.mark.parametrize(("table", "line", "needs", "found"), WRONG, ids=[w[1] for w in WRONG])
def test_a_value_of_the_wrong_type_is_refused_naming_file_key_type_and_value(tmp_path, table, line, needs, found):
    m = tmp_path / "m.toml"
    m.write_text(_text_with(table, line))
    key = line.split(" =")[0]
    with pytest.raises(InputError) as err:
        mapping_ref(str(m))
    message = str(err.value)
    assert message.startswith(f"mapping {m}: [{table}] {key}: expected {needs}"), message
    assert message.endswith(f"found {found}"), message


@pytest.mark.parametrize(("text", "says"), [
    (GOOD.replace("[flux]\n", "[flux]\nlog10 = true\n"), "[flux] log10: only [wavelength] may set it"),
    (GOOD + "[uncertainty]\nhdu = 0\nunit = \"nm\"\n", "[uncertainty] unit: only [flux] and [wavelength] may set it"),
    ('[flux]\nhdu = 0\n[wavelength]\nwcs = true\nhdu = 1\n', "wcs = true reads axis 1 of the flux image, so hdu"),
    ('[flux]\nhdu = 0\ncolumn = "F"\nrow = 0\n[wavelength]\nwcs = true\n', "row and band (image rows"),
    ('flux = 1\n[wavelength]\nwcs = true\n', "flux must be a table ([flux]), found integer 1"),
    (GOOD.replace("[flux]\n", "[flux]\nhdus = 1\n"), "[flux] has unknown key 'hdus'; known: hdu, column, row"),
    (GOOD + "[params]\nhdu = 0\n", "unknown table [params]"),
])
def test_a_key_that_would_be_ignored_is_refused(tmp_path, text, says):
    m = tmp_path / "m.toml"
    m.write_text(text)
    with pytest.raises(InputError, match="^mapping .*" + re.escape(says)):
        mapping_ref(str(m))


def test_every_documented_layout_of_a_mapping_is_accepted(tmp_path):
    """The schema refuses what is wrong, not what the module docstring and docs/mapping.md document."""
    for i, text in enumerate([
        GOOD + '[uncertainty]\nhdu = 1\ncolumn = "IVAR"\nkind = "ivar"\n[mask]\nhdu = "DQ"\nconvention = "bits"\n'
               '[continuum]\nhdu = 1\nrow = 3\nmethod = "fit"\n',
        '[flux]\nhdu = "SCI"\nband = 0\nrow = 2\nunit = "adu"\n[wavelength]\nwcs = true\nlog10 = true\nunit = "nm"\n',
        '[flux]\nhdu = 1\ncolumn = "FLUX"\n[wavelength]\nhdu = 1\ncolumn = "LOGLAM"\nlog10 = false\n',
    ]):
        m = tmp_path / f"ok{i}.toml"
        m.write_text(text)
        mapping_ref(str(m))


def _two_hdu_file(path) -> str:
    """One spectrum: flux in the primary image, a linear wavelength 4000-9000 A in HDU 1."""
    n = 500
    flux = fits.PrimaryHDU(np.linspace(1, 2, n, dtype=np.float32))
    wave = fits.ImageHDU(np.linspace(4000.0, 9000.0, n), name="WAVE")
    fits.HDUList([flux, wave]).writeto(path)
    return str(path)


def test_log10_false_as_a_string_is_refused_by_ingest_and_plan_before_any_work(tmp_path):
    spec = _two_hdu_file(tmp_path / "spec.fits")
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD + 'log10 = "false"\n')
    out = tmp_path / "out.zarr"
    for command in (["ingest", spec, "-o", out, "--workers", "0"], ["plan", spec]):
        result = run_cli(*command, "--format", "mapping", "--mapping", bad)
        assert result.exit_code == 2, result
        assert f'mapping {bad}: [wavelength] log10: expected a boolean (true or false), found string "false"' \
            in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "spec.fits"]  # nothing written beside OUT


def test_log10_false_as_a_boolean_stores_the_linear_grid(tmp_path):
    """The same file through the typed mapping: the wavelength as it is, not 10**x."""
    spec = _two_hdu_file(tmp_path / "spec.fits")
    good = tmp_path / "good.toml"
    good.write_text(GOOD + "log10 = false\n")
    out = tmp_path / "out.zarr"
    result = run_cli("ingest", spec, "-o", out, "--workers", "0", "--format", "mapping", "--mapping", good)
    assert result.exit_code == 0, result
    wave = np.asarray(zarr.open_group(str(out), mode="r")["signal/wavelength"][...]).ravel()
    assert wave.min() == 4000.0 and wave.max() == 9000.0
