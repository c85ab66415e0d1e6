"""Unit handling. Wavelength units are recognised by the spellings real files use that astropy does not
parse (`ANGSTROMS`, `A`, `microns`), then by astropy.units itself (`10**-1 nm`, `0.1 nm`, `cm`): any
length converts. Flux unit strings are kept verbatim and never interpreted."""

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
