from __future__ import annotations

import math

import pytest

from shardmerge.errors import InputError
from shardmerge.headers import (
    canonical_fields,
    load_header_rules,
    parse_angle,
    project_header,
    sanitize_keyword,
)
from shardmerge.units import wavelength_factor


@pytest.mark.parametrize(("kw", "name"), [
    ("DATE-OBS", "date_obs"),
    ("ESO TEL AIRM START", "eso_tel_airm_start"),
    ("MJD--OBS", "mjd_obs"),
    ("-X-", "x"),
    ("AIRMASS", "airmass"),
])
def test_sanitize(kw, name):
    assert sanitize_keyword(kw) == name


def test_projection_follows_the_built_in_rules():
    rules = load_header_rules()
    cards = [
        ("OBJECT", "HD 1"), ("AIRMASS", 1.2), ("AIRMASS", 1.3), ("AIRMASS", 1.4),
        ("ESO TEL AIRM START", 1.21), ("ESO DRS CAL TH COEFF LL3", 0.5), ("ESO INS TEMP1 VAL", 12.0),
        ("ESO DET OUT1 RON", 3.0), ("COMMENT", "x"), ("HISTORY", "y"), ("NAXIS1", 100), ("SIMPLE", True),
        ("VACUUM", True), ("EXPTIME", 600.0),
    ]
    out = project_header(cards, 0, rules)
    assert out == {
        "h0_object": "HD 1", "h0_airmass": "1.2", "h0_airmass_2": "1.3", "h0_airmass_3": "1.4",
        "h0_eso_tel_airm_start": "1.21", "h0_vacuum": "T", "h0_exptime": "600.0",
    }
    assert project_header([("OBJECT", "a")], 2, rules) == {"h2_object": "a"}


def test_custom_rules_file(tmp_path):
    f = tmp_path / "rules.toml"
    f.write_text('include = ["NAXIS*"]\nexclude = ["NAXIS2"]\n')
    rules = load_header_rules(f)
    assert project_header([("NAXIS1", 5), ("NAXIS2", 6), ("OBJECT", "x")], 1, rules) == {"h1_naxis1": "5"}
    bad = tmp_path / "bad.toml"
    bad.write_text("include = 3")
    with pytest.raises(InputError, match="bad.toml"):
        load_header_rules(bad)
    with pytest.raises(InputError, match="missing.toml"):
        load_header_rules(tmp_path / "missing.toml")


def test_angles():
    assert parse_angle("12:30:00", hours=True) == pytest.approx(187.5)
    assert parse_angle("-05:30:00.0", hours=False) == pytest.approx(-5.5)
    assert parse_angle("-00 30 00", hours=False) == pytest.approx(-0.5)
    assert parse_angle(150.25, hours=False) == 150.25
    assert math.isnan(parse_angle(None, hours=False)) and math.isnan(parse_angle("n/a", hours=False))


def test_canonical_fields():
    f = canonical_fields({"RA": "01:00:00", "DEC": "+10:30:00", "OBJECT": "M31", "ESO TEL AIRM START": 1.1,
                          "ESO TEL AIRM END": 1.3, "MJD-OBS": 58000.5, "EXPOSURE": 30, "TELESCOP": "T"})
    assert f["ra"] == pytest.approx(15.0) and f["dec"] == pytest.approx(10.5)
    assert f["airmass"] == pytest.approx(1.2) and f["exptime"] == 30.0 and f["mjd"] == 58000.5
    assert f["object"] == "M31" and f["telescope"] == "T" and f["instrument"] == ""
    sdss = canonical_fields({"PLUG_RA": 150.2, "PLUG_DEC": 55.6, "RA": 151.0})
    assert sdss["ra"] == 150.2 and sdss["dec"] == 55.6


@pytest.mark.parametrize(("unit", "factor"), [
    ("Angstrom", 1.0), ("ANGSTROMS", 1.0), ("Å", 1.0), ("\u212b", 1.0), ("0.1 nm", 1.0), ("nm", 10.0),
    ("micron", 1e4), ("µm", 1e4), ("um", 1e4), ("Ang", 1.0),
])
def test_wavelength_units(unit, factor):
    assert wavelength_factor(unit) == factor


def test_unknown_wavelength_unit_is_none():
    assert wavelength_factor("furlong") is None and wavelength_factor(None) is None
