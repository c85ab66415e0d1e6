"""Every unit a store states parses with astropy.units: the stores of every synthetic survey layout and of
a corpus whose files spell their flux units every way archives do (and one no one can read)."""

from __future__ import annotations

import json
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.testing.spectra import make_wcs1d
from shardmerge.testing.surveys import make_survey_folder
from tests.helpers import run_cli
from tests.units_check import assert_units_parse

SDSS = u.Unit("1e-17 erg / (s cm2 Angstrom)")
# file stem -> BUNIT (None: no BUNIT card), and the unit each means (None: unknown)
SPELLINGS = {
    "a_sdss": ("1E-17 erg/cm^2/s/Ang", SDSS),
    "b_sdss_caret": ("10^-17 erg/s/cm^2/Angstrom", SDSS),
    "c_sdss_a": ("1e-17 erg/s/cm2/A", SDSS),
    "d_adu": ("ADU", u.adu),
    "e_counts": ("COUNTS", u.ct),
    "f_jy": ("Jy", u.Jy),
    "g_relative": ("Relative Flux", u.dimensionless_unscaled),
    "h_odd": ("furlong/fortnight", None),
    "i_blank": (None, None),
}


def _with_bunit(path: Path, bunit: str | None) -> None:
    """Rewrite a file with another BUNIT (and fresh checksums: an edited header is not what is tested)."""
    with fits.open(path) as hdul:
        hdul = fits.HDUList([h.copy() for h in hdul])
    if bunit is None:
        del hdul[0].header["BUNIT"]
    else:
        hdul[0].header["BUNIT"] = bunit
    hdul.writeto(path, overwrite=True, checksum=True)


def _corpus(root: Path, stems: list[str]) -> Path:
    for i, stem in enumerate(stems):
        path = make_wcs1d(root / f"{stem}.fits", i=i, n_pix=500, seed=i)
        _with_bunit(path, SPELLINGS[stem][0])
    return root


def _ingest(inputs: Path, out: Path, scheduler: str, *extra: str):
    report = out.parent / f"{out.name}.report.json"
    r = run_cli("ingest", inputs, "-o", out, "--scheduler", scheduler, "--report", report, *extra)
    return r, report


@pytest.mark.timeout(300)
def test_every_survey_layout_stores_units_astropy_reads(tmp_path, dask_scheduler):
    make_survey_folder(tmp_path / "in")
    r, _ = _ingest(tmp_path / "in", tmp_path / "s.zarr", dask_scheduler)
    assert r.exit_code == 0, r
    checked = assert_units_parse(tmp_path / "s.zarr")
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    # units differ between the surveys: per spectrum, and the MUSE file (no BUNIT) is unknown
    assert g["signal/flux_raw"].attrs["units_column"] == "metadata/flux_unit"
    assert g["signal/flux_raw"].attrs["units_unknown"] is True
    assert "units" not in g["signal/flux_raw"].attrs
    pairs = set(zip(g["metadata/format"][:].tolist(), g["metadata/flux_unit_source"][:].tolist(),
                    g["metadata/flux_unit"][:].tolist(), strict=True))
    assert ("lamost", "10**-17 erg/s/cm^2/A", SDSS.to_string()) in pairs
    assert any(src == "Relative Flux" and unit == "1" for _, src, unit in pairs)  # HARPS s1d
    assert any(src == "e-" and unit == "electron" for _, src, unit in pairs)  # ESPRESSO
    assert u.Unit(checked["representations/normalized_flux"][0]) == u.dimensionless_unscaled
    assert "units" not in g["signal/mask_raw"].attrs and g["signal/mask_raw"].attrs["flags"] == "bitmask"


@pytest.mark.timeout(300)
def test_a_corpus_of_every_spelling_stores_each_spectrum_s_unit_and_its_spelling(tmp_path, dask_scheduler):
    inputs = _corpus(tmp_path / "in", sorted(SPELLINGS))
    r, report = _ingest(inputs, tmp_path / "m.zarr", dask_scheduler)
    assert r.exit_code == 0, r
    assert "unknown-unit: 1" in r.output  # furlong/fortnight; no BUNIT at all is no oddity
    assert_units_parse(tmp_path / "m.zarr")
    g = zarr.open_group(str(tmp_path / "m.zarr"), mode="r")
    flux = g["signal/flux_raw"].attrs.asdict()
    assert flux["units_column"] == "metadata/flux_unit" and flux["units_unknown"] is True
    assert flux["units_source_column"] == "metadata/flux_unit_source"
    paths = g["metadata/source_path"][:].tolist()
    units = g["metadata/flux_unit"][:].tolist()
    sources = g["metadata/flux_unit_source"][:].tolist()
    for path, unit, source in zip(paths, units, sources, strict=True):
        bunit, meant = SPELLINGS[Path(path).stem]
        assert source == (bunit or "")
        if meant is None:
            assert unit == ""  # unknown: no unit attached (the spelling is in flux_unit_source)
        else:
            assert unit and u.Unit(unit, parse_strict="raise") == meant
    odd = {Path(f["path"]).stem: f["notes"] for f in json.loads(report.read_text())["odd_files"]}
    assert set(odd) == {"h_odd"}  # a file with no BUNIT states nothing odd: it is unknown, not bent
    assert any(n.startswith("unknown-unit:") and "furlong/fortnight" in n for n in odd["h_odd"])

    # read back: a unit not understood (or never stated) is an UnrecognizedUnit, never dimensionless
    from shardmerge import open_store

    store = open_store(tmp_path / "m.zarr")
    by_stem = {Path(p).stem: i for i, p in enumerate(paths)}
    assert store.flux_unit(by_stem["g_relative"]) == u.dimensionless_unscaled
    furlong, blank = store.flux_unit(by_stem["h_odd"]), store.flux_unit(by_stem["i_blank"])
    assert isinstance(furlong, u.UnrecognizedUnit) and furlong.name == "furlong/fortnight"
    assert isinstance(blank, u.UnrecognizedUnit) and blank.name == "unknown"
    assert store.flux_unit(by_stem["a_sdss"]) == SDSS


@pytest.mark.timeout(300)
def test_one_unit_spelled_three_ways_is_one_units_attr_and_a_column_of_spellings(tmp_path, dask_scheduler):
    stems = ["a_sdss", "b_sdss_caret", "c_sdss_a"]
    inputs = _corpus(tmp_path / "in", stems)
    plan = run_cli("plan", inputs, "--json")
    assert plan.exit_code == 0, plan
    assert json.loads(plan.stdout)["flux_units"] == [SDSS.to_string()]  # the plan prints normalised units
    r, _ = _ingest(inputs, tmp_path / "one.zarr", dask_scheduler)
    assert r.exit_code == 0, r
    assert assert_units_parse(tmp_path / "one.zarr")["signal/flux_raw"] == [SDSS.to_string()]
    g = zarr.open_group(str(tmp_path / "one.zarr"), mode="r")
    flux = g["signal/flux_raw"].attrs.asdict()
    assert flux["units"] == SDSS.to_string() and flux["units_source_column"] == "metadata/flux_unit_source"
    assert "metadata/flux_unit" not in g  # one unit: no per-spectrum units
    assert sorted(set(g["metadata/flux_unit_source"][:].tolist())) == sorted(SPELLINGS[s][0] for s in stems)


@pytest.mark.timeout(300)
def test_one_spelling_is_a_units_source_attr(tmp_path, dask_scheduler):
    inputs = _corpus(tmp_path / "in", ["d_adu"])
    r, _ = _ingest(inputs, tmp_path / "adu.zarr", dask_scheduler)
    assert r.exit_code == 0, r
    assert_units_parse(tmp_path / "adu.zarr")
    g = zarr.open_group(str(tmp_path / "adu.zarr"), mode="r")
    assert {k: v for k, v in g["signal/uncertainty_raw"].attrs.asdict().items() if k.startswith("units")} == \
        {"units": "adu", "units_source": "ADU"}
    assert "metadata/flux_unit_source" not in g


@pytest.mark.timeout(300)
def test_a_store_of_one_unknown_unit_says_so_and_passes_the_gate(tmp_path, dask_scheduler):
    inputs = _corpus(tmp_path / "in", ["h_odd"])
    r, _ = _ingest(inputs, tmp_path / "odd.zarr", dask_scheduler)
    assert r.exit_code == 0, r
    assert_units_parse(tmp_path / "odd.zarr")
    flux = zarr.open_group(str(tmp_path / "odd.zarr"), mode="r")["signal/flux_raw"].attrs.asdict()
    assert "units" not in flux and flux["units_unknown"] is True and flux["units_source"] == "furlong/fortnight"
    v = run_cli("validate", tmp_path / "odd.zarr")
    assert v.exit_code == 0, v


@pytest.mark.timeout(300)
def test_strict_unknown_unit_refuses_the_file(tmp_path, dask_scheduler):
    inputs = _corpus(tmp_path / "in", ["a_sdss", "h_odd"])
    r, _ = _ingest(inputs, tmp_path / "s.zarr", dask_scheduler, "--strict", "unknown-unit",
                   "--on-bad-file", "skip")
    assert r.exit_code == 0, r
    assert "refused: --strict unknown-unit" in r.output
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert [Path(p).stem for p in g["metadata/source_path"][:].tolist()] == ["a_sdss"]
    assert g["signal/flux_raw"].attrs["units"] == SDSS.to_string()


@pytest.mark.timeout(300)
def test_the_gate_refuses_a_units_attr_astropy_cannot_read(tmp_path, dask_scheduler):
    inputs = _corpus(tmp_path / "in", ["d_adu", "f_jy"])
    r, _ = _ingest(inputs, tmp_path / "g.zarr", dask_scheduler)
    assert r.exit_code == 0, r
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="r+")
    g["metadata/flux_unit"][0] = "furlong/fortnight"
    g["signal/wavelength"].attrs["units"] = "Angstroms"
    v = run_cli("validate", tmp_path / "g.zarr")
    assert v.exit_code != 0
    assert "units_column 'metadata/flux_unit' holds 'furlong/fortnight'" in v.output
    assert "signal/wavelength: units 'Angstroms' does not parse" in v.output
    with pytest.raises(AssertionError, match="furlong/fortnight"):
        assert_units_parse(tmp_path / "g.zarr")
    assert np.asarray(g["metadata/flux_unit"][1:]).tolist() == ["Jy"]
