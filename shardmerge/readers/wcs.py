"""Wavelength axes of images (a linear or log-linear WCS on axis 1, and when a header leaves it ambiguous),
and the image extensions that hold an uncertainty (by the names real pipelines give them)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from ..units import wavelength_factor
from .fitsio import data_summary, hdu_label, image_shape, is_image
from .oddities import unread_note

_LOG_CTYPES = ("LOGLIN", "LOG-LINEAR", "LOGLAM")  # spellings that declare a log10 axis (popler, some IRAF tasks)
_GENERIC_CTYPES = ("", "LINEAR", "WAVE", "WAVELENGTH", "AWAV", "LAMBDA", "PIXEL", *_LOG_CTYPES)
_SHORTEST_PLAUSIBLE_A = 100.0  # no WCS image spectrum without a declared unit runs below this (X-ray grids are tables)


def linear_wcs_wavelength(path: str, header: fits.Header, n_pix: int, *, log10: bool | None = None,
                          unit: str | None = None) -> np.ndarray:
    """Wavelength in Angstrom for axis 1 of an image with CRVAL1, CDELT1 (or CD1_1) and CRPIX1.
    DC-FLAG = 1 (IRAF) or a CTYPE1 of LOGLIN means the axis is log10(wavelength). `log10` and `unit` (from a
    mapping file) replace what the header says rather than compound it. An axis whose header declares
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
    return wave * wcs_unit_factor(path, header)


def _undeclared_axis(header: fits.Header, ctype: str) -> bool:
    """Neither the scale (DC-FLAG, a log CTYPE1) nor the unit (CUNIT1, a CTYPE1 that spells one) is said."""
    return ("DC-FLAG" not in header and "CUNIT1" not in header and ctype in ("", "LINEAR", "PIXEL"))


def wcs_unit_factor(path: str, header: fits.Header) -> float:
    """Factor to Angstrom from CUNIT1. Without CUNIT1, IRAF's convention (Angstrom) applies, and a CTYPE1
    that spells a unit (HARPS writes CTYPE1 = 'Angstrom') is honoured."""
    unit = header.get("CUNIT1")
    if unit is None or not str(unit).strip():  # MPDAF writes CUNIT1 = '' on its STAT extension
        ctype = str(header.get("CTYPE1", "")).strip()
        if ctype.upper() in _GENERIC_CTYPES:
            return 1.0
        if wavelength_factor(ctype) is not None:
            unit = ctype
        else:
            raise BadFileError(path, f"CTYPE1 = {ctype!r} is not a wavelength axis shardmerge can read")
    factor = wavelength_factor(unit)
    if factor is None:
        raise BadFileError(path, f"wavelength unit CUNIT1 = {unit!r} is not one shardmerge recognises")
    return factor


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
