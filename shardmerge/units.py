"""Unit handling. Wavelength units are recognised by the spellings real files use that astropy does not
parse (`ANGSTROMS`, `A`, `microns`), then by astropy.units itself (`10**-1 nm`, `0.1 nm`, `cm`): any
length converts.

Flux units are normalised (`normalise_flux_unit`): an archive's spelling (`1E-17 erg/cm^2/s/Ang`, `FLAM`,
`Relative Flux`, `e-`) becomes the text astropy.units writes for it in its "generic" format, which
`astropy.units.Unit(text)` parses back to the same unit; the source's own spelling is kept beside it in the
store (`units_source`). A spelling nothing here understands is never guessed: its unit is UNKNOWN_UNIT."""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

# factor that turns a value in this unit into Angstrom
_WAVELENGTH_FACTORS = {
    "angstrom": 1.0,
    "angstroms": 1.0,
    "angstroem": 1.0,
    "a": 1.0,
    "aa": 1.0,
    "å": 1.0,
    "ang": 1.0,
    "0.1nm": 1.0,
    "nm": 10.0,
    "nanometer": 10.0,
    "nanometers": 10.0,
    "nanometre": 10.0,
    "nanometres": 10.0,
    "um": 1.0e4,
    "µm": 1.0e4,
    "μm": 1.0e4,
    "micron": 1.0e4,
    "microns": 1.0e4,
    "micrometer": 1.0e4,
    "micrometers": 1.0e4,
    "m": 1.0e10,
}


def wavelength_factor(unit: str | None) -> float | None:
    """Multiplier from `unit` to Angstrom, or None when it is not a length."""
    if unit is None:
        return None
    key = re.sub(r"\s+", "", str(unit)).lower()
    key = key.replace("\u212b", "å")  # the Angstrom sign, distinct from the letter Å
    if key in _WAVELENGTH_FACTORS:  # first: astropy reads "A" as ampere
        return _WAVELENGTH_FACTORS[key]
    return _astropy_length_factor(str(unit).strip())


@lru_cache(maxsize=256)
def _astropy_length_factor(text: str) -> float | None:
    import astropy.units as u

    if not text:
        return None
    for fmt in ("fits", "generic"):
        try:
            with warnings.catch_warnings():  # a deprecated spelling is still a spelling
                warnings.simplefilter("ignore")
                parsed = u.Unit(text, format=fmt)
        except (ValueError, TypeError):
            continue
        try:
            factor = float(f"{parsed.to(u.AA):.12g}")  # cm: 1e8, not 99999999.99999999
        except u.UnitConversionError:
            return None
        # a length, but is it a wavelength unit? picometre to metre (a parsec is a typo, not a spectrum)
        return factor if 1e-2 <= factor <= 1e10 else None
    return None


# --- flux units -----------------------------------------------------------------------------------------

UNKNOWN_UNIT = ""  # the normalised unit of a spelling not understood (never a unit attr; see merge.flux_attrs)
DIMENSIONLESS = "1"  # dimensionless_unscaled: astropy writes it as "", which says nothing; Unit("1") reads it back
UNITS_FORMAT = "generic"  # the astropy.units format every normalised unit is written in (and parses with)

# spellings that name a quantity rather than write a unit: lowercased, spaces collapsed
_DIMENSIONLESS_WORDS = {
    "1", "dimensionless", "dimensionless_unit", "dimensionless_unscaled", "unitless", "relative",
    "relative flux", "relative intensity", "normalized", "normalised", "normalized flux", "normalised flux",
    "normalized intensity", "normalised intensity", "continuum-normalized", "continuum-normalised",
    "continuum normalized", "continuum normalised", "dimensionless (continuum-normalized)",
    "dimensionless (continuum-normalised)", "norm", "norm. flux", "flux ratio", "ratio", "transmission",
}
# "NONE" (as in FITS tables) may mean "no unit" or "no unit given": not guessed
_UNKNOWN_WORDS = {"", "unknown", "unk", "none", "n/a", "na", "null", "?", "-", "--", "undefined", "not specified"}
# whole spellings astropy does not know (HST/synphot names, counts and electrons as archives write them)
_NAMED = {
    "flam": "erg/(s cm2 Angstrom)",
    "fnu": "erg/(s cm2 Hz)",
    "photlam": "photon/(s cm2 Angstrom)",
    "photnu": "photon/(s cm2 Hz)",
    "adu": "adu",
    "adus": "adu",
    "dn": "adu",
    "count": "ct",
    "counts": "ct",
    "cts": "ct",
    "e": "electron",
    "e-": "electron",
    "electrons": "electron",
    "e-/s": "electron/s",
    "electrons/s": "electron/s",
    "counts/s": "ct/s",
    "jansky": "Jy",
    "janskys": "Jy",
    "mjy": "mJy",
    "ujy": "uJy",
    "µjy": "uJy",
    "njy": "nJy",
    "nanomaggies": "nanomaggy",
}
# words that label what a quantity is, in spellings like APOGEE's "Flux (10^-17 erg/s/cm^2/Ang)"
_LABEL = re.compile(r"^\s*(?:flux|flux density|err|error|sigma|uncertainty|sky|spectrum|intensity)\s*\((.+)\)\s*$",
                    re.IGNORECASE)
# Angstrom as archives spell it (astropy reads "A" as ampere, and knows neither "Ang" nor "Angstroms")
_ANGSTROM = re.compile(r"(?<![A-Za-z])(?:Angstroms?|angstroms?|ANGSTROMS?|Angstroem|Ang|ang|AA|A|Å|\u212b)(?![A-Za-z])")
_ERGS = re.compile(r"(?<![A-Za-z])ergs(?![A-Za-z])", re.IGNORECASE)  # old IRAF files: "ergs/cm^2/s/A"
_TEN_POWER = re.compile(r"(?<![\d.])10\^\(?([+-]?\d+)\)?")  # 10^-17 -> 10**-17 (astropy reads ^ only on units)


def normalise_flux_unit(source: str | None) -> tuple[str, str | None]:
    """(normalised unit, oddity text or None) for a flux unit as a source spells it. The unit is written
    by astropy.units in its "generic" format (DIMENSIONLESS for relative and normalised flux) and
    `astropy.units.Unit(unit)` parses it; a spelling not understood gives (UNKNOWN_UNIT, why), never an
    exception: the caller reports the oddity (kind `unknown-unit`) and keeps the spelling as the source's.
    No unit at all (blank, absent) is (UNKNOWN_UNIT, None): the store records it unknown, but a file that
    states nothing bent no convention, so it is no oddity."""
    text = "" if source is None else " ".join(str(source).split())
    return _normalise_flux_unit(text)


@lru_cache(maxsize=1024)
def _normalise_flux_unit(text: str) -> tuple[str, str | None]:
    key = text.lower()
    if not key:  # no unit stated is not a bent convention: the store says units_unknown, the report nothing
        return UNKNOWN_UNIT, None
    if key in _UNKNOWN_WORDS:
        return UNKNOWN_UNIT, f"the file says its flux unit is {text!r}"
    if key in _DIMENSIONLESS_WORDS:
        return DIMENSIONLESS, None
    label = _LABEL.match(text)
    if label:
        text = label.group(1).strip()
        key = text.lower()
    candidate = _NAMED.get(key) or _NAMED.get(key.replace(" ", "")) or text
    candidate = _TEN_POWER.sub(r"10**\1", _ANGSTROM.sub("Angstrom", _ERGS.sub("erg", candidate)))
    unit = _astropy_unit(candidate)
    if unit is None:
        return UNKNOWN_UNIT, f"flux unit {text!r} is not a unit astropy.units reads; kept as the source's spelling"
    return unit, None


def _astropy_unit(text: str) -> str | None:
    """`text` parsed by astropy.units (generic, then the FITS, CDS, OGIP and VOUnit grammars) and written
    back in UNITS_FORMAT; None when no grammar reads it or the written text does not read back the same."""
    import astropy.units as u

    for fmt in (UNITS_FORMAT, "fits", "cds", "ogip", "vounit"):
        try:
            with warnings.catch_warnings():  # a deprecated spelling is still a spelling
                warnings.simplefilter("ignore")
                parsed = u.Unit(text, format=fmt, parse_strict="raise")
                written = parsed.to_string(UNITS_FORMAT)
                if not written:  # dimensionless_unscaled
                    return DIMENSIONLESS
                if u.Unit(written, format=UNITS_FORMAT, parse_strict="raise") == parsed:
                    return written
        except (ValueError, TypeError, AttributeError):
            continue
    return None


def parses_as_unit(text: object) -> bool:
    """Whether `astropy.units.Unit(text, parse_strict="raise")` reads `text` (what every stored unit must do)."""
    if not isinstance(text, str):
        return False
    return _astropy_unit_parses(text)


@lru_cache(maxsize=1024)
def _astropy_unit_parses(text: str) -> bool:
    import astropy.units as u

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u.Unit(text, parse_strict="raise")
    except (ValueError, TypeError):
        return False
    return True
