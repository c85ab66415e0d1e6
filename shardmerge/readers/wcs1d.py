"""Layout (a): one spectrum per file in a 1-D image with a linear or log-linear WCS; the uncertainty,
if any, in an image extension named ERR/SIGMA/STD (1-sigma), IVAR or VAR, or in a file of its own beside
it, as XIDL writes them (Keck HIRES/ESI, Magellan MagE, the KODIAQ releases): `NAME_f.fits` the flux and
`NAME_e.fits` its 1-sigma error (`_F`/`_E`, and `_nF`/`_nE` for continuum-normalised ones; any FITS
suffix, either half gzip'd). The two are a pair when both primary headers are 1-D images with the same
WCS (NAXIS1, CRVAL1, CDELT1 or CD1_1, CRPIX1, DC-FLAG, CTYPE1, CUNIT1): the error file then adds its
values to the flux file's row as `uncertainty_raw` (a companion: no row of its own). Each half decides
from the same two headers, so they agree; neighbours whose names only look alike are ordinary spectra."""

from __future__ import annotations

import os
import re
from dataclasses import replace

from astropy.io import fits

from ..errors import BadFileError
from .base import Layout
from .fitsio import data_summary, open_fits
from .wcs_image import WcsImageReader

_XIDL_NAME = re.compile(r"^(?P<stem>.+_n?)(?P<role>[fe])(?P<ext>\.(?:fits|fit|fts)(?:\.gz)?)$", re.IGNORECASE)
_PAIR_CARDS = ("NAXIS", "NAXIS1", "CRVAL1", "CDELT1", "CD1_1", "CRPIX1", "DC-FLAG", "CTYPE1", "CUNIT1")


def _other_half(path: str) -> tuple[str, str, list[str]] | None:
    """("flux" or "error", the pair's join key, the other half's files that exist) of a file named as one
    half of an XIDL pair; None for any other name. The name is the one given (a file that is a link, as
    git-annex and DataLad keep them, is named by its link), the folder's real path keys it (a link to the
    folder names the same pair); the stem keeps its case (A_f and a_f are two pairs)."""
    folder, name = os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path)
    m = _XIDL_NAME.match(name)
    if m is None:
        return None
    role = "error" if m["role"] in "eE" else "flux"
    other = "fF" if role == "error" else "eE"
    ext = m["ext"]
    plain = ext[:-3] if ext.lower().endswith(".gz") else ext
    names = {f"{m['stem']}{letter}{suffix}" for letter in other for suffix in (plain, plain + ".gz", plain + ".GZ")}
    found = sorted(n for n in names if os.path.isfile(os.path.join(folder, n)))
    return role, f"xidl:{os.path.join(folder, m['stem'])}", [os.path.join(folder, n) for n in found]


def _same_axis(mine: fits.Header, theirs: fits.Header) -> bool:
    return mine.get("NAXIS") == 1 and all(mine.get(k) == theirs.get(k) for k in _PAIR_CARDS)


def _extra_data(hdul: fits.HDUList) -> str:
    """The first HDU after the primary that holds data ("HDU 1 (ERR)"), or "" when only the primary does."""
    for i, hdu in enumerate(hdul):
        if i and data_summary(hdu.header):
            extname = str(hdu.header.get("EXTNAME", "")).strip()
            return f"HDU {i}{f' ({extname})' if extname else ''}"
    return ""


def xidl_pair(path: str, hdul: fits.HDUList) -> tuple[str, str] | None:
    """("flux" or "error", the join key) when `path` (open as `hdul`) is one half of an XIDL flux/error
    pair; None when it is an ordinary spectrum. Both halves decide from the same facts, so they agree: a pair
    is two primary 1-D images on the same axis, and one whose halves hold more than that (an extension with
    data) is refused, naming both: which array is whose uncertainty is not clear. An error file whose flux
    file cannot be read is still its companion (the flux file is refused on its own, and the error file
    with it: it is no spectrum to store alone); a flux file whose error file cannot be read is ordinary (the
    error file is refused on its own). Two copies of the other half (plain and gzip'd) are refused."""
    half = _other_half(path)
    if half is None or not half[2]:
        return None
    role, key, others = half
    other = "flux" if role == "error" else "error"
    if len(others) > 1:
        raise BadFileError(path, f"its XIDL {other} file is there twice ({', '.join(others)}): keep one")
    try:
        with open_fits(others[0], headers_only=True) as theirs:
            if not _same_axis(hdul[0].header, theirs[0].header):
                return None
            extra = {path: _extra_data(hdul), others[0]: _extra_data(theirs)}
    except (BadFileError, OSError):
        return (role, key) if role == "error" else None
    if any(extra.values()):
        shown = "; ".join(f"{p} holds {what} beside its primary image" for p, what in extra.items() if what)
        raise BadFileError(path, f"named and on the axis of an XIDL {other} file ({others[0]}), but {shown}: "
                                 "which array is the flux's uncertainty is not clear; keep one uncertainty "
                                 "(or rename the files so they are no pair)")
    return role, key


class WcsImage1DReader(WcsImageReader):
    name = "wcs-1d"
    priority = 90
    description = "1-D image spectrum with a linear or log-linear (DC-FLAG=1) WCS"
    naxis = 1

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        layout = super().layout(path, hdul)
        pair = xidl_pair(path, hdul) if layout.flux_hdu == 0 else None
        if pair is None:
            return layout
        role, key = pair
        if role == "error":
            return replace(layout, join_key=key, companion=True,
                           companion_arrays=(("uncertainty_raw", "flux_raw"),))
        return replace(layout, join_key=key, companion_rows=(0,))
