"""Wavelength axes of images (a linear or log-linear WCS on axis 1, a frequency or velocity axis converted to
wavelength, 'WAVE-LOG' in its two readings, and when a header leaves it ambiguous),
and the image extensions that hold an uncertainty (by the names real pipelines give them)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp, exp10  # e**x, 10**x: the same bits on every CPU
from ..units import wavelength_factor
from .fitsio import data_summary, hdu_label, image_shape, is_image
from .oddities import FREQUENCY_AXIS, STALE_AXIS_UNIT, WAVE_LOG10, unread_note

_LOG_CTYPES = ("LOGLIN", "LOG-LINEAR", "LOGLAM")  # spellings that declare a log10 axis (popler, some IRAF tasks)
_GENERIC_CTYPES = ("", "LINEAR", "WAVE", "WAVELENGTH", "AWAV", "LAMBDA", "PIXEL", *_LOG_CTYPES)
_SHORTEST_PLAUSIBLE_A = 100.0  # no WCS image spectrum without a declared unit runs below this (X-ray grids are tables)


C_ANGSTROM_PER_S = 2.99792458e18  # the speed of light, exact in float64 (299792458 * 5**10 * 2**10)
C_M_PER_S = 299792458.0
# the log10(Angstrom) values a spectrum's CRVAL1 takes (100 A .. 500 000 A): a 'WAVE-LOG' CRVAL1 in this range is
# the MaNGA/MaStar log10 convention, since FITS's reading would put the spectrum at a few Angstrom
_LOG10_ANGSTROM_RANGE = (2.0, 5.7)
# AIPS frame suffixes on a frequency CTYPE ('FREQ-LSR'): a frame, not a non-linear algorithm
_FRAME_SUFFIXES = ("", "LSR", "LSD", "HEL", "BAR", "OBS", "TOP", "GEO", "GAL", "CMB", "SOU")
# spectral CTYPEs of FITS WCS Paper III (and AIPS) that are neither wavelength nor read here
_OTHER_SPECTRAL = {"ENER": "an energy", "WAVN": "a wavenumber", "ZOPT": "a redshift", "BETA": "a velocity ratio",
                   "VELO": "a velocity", "FELO": "a velocity (AIPS optical, linear in frequency)"}


@dataclass(frozen=True)
class SpectralAxis:
    """Axis 1 of an image as the store keeps it: `wavelength` in Angstrom, increasing; `reversed` when the
    source's pixel order runs the other way (a frequency axis), so the values must be reversed with it;
    `notes`: (oddity kind, text) for the run report."""

    wavelength: np.ndarray
    reversed: bool = False
    notes: tuple[tuple[str, str], ...] = ()

    def in_store_order(self, values: np.ndarray) -> np.ndarray:
        """Per-pixel values (last axis) in the order of `wavelength`."""
        return np.ascontiguousarray(values[..., ::-1]) if self.reversed else values


def wcs_axis(path: str, header: fits.Header, n_pix: int, *, log10: bool | None = None,
             unit: str | None = None) -> SpectralAxis:
    """Axis 1 of an image with CRVAL1, CDELT1 (or CD1_1) and CRPIX1 as wavelength in Angstrom: a linear or
    log-linear wavelength axis (`linear_wcs_wavelength`), a frequency axis (CTYPE1 FREQ, or a `unit` from a
    mapping that is a frequency), a radio or optical velocity axis with a rest frequency (VRAD, VOPT), or
    'WAVE-LOG' (FITS's logarithmic axis, or log10 Angstrom as MaNGA/MaStar write it). `log10` and `unit` come
    from a mapping and replace what the header says."""
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    kind, _, algorithm = ctype.partition("-")
    algorithm = algorithm.strip("-")
    if unit is not None and frequency_factor(unit) is not None:
        return _frequency_axis(path, header, _axis_values(path, header, n_pix), unit, ctype)
    frequency_unit = frequency_factor(_card_unit(header)) is not None
    if unit is None and (kind in ("FREQ", "FREQUENCY") or (frequency_unit and ctype in ("", "LINEAR"))):
        _linear_algorithm(path, ctype, algorithm)
        return _frequency_axis(path, header, _axis_values(path, header, n_pix),
                               _card_unit(header) or "Hz", ctype)
    if unit is None and kind in ("VRAD", "VOPT"):
        _linear_algorithm(path, ctype, algorithm)
        return _velocity_axis(path, header, _axis_values(path, header, n_pix), kind, ctype)
    if unit is None and kind in _OTHER_SPECTRAL and len(kind) == 4 and (algorithm in _FRAME_SUFFIXES or
                                                                         kind in ("VELO", "FELO")):
        raise BadFileError(path, f"CTYPE1 = {ctype!r}: axis 1 is {_OTHER_SPECTRAL[kind]}, not a wavelength or a "
                                 "frequency; shardmerge reads wavelength (WAVE, AWAV), frequency (FREQ) and radio or "
                                 "optical velocity with a rest frequency (VRAD, VOPT with RESTFRQ). Rewrite the "
                                 "axis as one of these, or resample the spectrum to wavelength")
    if ctype == "WAVE-LOG" and log10 is None:
        return _wave_log_axis(path, header, n_pix, unit)
    if ctype == "WAVE-LOG" and log10 is False:  # the mapping says: not log10, so FITS's logarithmic axis
        return SpectralAxis(_fits_log_axis(path, header, n_pix, unit))
    factor, notes = (None, ()) if unit is not None else _unit_factor(path, header)
    wave = linear_wcs_wavelength(path, header, n_pix, log10=log10, unit=unit, factor=factor)
    return SpectralAxis(wave, notes=notes)


def frequency_factor(unit: str | None) -> float | None:
    """Multiplier from `unit` to Hz, or None when it is not a frequency unit."""
    return _physical_factor(unit, "Hz")


def velocity_factor(unit: str | None) -> float | None:
    """Multiplier from `unit` to m/s, or None when it is not a velocity unit."""
    return _physical_factor(unit, "m/s")


@lru_cache(maxsize=64)
def _physical_factor(unit: str | None, target: str) -> float | None:
    import astropy.units as u

    text = "" if unit is None else str(unit).strip()
    if not text:
        return None
    for fmt in ("fits", "generic"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = u.Unit(text, format=fmt)
            return float(f"{parsed.to(u.Unit(target)):.15g}")  # GHz: 1e9, not 999999999.9999999
        except (ValueError, TypeError, u.UnitConversionError):
            continue
    return None


def _axis_values(path: str, header: fits.Header, n_pix: int) -> np.ndarray:
    """CRVAL1 + (p - CRPIX1) * CDELT1 for pixels p = 1..n_pix, float64 (basic IEEE operations only)."""
    crval, offsets = _offsets(path, header, n_pix)
    return crval + offsets


def _offsets(path: str, header: fits.Header, n_pix: int) -> tuple[float, np.ndarray]:
    """(CRVAL1, (p - CRPIX1) * CDELT1 for pixels p = 1..n_pix), float64."""
    crval = header.get("CRVAL1")
    cdelt = header.get("CDELT1", header.get("CD1_1"))
    if crval is None or cdelt is None:
        raise BadFileError(path, "image has no linear spectral WCS (needs CRVAL1 and CDELT1 or CD1_1)")
    if cdelt == 0:
        raise BadFileError(path, "CDELT1/CD1_1 is 0: the spectral axis does not advance")
    pix = np.arange(1, n_pix + 1, dtype=np.float64)
    return float(crval), (pix - float(header.get("CRPIX1", 1.0))) * float(cdelt)


def _linear_algorithm(path: str, ctype: str, algorithm: str) -> None:
    if algorithm not in _FRAME_SUFFIXES:
        raise BadFileError(path, f"CTYPE1 = {ctype!r} is a non-linear spectral axis (algorithm {algorithm!r}): "
                                 "shardmerge reads linear frequency and velocity axes only; resample the spectrum")


def _card_unit(header: fits.Header) -> str:
    return str(header.get("CUNIT1", "")).strip()


def _in_wavelength_order(path: str, wave: np.ndarray, what: str, notes: list[str]) -> SpectralAxis:
    if not np.all(np.isfinite(wave)) or not np.all(wave > 0):
        raise BadFileError(path, f"{what}: the axis gives a non-positive or non-finite wavelength (it runs through "
                                 "zero frequency): check CRVAL1, CDELT1, CRPIX1 and the rest frequency")
    reverse = wave.size > 1 and wave[0] > wave[-1]
    notes.append("pixels reversed so that wavelength increases" if reverse else "pixel order kept (wavelength "
                                                                                 "already increases)")
    text = f"{what}: converted to wavelength in Angstrom (lambda = c/nu); " + "; ".join(notes) + \
        "; flux kept as in the source (per unit frequency if its unit is)"
    return SpectralAxis(wave[::-1].copy() if reverse else wave, reverse, ((FREQUENCY_AXIS, text),))


def _frequency_axis(path: str, header: fits.Header, nu: np.ndarray, unit: str, ctype: str) -> SpectralAxis:
    factor = frequency_factor(unit)
    if factor is None:
        raise BadFileError(path, f"CTYPE1 = {ctype!r} is a frequency axis but CUNIT1 = {unit!r} is not a frequency "
                                 "unit: describe it with --format mapping ([wavelength] wcs = true, unit = \"GHz\")")
    with np.errstate(divide="ignore", invalid="ignore"):
        wave = C_ANGSTROM_PER_S / (nu * factor)  # two correctly rounded IEEE operations: the same bits everywhere
    return _in_wavelength_order(path, wave, f"axis 1 is a frequency (CTYPE1 = {ctype!r}, unit {unit!r})", [])


def _velocity_axis(path: str, header: fits.Header, v: np.ndarray, kind: str, ctype: str) -> SpectralAxis:
    unit = _card_unit(header) or "m/s"
    factor = velocity_factor(unit)
    if factor is None:
        raise BadFileError(path, f"CTYPE1 = {ctype!r} is a velocity axis but CUNIT1 = {unit!r} is not a velocity "
                                 "unit (m/s, km/s)")
    rest_key = next((k for k in ("RESTFRQ", "RESTFREQ") if k in header), None)
    rest_nu = float(header[rest_key]) if rest_key else None
    rest_wav = float(header["RESTWAV"]) * 1e10 if "RESTWAV" in header else None  # metres (Paper III) to Angstrom
    if not ((rest_nu or 0) > 0 or (rest_wav or 0) > 0):
        raise BadFileError(path, f"CTYPE1 = {ctype!r}: axis 1 is a velocity, and without a rest frequency (RESTFRQ "
                                 "in Hz, or RESTWAV in m) it has no wavelength. Add RESTFRQ to the header, or "
                                 "resample the spectrum to frequency or wavelength")
    beta = (v * factor) / C_M_PER_S
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "VRAD":  # radio: nu = nu0 (1 - v/c)
            nu0 = rest_nu if rest_nu else C_ANGSTROM_PER_S / rest_wav
            wave = C_ANGSTROM_PER_S / (nu0 * (1.0 - beta))
        else:  # optical: lambda = lambda0 (1 + v/c)
            lam0 = rest_wav if rest_wav else C_ANGSTROM_PER_S / rest_nu
            wave = lam0 * (1.0 + beta)
    rest = f"{rest_key} = {rest_nu:.12g} Hz" if rest_nu else f"RESTWAV = {rest_wav / 1e10:.12g} m"
    what = f"axis 1 is a {'radio' if kind == 'VRAD' else 'optical'} velocity (CTYPE1 = {ctype!r}, unit {unit!r})"
    return _in_wavelength_order(path, wave, what, [f"through {rest}, in the frame of the velocity axis"])


def _wave_log_axis(path: str, header: fits.Header, n_pix: int, unit: str | None) -> SpectralAxis:
    """'WAVE-LOG' as its values say: CRVAL1 a log10(Angstrom) (MaNGA/MaStar) or FITS's logarithmic axis
    (CRVAL1 a wavelength); anything else refused naming both readings."""
    crval = float(header.get("CRVAL1", np.nan))
    lo, hi = _LOG10_ANGSTROM_RANGE
    cunit = _card_unit(header)
    factor = wavelength_factor(unit or cunit or "Angstrom")
    if lo <= crval <= hi and wavelength_factor(unit or cunit or "Angstrom") == 1.0:
        axis = _axis_values(path, header, n_pix)
        if np.all((axis >= lo) & (axis <= hi)):
            text = (f"CTYPE1 = 'WAVE-LOG' with CRVAL1 = {crval:g}: read as log10(Angstrom) (the MaNGA/MaStar "
                    f"convention; FITS's logarithmic reading would put the spectrum at {crval:g} A); a mapping's "
                    "[wavelength] log10 = false reads it as FITS's axis instead")
            return SpectralAxis(exp10(axis), notes=((WAVE_LOG10, text),))
    if factor is not None and crval * factor >= _SHORTEST_PLAUSIBLE_A:
        return SpectralAxis(_fits_log_axis(path, header, n_pix, unit))
    raise BadFileError(path, f"CTYPE1 = 'WAVE-LOG' with CRVAL1 = {crval:g}{f' {cunit}' if cunit else ''} has two "
                             "readings and its values fit neither plainly: FITS's logarithmic axis (lambda = CRVAL1 "
                             "exp(CDELT1 (p - CRPIX1) / CRVAL1), CRVAL1 a wavelength) or log10(wavelength) (lambda "
                             "= 10**(CRVAL1 + CDELT1 (p - CRPIX1)), as MaNGA/MaStar write it). Say which with "
                             "--format mapping: [wavelength] wcs = true, log10 = true (the log10 reading) or "
                             "log10 = false (FITS's), and unit = \"Angstrom\" (or the unit CRVAL1 is in)")


def _fits_log_axis(path: str, header: fits.Header, n_pix: int, unit: str | None) -> np.ndarray:
    """FITS WCS Paper III '-LOG': lambda = CRVAL1 exp(w / CRVAL1), w = CDELT1 (p - CRPIX1), in Angstrom."""
    crval = float(header.get("CRVAL1", np.nan))
    if not crval > 0:
        raise BadFileError(path, f"CTYPE1 = 'WAVE-LOG' needs a positive CRVAL1 (the reference wavelength), found "
                                 f"{crval!r}")
    factor = wavelength_factor(unit) if unit is not None else _unit_factor(path, header)[0]
    if factor is None:
        raise BadFileError(path, f"the mapping's [wavelength] unit = {unit!r} is not a wavelength unit")
    w = _offsets(path, header, n_pix)[1]
    return (crval * exp(w / crval)) * factor  # exactmath.exp: the same bits on every CPU


def linear_wcs_wavelength(path: str, header: fits.Header, n_pix: int, *, log10: bool | None = None,
                          unit: str | None = None, factor: float | None = None) -> np.ndarray:
    """Wavelength in Angstrom for axis 1 of an image with CRVAL1, CDELT1 (or CD1_1) and CRPIX1.
    DC-FLAG = 1 (IRAF) or a CTYPE1 of LOGLIN means the axis is log10(wavelength). `log10` and `unit` (from a
    mapping file) replace what the header says rather than compound it; `factor`: CUNIT1's factor to Angstrom
    when the caller has it (`_unit_factor`). An axis whose header declares
    neither scale nor unit and whose linear reading is no plausible wavelength (3.7 "Angstrom": in fact
    log10 Angstrom, or micron) is refused: it could be either, and a wrong guess would be stored silently."""
    crval = header.get("CRVAL1")
    cdelt = header.get("CDELT1", header.get("CD1_1"))
    if crval is None or cdelt is None:
        raise BadFileError(path, "image has no linear wavelength WCS (needs CRVAL1 and CDELT1 or CD1_1)")
    if cdelt == 0:
        raise BadFileError(path, "CDELT1/CD1_1 is 0: the wavelength axis does not advance")
    crpix = header.get("CRPIX1", 1.0)
    pix = np.arange(1, n_pix + 1, dtype=np.float64)
    axis = float(crval) + (pix - float(crpix)) * float(cdelt)
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if log10 is None:
        dcflag = header.get("DC-FLAG", 1 if ctype in _LOG_CTYPES else 0)
        if dcflag not in (0, 1, -1):
            raise BadFileError(path, f"DC-FLAG = {dcflag!r} is not supported (0 linear, 1 log-linear)")
        log10 = dcflag == 1
        implausible = max(abs(axis[0]), abs(axis[-1])) < _SHORTEST_PLAUSIBLE_A
        if unit is None and implausible and _undeclared_axis(header, ctype):
            lo, hi = sorted((axis[0], axis[-1]))
            raise BadFileError(
                path, f"ambiguous wavelength axis: CRVAL1 = {crval}, CDELT1 = {cdelt} and no DC-FLAG, CUNIT1 or "
                      f"CTYPE1 saying its scale or unit. Read linearly in Angstrom it spans {lo:.5g}-{hi:.5g} A, "
                      f"which is no spectrum's range; as log10(Angstrom) it would span {10**lo:.1f}-{10**hi:.1f} A, "
                      f"in micron {lo * 1e4:.1f}-{hi * 1e4:.1f} A. Say which with --format mapping and a mapping "
                      "file: [wavelength] wcs = true, log10 = true (or unit = \"um\")")
    wave = exp10(axis) if log10 else axis
    if unit is not None:
        factor = wavelength_factor(unit)
        if factor is None:
            raise BadFileError(path, f"the mapping's [wavelength] unit = {unit!r} is not a wavelength unit: use "
                                     "Angstrom, nm, um or another length astropy knows")
        return wave * factor
    return wave * (factor if factor is not None else wcs_unit_factor(path, header))


def _undeclared_axis(header: fits.Header, ctype: str) -> bool:
    """Neither the scale (DC-FLAG, a log CTYPE1) nor the unit (CUNIT1, a CTYPE1 that spells one) is said."""
    return ("DC-FLAG" not in header and "CUNIT1" not in header and ctype in ("", "LINEAR", "PIXEL"))


def wcs_unit_factor(path: str, header: fits.Header) -> float:
    """Factor to Angstrom from CUNIT1 (see `_unit_factor`)."""
    return _unit_factor(path, header)[0]


def _unit_factor(path: str, header: fits.Header) -> tuple[float, tuple[tuple[str, str], ...]]:
    """(factor to Angstrom from CUNIT1, notes). Without CUNIT1, IRAF's convention (Angstrom) applies, and a
    CTYPE1 that spells a unit (HARPS writes CTYPE1 = 'Angstrom') is honoured. A CUNIT1 that is no length
    ('deg', '-999': left from a celestial template) while IRAF's WAT1_nnn states `units=`: the WAT unit is
    used, and said; a WAT unit that is another length than CUNIT1's is refused (which is stale is not known)."""
    unit = header.get("CUNIT1")
    wat = _wat1_units(header)
    if wat is not None and unit is not None and str(unit).strip():
        wat_factor, card_factor = wavelength_factor(wat), wavelength_factor(str(unit))
        if wat_factor is not None and card_factor is None:
            return wat_factor, ((STALE_AXIS_UNIT, f"CUNIT1 = {unit!r} is no wavelength unit; IRAF's WAT1_001 says "
                                                  f"units={wat}: read in {wat} (CUNIT1 overridden)"),)
        if wat_factor is not None and card_factor != wat_factor:
            card = str(unit).strip()
            raise BadFileError(path, f"CUNIT1 = {unit!r} and IRAF's WAT1_001 units={wat} disagree about the "
                                     f"wavelength unit{_readings(header, ((card, card_factor), (wat, wat_factor)))}: "
                                     "say which with --format mapping ([wavelength] wcs = true, and unit = "
                                     f"\"{card}\" or unit = \"{wat}\")")
    if wat is not None and (unit is None or not str(unit).strip()) and wavelength_factor(wat) is not None:
        unit = wat
    if unit is None or not str(unit).strip():  # MPDAF writes CUNIT1 = '' on its STAT extension
        ctype = str(header.get("CTYPE1", "")).strip()
        if ctype.upper() in _GENERIC_CTYPES:
            return 1.0, ()
        if wavelength_factor(ctype) is not None:
            unit = ctype
        else:
            raise BadFileError(path, f"CTYPE1 = {ctype!r} is not a wavelength axis shardmerge can read, and no "
                                     "CUNIT1 says axis 1's unit: if axis 1 is a wavelength, describe the file with "
                                     "--format mapping --mapping M.toml ([wavelength] wcs = true, unit = \"Angstrom\" "
                                     "or \"nm\" or \"um\"); `shardmerge mapping draft FILE` writes one")
    factor = wavelength_factor(unit)
    if factor is None:
        raise BadFileError(path, f"wavelength unit CUNIT1 = {unit!r} is not one shardmerge recognises; if the "
                                 "axis is in another unit, say it with --format mapping ([wavelength] wcs = true, "
                                 "unit = \"Angstrom\")")
    return factor, ()


def _readings(header: fits.Header, units: tuple[tuple[str, float], ...]) -> str:
    """', read in nm axis 1 spans 5303-10137 A, in angstroms 530.3-1013.7 A': what each unit would make of
    the linear axis (log-linear where DC-FLAG = 1), so the choice can be made from the spectrum's range;
    "" where the header's WCS cannot say."""
    try:
        crval, cdelt = float(header["CRVAL1"]), float(header.get("CDELT1", header.get("CD1_1")))
        crpix, n = float(header.get("CRPIX1", 1.0)), int(header["NAXIS1"])
    except (KeyError, TypeError, ValueError):
        return ""
    ends = np.array([crval + (1 - crpix) * cdelt, crval + (n - crpix) * cdelt])
    if header.get("DC-FLAG", 0) == 1:
        ends = 10.0**ends
    lo, hi = sorted(ends)
    return ", read " + ", ".join(f"in {name} axis 1 spans {lo * f:.5g}-{hi * f:.5g} A" for name, f in units)


def _wat1_units(header: fits.Header) -> str | None:
    """The `units=` of IRAF's WAT1_nnn cards (68 characters each, concatenated), or None."""
    if "WAT1_001" not in header:
        return None
    text = "".join(str(header[f"WAT1_{k:03d}"]).ljust(68) for k in range(1, 1000) if f"WAT1_{k:03d}" in header)
    m = re.search(r"units\s*=\s*(\S+)", text)
    return m.group(1) if m else None


_UNCERTAINTY_EXTNAMES = {
    "ERR": "sigma", "ERROR": "sigma", "ERRS": "sigma", "ERRORS": "sigma", "SIGMA": "sigma", "SIG": "sigma",
    "STD": "sigma", "STDDEV": "sigma", "UNCERT": "sigma", "UNCERTAINTY": "sigma", "NOISE": "sigma",
    "IVAR": "ivar", "INVVAR": "ivar", "IVARIANCE": "ivar", "INV_VAR": "ivar",
    "VAR": "var", "VARIANCE": "var", "STAT": "var",  # MPDAF/MUSE: STAT is the variance
}
# image extensions of the flux's shape that are known not to be an uncertainty (read by other rules or not)
_NOT_UNCERTAINTY = ("MASK", "DQ", "QUAL", "QUALITY", "FLAG", "FLAGS", "BADPIX", "BPM", "SKY", "CONT", "CONTINUUM",
                    "WAVE", "WAVELENGTH", "LAMBDA", "BACKGROUND", "BKG", "MODEL", "FIT", "WHT", "WEIGHT", "NPIX",
                    "EXPTIME", "RES", "RESOLUTION")


def uncertainty_kind(hdu: object) -> str | None:
    """sigma / ivar / var for an extension named like an uncertainty (ERR_FLUX, FLUX_ERR, IVAR, STAT, …)
    or whose IRAF BANDID1 says sigma; else None."""
    name = str(hdu.header.get("EXTNAME", "")).strip().upper()
    if name in _UNCERTAINTY_EXTNAMES:
        return _UNCERTAINTY_EXTNAMES[name]
    parts = set(name.replace("-", "_").split("_"))
    if parts & {"SKY", "CONT", "CONTINUUM", "BKG", "BACKGROUND", "MODEL"}:  # an uncertainty, but not the flux's
        return None
    for part, kind in _UNCERTAINTY_EXTNAMES.items():
        if part in parts and part not in ("STAT",):
            return kind
    band = str(hdu.header.get("BANDID1", "")).strip().lower()
    if band.startswith(("sigma", "error", "uncertainty")):
        return "sigma"
    if band.startswith("variance"):
        return "var"
    return None


def find_uncertainty_hdu(hdul: fits.HDUList, shape: tuple[int, ...]) -> tuple[int, str] | None:
    """(HDU index, kind) of an image extension with the flux's shape whose name or BANDID1 says it is an
    uncertainty."""
    for i, hdu in enumerate(hdul):
        if i == 0 or not is_image(hdu):
            continue
        kind = uncertainty_kind(hdu)
        if kind and image_shape(hdu.header) == shape:
            return i, kind
    return None


def unread_same_shape_hdus(hdul: fits.HDUList, shape: tuple[int, ...], read: set[int]) -> list[str]:
    """Image extensions with the flux's shape that nothing reads and nothing names (an unnamed HDU 1 may be
    the uncertainty): said in the run report, so that an all-NaN uncertainty is never silent."""
    out = []
    for i, hdu in enumerate(hdul):
        if i in read or not is_image(hdu) or image_shape(hdu.header) != shape:
            continue
        if str(hdu.header.get("EXTNAME", "")).strip().upper() in _NOT_UNCERTAINTY:
            continue
        out.append(unread_note(i, *hdu_label(hdu), data_summary(hdu.header),
                               "has the flux's shape but nothing says what it holds: not read (if it is an "
                               "uncertainty or a wavelength, describe the file with --format mapping)"))
    return out
