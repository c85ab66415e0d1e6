"""Which table columns are the wavelength, the flux, its uncertainty and a pixel mask: by unit and UCD
first, by name second, so that a table whose columns all say what they are is read whatever they are
called (Euclid SIR's `SIGNAL`, `VAR`, `MASK`, `WAVELENGTH`; a `flux density` column).

- wavelength: the column whose UCD is `em.wl`; else the one column in a length unit (a name from the list
  breaks a tie); else a column named `WAVE`, `WAVELENGTH`, … (unit or not: a reader refuses a wavelength
  without one), or `LOGLAM` (log10 Angstrom).
- flux: among the columns in a spectral flux density unit (astropy physical types: per Hz, per Angstrom,
  photons) or with a `phot.flux*`/`phot.fluDens*` UCD, less those that name an uncertainty: the only one,
  or the one a name from the list picks; else a column named `FLUX`, `FLAM`, … (dimensionless,
  counts).
- uncertainty: a column in the flux's unit named as an error or with UCD `stat.error` (1-sigma), one in
  the flux's unit squared (variance) or its inverse (inverse variance); else by name (`ERROR`, `IVAR`,
  `VAR`, `VARIANCE`, …).
- mask: an integer column named `MASK` (or `BITMASK`, `PIXEL_MASK`).
A role that the units leave ambiguous (two candidates, no name to choose) falls back to the names."""

from __future__ import annotations

import re
import warnings

from ..units import DIMENSIONLESS, normalise_flux_unit, wavelength_factor

WAVE_NAMES = ("WAVELENGTH", "WAVE", "LAMBDA", "LAM", "WAVELEN", "WL", "WAVE_VAC", "WAVELENGTH_VAC")
LOG_WAVE_NAMES = ("LOGLAM", "LOGLAMBDA", "LOG_WAVE", "LOGWAVE")
FLUX_NAMES = ("FLUX", "FLAM", "F_LAMBDA", "FLUX_DENSITY", "FLUXDENSITY", "FNU", "F_NU", "SPEC", "SPECTRUM",
              "SIGNAL")
SIGMA_NAMES = ("ERROR", "ERR", "FLUX_ERROR", "FLUX_ERR", "ERR_FLUX", "ERROR_FLUX", "SIGMA", "SIG", "UNCERTAINTY",
               "UNC", "STATERROR", "STAT_ERROR", "NOISE", "E_FLUX")
IVAR_NAMES = ("IVAR", "INVVAR", "FLUX_IVAR", "IVAR_FLUX")
VAR_NAMES = ("VAR", "VARIANCE", "FLUX_VAR", "VAR_FLUX")
MASK_NAMES = ("MASK", "BITMASK", "PIXEL_MASK")

# words (whole tokens of a column name) that say a column is an uncertainty or not the object's flux
_NOT_FLUX_WORDS = {"ERR", "ERROR", "ERRORS", "SIGMA", "SIG", "UNC", "UNCERTAINTY", "NOISE", "VAR", "VARIANCE", "IVAR",
                   "INVVAR", "STD", "STDDEV", "RMS", "E", "SKY", "BKG", "BACK", "BACKGROUND", "CONT", "CONTINUUM",
                   "MODEL", "TELLURIC", "RESID", "RESIDUAL"}
_ERROR_WORDS = {"ERR", "ERROR", "ERRORS", "SIGMA", "SIG", "UNC", "UNCERTAINTY", "NOISE", "STD", "STDDEV", "RMS", "E"}
_FLUX_DENSITY_TYPES = {"spectral flux density", "spectral flux density wav", "photon flux density",
                       "photon flux density wav"}


def _words(name: str) -> set[str]:
    upper = name.upper()
    words = {w for w in re.split(r"[^A-Z0-9]+", upper) if w}
    for stem in ("ERR", "ERROR", "IVAR", "VAR", "SIGMA"):  # FLUXERR, ERRFLUX: no separator
        if upper != stem and (upper.endswith(stem) or upper.startswith(stem)) and upper not in ("SIGNAL",):
            words.add(stem)
    return words


def _astropy_unit(text: str):  # noqa: ANN202 - astropy.units.UnitBase or None
    """A column's unit as astropy reads it once `units.normalise_flux_unit` has normalised it (else as
    astropy reads it as written); None when the spelling is not understood or dimensionless."""
    import astropy.units as u

    normalised, _ = normalise_flux_unit(text)
    if normalised == DIMENSIONLESS:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if normalised:
            return u.Unit(normalised)
        try:  # a squared or inverse unit (a variance's), which flux normalisation does not take
            unit = u.Unit(text, parse_strict="raise")
        except (ValueError, TypeError):
            return None
        return None if unit == u.dimensionless_unscaled else unit


def is_flux_density_unit(text: str | None) -> bool:
    """Whether `text` is a spectral flux density unit (per Hz, per wavelength, or photons), by astropy's
    physical types."""
    if not text or not str(text).strip():
        return False
    unit = _astropy_unit(str(text))
    return unit is not None and bool(_FLUX_DENSITY_TYPES & set(unit.physical_type))


def _same_unit(a: str, b: str, power: int) -> bool:
    """Whether unit `a` is unit `b` to the `power`."""
    ua, ub = _astropy_unit(a), _astropy_unit(b)
    if ua is None or ub is None:
        return False
    try:
        return abs(float(ua.to(ub**power)) - 1.0) < 1e-9
    except Exception:  # noqa: BLE001 - astropy.units.UnitConversionError and friends: not the same
        return False


class Column:
    """What detection needs of one table column: its name, unit, UCD and TFORM."""

    def __init__(self, name: str, unit: str, ucd: str, repeat: int, code: str):
        self.name, self.unit, self.ucd, self.repeat, self.code = name, unit, ucd, repeat, code

    @property
    def ucd_primary(self) -> str:
        return self.ucd.split(";")[0].strip().lower()


def table_columns(hdu: object) -> list[Column]:
    """The columns of a table HDU (astropy's or fastfits') with their TUNITn and TUCDn."""
    out = []
    for k, c in enumerate(hdu.columns, start=1):
        fmt = c.format
        out.append(Column(str(c.name), str(c.unit or "").strip(), str(hdu.header.get(f"TUCD{k}", "")).strip(),
                          int(getattr(fmt, "repeat", 1) or 1), str(getattr(fmt, "format", str(fmt)))[-1:].upper()))
    return out


def _by_name(cols: list[Column], names: tuple[str, ...]) -> Column | None:
    upper = {c.name.upper(): c for c in cols}
    return next((upper[n] for n in names if n in upper), None)


def _pick(candidates: list[Column], names: tuple[str, ...]) -> Column | None:
    """The only candidate, or the one a name picks; None when ambiguous or empty."""
    if len(candidates) == 1:
        return candidates[0]
    return _by_name(candidates, names)


def find_roles(hdu: object) -> dict[str, str] | None:
    """{"wave" | "loglam", "flux", and "sigma" | "ivar" | "var", "mask" when present} → column names, for
    a table whose wavelength, flux (and uncertainty, mask) columns have one shape; None when it has no
    wavelength or no flux column."""
    cols = table_columns(hdu)
    roles: dict[str, Column] = {}
    wave = _find_wave(cols)
    if wave is not None:
        roles["wave"] = wave
    elif (log := _by_name(cols, LOG_WAVE_NAMES)) is not None:
        roles["loglam"] = log
    else:
        return None
    rest = [c for c in cols if c is not next(iter(roles.values()))]
    flux = _find_flux(rest)
    if flux is None:
        return None
    roles["flux"] = flux
    rest = [c for c in rest if c is not flux]
    found = _find_uncertainty(rest, flux)
    if found is not None:
        roles[found[0]] = found[1]
    mask = _by_name(rest, MASK_NAMES)
    if mask is not None and mask.code in "BIJKL" and mask.repeat == flux.repeat:
        roles["mask"] = mask
    if len({roles[r].repeat for r in roles if r != "mask"}) != 1:
        return None
    return {role: c.name for role, c in roles.items()}


def _find_wave(cols: list[Column]) -> Column | None:
    by_ucd = [c for c in cols if c.ucd_primary == "em.wl"]
    if len(by_ucd) == 1:
        return by_ucd[0]
    by_unit = [c for c in cols if c.unit and wavelength_factor(c.unit) is not None]
    named = _by_name(cols, WAVE_NAMES)
    if named is not None and (named in by_unit or not by_unit):
        return named
    if len(by_unit) == 1 and named is None:
        return by_unit[0]
    if named is not None:
        return named
    return by_ucd[0] if by_ucd else None


def _find_flux(cols: list[Column]) -> Column | None:
    def flux_like(c: Column) -> bool:
        ucd = c.ucd.lower()
        by_ucd = c.ucd_primary.startswith(("phot.flux", "phot.fludens")) and "stat." not in ucd
        return (by_ucd or is_flux_density_unit(c.unit)) and not (_words(c.name) & _NOT_FLUX_WORDS)

    picked = _pick([c for c in cols if flux_like(c)], FLUX_NAMES)
    if picked is not None:
        return picked
    named = _by_name(cols, FLUX_NAMES)
    if named is not None:
        return named
    ucd = [c for c in cols if c.ucd_primary.startswith(("phot.flux", "phot.fludens")) and "stat." not in c.ucd.lower()]
    return ucd[0] if ucd else None


def _find_uncertainty(cols: list[Column], flux: Column) -> tuple[str, Column] | None:
    same_shape = [c for c in cols if c.repeat == flux.repeat and c.code in "EDIJKB"]
    if flux.unit:
        sigma = [c for c in same_shape if (c.ucd_primary.startswith("stat.error") or _words(c.name) & _ERROR_WORDS)
                 and _same_unit(c.unit, flux.unit, 1)]
        if (c := _pick(sigma, SIGMA_NAMES)) is not None:
            return "sigma", c
        var = [c for c in same_shape if _same_unit(c.unit, flux.unit, 2)]
        if (c := _pick(var, VAR_NAMES)) is not None:
            return "var", c
        ivar = [c for c in same_shape if _same_unit(c.unit, flux.unit, -2)]
        if (c := _pick(ivar, IVAR_NAMES)) is not None:
            return "ivar", c
    for kind, names in (("sigma", SIGMA_NAMES), ("ivar", IVAR_NAMES), ("var", VAR_NAMES)):
        if (c := _by_name(cols, names)) is not None:
            return kind, c
    by_ucd = [c for c in cols if c.ucd_primary.startswith("stat.error")]
    return ("sigma", by_ucd[0]) if by_ucd else None
