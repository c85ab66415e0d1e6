"""Flux units as archives spell them become text astropy.units reads back as the same unit; a spelling
nothing understands is an `unknown-unit` oddity, never an exception and never a guessed unit."""

from __future__ import annotations

import astropy.units as u
import pytest

from shardmerge.errors import BadFileError
from shardmerge.readers.oddities import KINDS, UNKNOWN_UNIT, Oddities
from shardmerge.schema import FLUX_UNIT_COLUMN, FLUX_UNIT_SOURCE_COLUMN, flux_unit_attrs
from shardmerge.units import DIMENSIONLESS, normalise_flux_unit, parses_as_unit

SDSS = u.Unit("1e-17 erg / (s cm2 Angstrom)")
FLAM = u.erg / u.s / u.cm**2 / u.AA

# source spelling -> the unit it means (from the survey generators, the readers' defaults and the real files)
KNOWN = {
    "1E-17 erg/cm^2/s/Ang": SDSS,
    "10^-17 erg/s/cm^2/Angstrom": SDSS,
    "10^(-17) erg/s/cm^2/Ang": SDSS,
    "1e-17 erg/s/cm2/A": SDSS,
    "10**-17 erg/s/cm^2/A": SDSS,  # LAMOST
    "ergs/cm^2/s/A": FLAM,  # old IRAF files
    "ergs/cm2/s/A": FLAM,
    "10**-17 erg/(s cm2 Angstrom)": SDSS,  # DESI
    "Flux (10^-17 erg/s/cm^2/Ang)": SDSS,  # APOGEE apStar / apVisit BUNIT
    "10**(-19).erg.cm**(-2).s**(-1).angstrom**(-1)": 1e-2 * SDSS,  # ESO Phase 3 (LEGA-C)
    "FLAM": FLAM,
    "flam": FLAM,
    "FNU": u.erg / u.s / u.cm**2 / u.Hz,
    "PHOTLAM": u.photon / u.s / u.cm**2 / u.AA,
    "erg/s/cm2/A": FLAM,
    "erg/cm2/s/A": FLAM,
    "erg cm-2 s-1 A-1": FLAM,
    "erg cm**(-2) s**(-1) angstrom**(-1)": FLAM,  # ESO SDP TUNIT
    "W m-2 nm-1": u.W / u.m**2 / u.nm,
    "ADU": u.adu,
    "adu": u.adu,
    "counts": u.ct,
    "COUNTS": u.ct,
    "e-": u.electron,
    "electrons": u.electron,
    "e-/s": u.electron / u.s,
    "Jy": u.Jy,
    "mJy": u.mJy,
    "uJy": u.uJy,  # JWST x1d
    "nanomaggy": u.Unit("nanomaggy"),
    "Relative Flux": u.dimensionless_unscaled,  # HARPS s1d
    "Normalized Flux": u.dimensionless_unscaled,
    "normalised": u.dimensionless_unscaled,
    "dimensionless (continuum-normalized)": u.dimensionless_unscaled,  # ESO SDP contnorm, aspcapStar
    "dimensionless_unit": u.dimensionless_unscaled,  # specutils' image files
    "  1E-17   erg/cm^2/s/Ang ": SDSS,  # blanks around and inside
}
UNKNOWN = ["unknown", "UNKNOWN", "NONE", "furlong/fortnight", "Flux", "Telluric", "ERG/CM2/S/A"]


@pytest.mark.parametrize("source", sorted(KNOWN))
def test_a_known_spelling_normalises_to_text_astropy_reads_back_as_its_unit(source):
    text, oddity = normalise_flux_unit(source)
    assert oddity is None
    assert text, "a known unit is never written as the empty text"
    assert u.Unit(text, parse_strict="raise") == KNOWN[source]
    assert normalise_flux_unit(text) == (text, None), "normalising is idempotent"


def test_one_unit_spelled_many_ways_is_one_text():
    assert len({normalise_flux_unit(s)[0] for s, unit in KNOWN.items() if unit == SDSS}) == 1


def test_dimensionless_is_a_non_empty_text_that_reads_as_dimensionless_unscaled():
    assert DIMENSIONLESS.strip()
    assert u.Unit(DIMENSIONLESS, parse_strict="raise") == u.dimensionless_unscaled
    assert normalise_flux_unit("Relative Flux")[0] == DIMENSIONLESS


@pytest.mark.parametrize("source", UNKNOWN, ids=repr)
def test_an_unknown_spelling_is_an_oddity_not_a_crash_nor_a_guess(source):
    text, oddity = normalise_flux_unit(source)
    assert text == ""
    assert oddity and repr(source.strip()) in oddity


@pytest.mark.parametrize("source", ["", "   ", None], ids=repr)
def test_no_unit_at_all_is_unknown_but_no_oddity(source):
    assert normalise_flux_unit(source) == ("", None)


def test_unknown_unit_is_an_oddity_kind_that_strict_refuses():
    assert UNKNOWN_UNIT == "unknown-unit" and UNKNOWN_UNIT in KINDS
    Oddities("/x.fits").add(UNKNOWN_UNIT, "accepted by default")
    with pytest.raises(BadFileError, match="--strict unknown-unit"):
        Oddities("/x.fits", frozenset({UNKNOWN_UNIT})).add(UNKNOWN_UNIT, normalise_flux_unit("furlong")[1])


def test_parses_as_unit_agrees_with_astropy():
    for text in ["Angstrom", "deg", "d", "s", "1", "", "1e-17 erg / (Angstrom s cm2)"]:
        assert parses_as_unit(text)
    for text in ["bitmask", "dimensionless", "mixed: see metadata/flux_unit", "1E-17 erg/cm^2/s/Ang", None, 3]:
        assert not parses_as_unit(text)


def test_flux_attrs_one_unit_one_spelling():
    assert flux_unit_attrs(("Jy",), ("Jy",)) == {"units": "Jy", "units_source": "Jy"}


def test_flux_attrs_one_unit_many_spellings_names_the_source_column():
    unit = normalise_flux_unit("FLAM")[0]
    assert flux_unit_attrs((unit,), ("FLAM", "erg/s/cm2/A")) == {"units": unit,
                                                                 "units_source_column": FLUX_UNIT_SOURCE_COLUMN}


def test_flux_attrs_units_that_differ_name_both_columns_and_no_units():
    attrs = flux_unit_attrs(("Jy", "ct"), ("COUNTS", "Jy"))
    assert attrs == {"units_column": FLUX_UNIT_COLUMN, "units_source_column": FLUX_UNIT_SOURCE_COLUMN}


def test_flux_attrs_an_unknown_unit_is_said_and_never_a_units_attr():
    assert flux_unit_attrs(("",), ("furlong",)) == {"units_unknown": True, "units_source": "furlong"}
    mixed = flux_unit_attrs(("", "Jy"), ("Jy", "furlong"))
    assert "units" not in mixed and mixed["units_unknown"] is True and mixed["units_column"] == FLUX_UNIT_COLUMN


def test_a_shard_written_before_units_were_normalised_never_matches(monkeypatch):
    """The units layout is in every shard key: a resume finds no old shard (whose rows.parquet has neither
    normalised units nor their spellings) to reuse."""
    from shardmerge import plan as plan_module
    from shardmerge.plan import FileScan, make_plan

    scans = [FileScan(path=f"/d/{i}.fits", size=100, mtime_ns=1, format="wcs-1d", n_spectra=1, n_pix_max=10,
                      n_pix_min=10, grid_keys=("g",), flux_unit="Jy", flux_unit_source="Jy") for i in range(2)]
    keys = [s.key for s in make_plan(scans).shards]
    monkeypatch.setattr(plan_module, "UNITS_LAYOUT", "verbatim")
    assert not set(keys) & {s.key for s in make_plan(scans).shards}
    monkeypatch.undo()
    from dataclasses import replace

    respelled = [replace(s, flux_unit_source="jansky") for s in scans]  # same unit, another spelling
    assert not set(keys) & {s.key for s in make_plan(respelled).shards}  # flux_unit_source column differs


def test_every_literal_unit_the_schema_writes_parses_with_astropy():
    """The gate takes these as read without importing astropy (schema.SCHEMA_UNITS): they must parse."""
    from shardmerge.schema import SCHEMA_UNITS

    assert {"Angstrom", "deg", "d", "s", DIMENSIONLESS} <= SCHEMA_UNITS
    for text in SCHEMA_UNITS:
        u.Unit(text, parse_strict="raise")
