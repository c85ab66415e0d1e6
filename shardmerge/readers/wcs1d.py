"""Layout (a): one spectrum per file in a 1-D image with a linear or log-linear WCS; the uncertainty,
if any, in an image extension named ERR/SIGMA/STD (1-sigma), IVAR or VAR, or in a file of its own beside
it, as XIDL writes them (Keck HIRES/ESI, Magellan MagE, the KODIAQ releases): `NAME_f.fits` the flux and
`NAME_e.fits` its 1-sigma error (`_F`/`_E`, and `_nF`/`_nE` for continuum-normalised ones; either may be
gzip'd). The error file then adds its values to the flux file's row as `uncertainty_raw` (a companion: no
row of its own), provided its wavelength grid is the flux file's."""

from __future__ import annotations

import os
import re
from dataclasses import replace

from astropy.io import fits

from .base import Layout
from .wcs_image import WcsImageReader

_XIDL_NAME = re.compile(r"^(?P<stem>.+_n?)(?P<role>[fFeE])(?P<ext>\.fits(?:\.gz)?)$")
_OTHER = {"f": "e", "e": "f", "F": "E", "E": "F"}


def xidl_pair(path: str) -> tuple[str, str] | None:
    """("flux" or "error", the pair's join key) of a file named as one half of an XIDL flux/error pair
    whose other half is beside it (exactly one of `.fits`, `.fits.gz`); None otherwise."""
    folder, name = os.path.split(os.path.abspath(path))
    m = _XIDL_NAME.match(name)
    if m is None:
        return None
    other = [f"{m['stem']}{_OTHER[m['role']]}{ext}" for ext in (".fits", ".fits.gz")]
    if sum(os.path.isfile(os.path.join(folder, n)) for n in other) != 1:
        return None
    return ("error" if m["role"] in "eE" else "flux"), f"xidl:{os.path.join(folder, m['stem'])}"


class WcsImage1DReader(WcsImageReader):
    name = "wcs-1d"
    priority = 90
    description = "1-D image spectrum with a linear or log-linear (DC-FLAG=1) WCS"
    naxis = 1

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        layout = super().layout(path, hdul)
        pair = xidl_pair(path) if layout.n_spectra == 1 else None
        if pair is None:
            return layout
        role, key = pair
        if role == "error":
            return replace(layout, join_key=key, companion=True,
                           companion_arrays=(("uncertainty_raw", "flux_raw"),))
        return replace(layout, join_key=key, companion_rows=(0,))
