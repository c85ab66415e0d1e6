"""Unit handling. astropy cannot parse many real unit strings, so wavelength units are recognised here
by spelling; flux unit strings are kept verbatim and never interpreted."""

from __future__ import annotations

import re

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
    """Multiplier from `unit` to Angstrom, or None when the spelling is not a known wavelength unit."""
    if unit is None:
        return None
    key = re.sub(r"\s+", "", str(unit)).lower()
    key = key.replace("\u212b", "å")  # the Angstrom sign, distinct from the letter Å
    return _WAVELENGTH_FACTORS.get(key)
